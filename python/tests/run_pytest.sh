#!/bin/sh
# Runs the kvtier Python tests against a real kv-tierd (ctest: python_binding_test).
#   KVT_BIN_DIR  directory with kv-tierd     KVT_LIBRARY  path of libkvtier.so
#   KVT_PYTHON   interpreter to use (default: the first of python3, /usr/bin/python3 with numpy
#                >= 1.22 and pytest: find_python.sh)
# Exit 77 (ctest: skipped) only when no interpreter has numpy and pytest. pytest's exit code 5
# (no tests collected) is a failure: a suite that silently runs nothing must not pass.
set -u
here=$(cd "$(dirname "$0")" && pwd)
py=$(sh "$here/find_python.sh")
if [ -z "$py" ]; then
  echo "SKIPPED: no python3 with numpy >= 1.22 and pytest (apt-get install python3-numpy python3-pytest)"
  exit 77
fi
echo "python: $(command -v "$py") ($("$py" -c 'import sys, numpy, pytest; print(sys.version.split()[0], "numpy", numpy.__version__, "pytest", pytest.__version__)'))"
"$py" -m pytest "$here" -q -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "FAILED: pytest collected no tests in $here"
  exit 1
fi
exit "$rc"
