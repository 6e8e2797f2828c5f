"""setuptools hook: with KVTIER_BUNDLE_LIBRARY=/path/to/libkvtier.so.N, the library is copied into
kvtier/lib/ of the built package (and the wheel is tagged for this platform). Metadata lives in
pyproject.toml."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

BUNDLE = os.environ.get("KVTIER_BUNDLE_LIBRARY", "")


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        if BUNDLE:
            if not os.path.isfile(BUNDLE):
                raise SystemExit(f"KVTIER_BUNDLE_LIBRARY={BUNDLE}: no such file")
            dest = os.path.join(self.build_lib, "kvtier", "lib")
            os.makedirs(dest, exist_ok=True)
            name = os.path.basename(os.path.realpath(BUNDLE))  # libkvtier.so.1.0.0
            major = name.split(".so.")[1].split(".")[0] if ".so." in name else "1"
            shutil.copy2(os.path.realpath(BUNDLE), os.path.join(dest, f"libkvtier.so.{major}"))


class MaybeBinaryDistribution(Distribution):
    def has_ext_modules(self):  # a bundled .so makes the wheel platform-specific
        return bool(BUNDLE)


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=MaybeBinaryDistribution)
