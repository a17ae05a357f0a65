"""Build of fastconv's compiled kernels.

The kernel modules (``_conv``, ``_pool``, ``_depthwise``, ``_optim``) are compiled once
per instruction-set level of ``fastconv/_kernels/levels.py``, as
``fastconv._kernels.<level>.<module>``: on x86-64 the baseline, AVX2+FMA and
AVX-512; elsewhere the baseline.  Each level compiles a copy of the same
``.pyx`` sources (made in ``build/kernel_sources/<level>/``, since Cython
names a module after its file).  At import, ``fastconv._kernels`` runs the
best level the CPU supports, so one wheel runs everywhere at full speed.
The levels compile in parallel, one job per core.

Switches (environment variables read at build time):

* ``FASTCONV_NATIVE=1`` builds one level only, ``native``, tuned for the
  building machine (``-march=native``): for people who build fastconv for
  themselves.  Its modules may not run on another CPU.  An in-place build
  (``build_ext --inplace``) adds it next to the levels already built, and
  the dispatcher then prefers it; ``rm -r fastconv/_kernels/native`` drops
  it again.  (The former ``FASTCONV_PORTABLE=1`` is now the default and
  has no effect.)
* ``FASTCONV_OPENMP=0`` builds without OpenMP; the kernels then run on one
  thread.  By default OpenMP is used when the compiler accepts it.
* ``FASTCONV_DEBUG=1`` builds for finding memory errors: Cython's bounds,
  wraparound and initialisation checks on, and (GCC/Clang) ``-O1 -g`` with
  AddressSanitizer and UndefinedBehaviorSanitizer.  Python must then run
  with the sanitizer runtime preloaded:
  ``LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0``.

Compiler flags per platform: GCC and Clang on Linux take ``-fopenmp``;
Apple Clang needs libomp (``brew install libomp``) and
``-Xpreprocessor -fopenmp`` with ``-lomp``; on Windows, clang-cl takes
``/openmp`` and ``/O2`` (MSVC itself lacks the GCC/Clang vector extensions
the microkernels use) and only the baseline is built.  Only Linux with GCC
is tested.
"""

import glob
import os
import platform
import runpy
import shutil
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL_MODULES = ("_conv", "_pool", "_depthwise", "_optim")
# Flags (GCC/Clang) of single modules: _optim's loops call sqrt, which the
# compiler vectorises only when sqrt need not set errno.
MODULE_FLAGS = {"_optim": ("-fno-math-errno",)}
LEVELS = runpy.run_path(os.path.join("fastconv", "_kernels", "levels.py"))


def env_flag(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def levels_to_build():
    """The levels (``levels.Level``) this build compiles, lowest first."""
    if env_flag("FASTCONV_NATIVE", False):
        return [LEVELS["NATIVE"]]
    x86_64 = platform.machine().lower() in ("x86_64", "amd64") and sys.platform != "win32"
    return [LEVELS["BASELINE"]] + (list(LEVELS["X86_LEVELS"]) if x86_64 else [])


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
    """Adds optimisation, instruction-set and OpenMP flags chosen for the
    compiler at hand, and builds the extensions in parallel."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            compile_args, link_args = ["/O2"], []
        elif DEBUG:
            compile_args = ["-O1", "-g", "-fno-omit-frame-pointer"] + SANITIZERS
            link_args = list(SANITIZERS)
        else:
            # -g0: Python's CFLAGS ask for debug info, which costs a third of
            # the compile time and 85% of the modules' size.
            compile_args, link_args = ["-O3", "-g0", "-ffp-contract=fast"], []
        use_openmp = env_flag("FASTCONV_OPENMP", True)
        if use_openmp:
            omp_compile, omp_link = openmp_flags(ctype)
            use_openmp = compiler_accepts(self.compiler, omp_compile, omp_link)
            if use_openmp:
                compile_args += omp_compile
                link_args += omp_link
            else:
                print("fastconv: the compiler has no OpenMP; building single-threaded")
        for ext in self.extensions:
            # ext.extra_compile_args holds the level's flags (see kernel_extension).
            args = compile_args + ext.extra_compile_args
            if ctype != "msvc":
                args += MODULE_FLAGS.get(ext.name.rsplit(".", 1)[-1], ())
            ext.extra_compile_args = args
            ext.extra_link_args = link_args
            ext.define_macros += [("FASTCONV_BUILD_FLAGS", '"%s"' % " ".join(args))]
        super().build_extensions()

    def copy_extensions_to_source(self):
        for ext in self.extensions:  # --inplace: fastconv/_kernels/<level>/ may not exist yet
            os.makedirs(os.path.join(*ext.name.split(".")[:-1]), exist_ok=True)
        super().copy_extensions_to_source()


DEBUG = env_flag("FASTCONV_DEBUG", False)
SANITIZERS = ["-fsanitize=address,undefined"]
# The one place the kernels' Cython directives are set; the debug build
# turns the checks on.
CYTHON_DIRECTIVES = {"language_level": "3", "cdivision": True, "boundscheck": DEBUG,
                     "wraparound": DEBUG, "initializedcheck": DEBUG}


def copy_if_changed(source, target):
    """Copies ``source`` to ``target`` unless it is identical already (so
    that an unchanged source is not compiled again)."""
    with open(source, "rb") as f:
        content = f.read()
    if os.path.exists(target):
        with open(target, "rb") as f:
            if f.read() == content:
                return
    shutil.copyfile(source, target)


def kernel_extension(level, module):
    """``fastconv._kernels.<level>.<module>``, from a copy of fastconv/<module>.pyx
    (and of every .pxd it may cimport) in build/kernel_sources/<level>/."""
    directory = os.path.join("build", "kernel_sources", level.name)
    os.makedirs(directory, exist_ok=True)
    for source in [os.path.join("fastconv", module + ".pyx")] + glob.glob("fastconv/*.pxd"):
        copy_if_changed(source, os.path.join(directory, os.path.basename(source)))
    return Extension(
        "fastconv._kernels.%s.%s" % (level.name, module),
        [os.path.join(directory, module + ".pyx")],
        include_dirs=[numpy.get_include(), "fastconv"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=list(level.flags),
        depends=glob.glob("fastconv/*.h"),
    )


extensions = [Extension("fastconv._kernels._cpu", ["fastconv/_kernels/_cpu.pyx"])]
extensions += [kernel_extension(level, module)
               for level in levels_to_build() for module in KERNEL_MODULES]

setup(
    ext_modules=cythonize(extensions, compiler_directives=CYTHON_DIRECTIVES,
                          nthreads=os.cpu_count() or 1,
                          build_dir="build/debug" if DEBUG else None),  # C files of each mode apart
    cmdclass={"build_ext": BuildExt},
)
