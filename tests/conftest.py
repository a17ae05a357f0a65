"""Fixtures and helpers the test files share.

Under CI (CI set in the environment) hypothesis draws the same examples
every run, so a red CI is reproducible and never depends on luck.

Tests that start Python subprocesses run them with ``subprocess_env()`` and
in ``PACKAGE_PARENT``, so that the child imports the fastconv these tests
import: the installed package in CI (a source checkout holds no compiled
kernels), or the checkout itself in a development build."""

import os

import pytest
from hypothesis import settings

import fastconv
from fastconv import ops

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The directory holding the fastconv package under test.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def subprocess_env(**variables):
    """os.environ with PACKAGE_PARENT first on PYTHONPATH, and ``variables``."""
    env = dict(os.environ, **variables)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def restore_threads(monkeypatch):
    """Puts the kernels' thread count back as it was after the test (pinned
    by set_num_threads, or following the OpenMP runtime)."""
    monkeypatch.setattr(ops, "_num_threads", ops._num_threads)


@pytest.fixture
def threads_on_small_shapes(monkeypatch, restore_threads):
    """Kernel calls run get_num_threads() threads whatever their size: the
    one-thread threshold ``ops.MIN_WORK_PER_THREAD`` is lowered to 1, so that
    the small shapes of the tests really run several threads."""
    monkeypatch.setattr(ops, "MIN_WORK_PER_THREAD", 1)


@pytest.fixture
def restore_backend():
    """Puts the backend back as it was after the test."""
    previous = fastconv.get_backend()
    yield
    fastconv.set_backend(previous)


@pytest.fixture(params=["cython", "numpy"])
def backend(request, restore_backend):
    """Runs the test on each backend in turn; yields its name."""
    fastconv.set_backend(request.param)
    return request.param
