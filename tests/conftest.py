"""Shared test set-up.

Under CI (CI set in the environment) hypothesis draws the same examples
every run, so a red CI is reproducible and never depends on luck.

Tests that start Python subprocesses run them with ``subprocess_env()`` and
in ``PACKAGE_PARENT``, so that the child imports the fastconv these tests
import: the installed package in CI (a source checkout holds no compiled
kernels), or the checkout itself in a development build."""

import os

import fastconv
from hypothesis import settings

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
