"""Build of fastconv's compiled kernels.

Switches (environment variables read at build time):

* ``FASTCONV_OPENMP=0`` builds without OpenMP; the kernels then run on one
  thread.  By default OpenMP is used when the compiler accepts it.
* ``FASTCONV_PORTABLE=1`` builds for the baseline of the target
  architecture (any x86-64 CPU), as a wheel meant for other machines must
  be.  By default a source build tunes for the building machine
  (``-march=native``), which is what ``pip install .`` on the machine that
  will run the code wants.

Compiler flags per platform: GCC and Clang on Linux take ``-fopenmp``;
Apple Clang needs libomp (``brew install libomp``) and
``-Xpreprocessor -fopenmp`` with ``-lomp``; on Windows, clang-cl takes
``/openmp`` and ``/O2`` (MSVC itself lacks the GCC/Clang vector extensions
the microkernels use).  Only Linux with GCC is tested.
"""

import os
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def env_flag(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def openmp_flags(compiler_type):
    """(compile args, link args) that enable OpenMP for this compiler."""
    if compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        return ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    return ["-fopenmp"], ["-fopenmp"]


def compiler_accepts(compiler, compile_args, link_args):
    """True when ``compiler`` builds and links a small OpenMP program."""
    source = "#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=compile_args)
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=link_args)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Adds optimisation and OpenMP flags chosen for the compiler at hand."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            compile_args, link_args = ["/O2"], []
        else:
            compile_args = ["-O3", "-ffp-contract=fast"]
            if not env_flag("FASTCONV_PORTABLE", False):
                compile_args.append("-march=native")
            link_args = []
        use_openmp = env_flag("FASTCONV_OPENMP", True)
        if use_openmp:
            omp_compile, omp_link = openmp_flags(ctype)
            use_openmp = compiler_accepts(self.compiler, omp_compile, omp_link)
            if use_openmp:
                compile_args += omp_compile
                link_args += omp_link
            else:
                print("fastconv: the compiler has no OpenMP; building single-threaded")
        flags_text = " ".join(compile_args)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args
            ext.extra_link_args = link_args
            ext.define_macros += [("FASTCONV_BUILD_FLAGS", '"%s"' % flags_text)]
        super().build_extensions()


def extension(name):
    return Extension(
        "fastconv." + name,
        ["fastconv/%s.pyx" % name],
        include_dirs=[numpy.get_include(), "fastconv"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


setup(
    ext_modules=cythonize(
        [extension("_conv"), extension("_pool"), extension("_depthwise")],
        compiler_directives={"language_level": "3"},
    ),
    cmdclass={"build_ext": BuildExt},
)
