# cffi's build hook (cffi_modules) is a setup() keyword that setup.cfg cannot
# carry; everything else lives in setup.cfg.
from setuptools import setup

setup(cffi_modules=["src/lxactors/_ffi_build.py:ffibuilder"])
