# cffi's build hook (cffi_modules) and the launcher program's build are
# setup() keywords that setup.cfg cannot carry; everything else lives there.
import importlib.util
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildExtAndLauncher(build_ext):
    """build_ext, then the helper's launcher program beside the built package
    (in place for an editable install, in build/lib for a wheel)."""

    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location(
            "_lxactors_ffi_build", os.path.join(HERE, "src", "lxactors", "_ffi_build.py"))
        assert spec is not None and spec.loader is not None
        ffi_build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ffi_build)
        package_dir = os.path.dirname(self.get_ext_fullpath("lxactors._lxc"))
        self._launcher = ffi_build.build_launcher(self.compiler, self.build_temp, package_dir)

    def get_outputs(self) -> list[str]:
        launcher = getattr(self, "_launcher", None)
        return super().get_outputs() + ([launcher] if launcher else [])


setup(cffi_modules=["src/lxactors/_ffi_build.py:ffibuilder"],
      cmdclass={"build_ext": BuildExtAndLauncher})
