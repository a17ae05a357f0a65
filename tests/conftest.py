"""Fixtures the test files share.

Under CI (CI set in the environment) hypothesis draws the same examples
every run, so a red CI is reproducible and never depends on luck."""

import os

import pytest
from hypothesis import settings

import fastconv
from fastconv import ops

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


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
