#!/bin/sh
# Prints the interpreter the Python tests run with: the first of $KVT_PYTHON, python3 and
# /usr/bin/python3 that has numpy >= 1.22 (numpy.from_dlpack) and pytest. Prints nothing and
# exits 1 when none has them. Used by run_pytest.sh (ctest) and scripts/gpu-check.sh.
probe='import numpy, pytest; assert hasattr(numpy, "from_dlpack"), "numpy >= 1.22 needed"'
for candidate in ${KVT_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$probe" 2>/dev/null; then
    echo "$candidate"
    exit 0
  fi
done
exit 1
