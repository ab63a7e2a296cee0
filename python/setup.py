"""Builds the dsc package with libdsc.so inside it.

From dsc's checkout (`pip install ./python`), the library is built by the
checkout's Makefile (`make build/libdsc.so`) and copied into the package.
Elsewhere, DSC_LIBRARY=/path/to/libdsc.so names one to copy; without
either, the package looks for an installed libdsc.so (make install) when
imported.
"""
import os
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)


def find_library():
    """The libdsc.so to bundle, building it in a checkout; or None."""
    env = os.environ.get("DSC_LIBRARY")
    if env:
        return env
    if os.path.exists(os.path.join(CHECKOUT, "Makefile")) and \
            os.path.exists(os.path.join(CHECKOUT, "compiler", "api", "dsc.h")):
        subprocess.check_call(["make", "-C", CHECKOUT, "build/libdsc.so"])
        return os.path.join(CHECKOUT, "build", "libdsc.so")
    return None


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        lib = find_library()
        if lib:
            target = os.path.join(self.build_lib, "dsc", "libdsc.so.0")
            shutil.copyfile(os.path.realpath(lib), target)
            os.chmod(target, 0o755)


class BinaryDistribution(Distribution):
    """The wheel holds a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
