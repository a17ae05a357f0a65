"""Build of fastconv's compiled kernels.

Switches (environment variables read at build time):

* ``FASTCONV_OPENMP=0`` builds without OpenMP; the kernels then run on one
  thread.  By default OpenMP is used when the compiler accepts it.
* ``FASTCONV_PORTABLE=1`` builds for the baseline of the target
  architecture (any x86-64 CPU), as a wheel meant for other machines must
  be.  By default a source build tunes for the building machine
  (``-march=native``), which is what ``pip install .`` on the machine that
  will run the code wants.
* ``FASTCONV_DEBUG=1`` builds for finding memory errors: Cython's bounds,
  wraparound and initialisation checks on, and (GCC/Clang) ``-O1 -g`` with
  AddressSanitizer and UndefinedBehaviorSanitizer.  Python must then run
  with the sanitizer runtime preloaded:
  ``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``.

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
        elif DEBUG:
            compile_args = ["-O1", "-g", "-fno-omit-frame-pointer"] + SANITIZERS
            link_args = list(SANITIZERS)
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


DEBUG = env_flag("FASTCONV_DEBUG", False)
SANITIZERS = ["-fsanitize=address,undefined"]
# The one place the kernels' Cython directives are set; the debug build
# turns the checks on.
CYTHON_DIRECTIVES = {"language_level": "3", "cdivision": True, "boundscheck": DEBUG,
                     "wraparound": DEBUG, "initializedcheck": DEBUG}


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
        compiler_directives=CYTHON_DIRECTIVES,
        build_dir="build/debug" if DEBUG else None,  # C files of each mode apart
    ),
    cmdclass={"build_ext": BuildExt},
)
