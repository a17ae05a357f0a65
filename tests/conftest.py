"""Under CI (CI set in the environment) hypothesis draws the same examples
every run, so a red CI is reproducible and never depends on luck."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
