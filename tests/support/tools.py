"""The command-line tools some tests check artifacts with (promtool, nginx, logrotate...)."""

import os
import shutil

import pytest


def tool(name: str, package: str) -> str:
    """The tool's path. In CI a missing tool fails the test (`.ci/run` installs it);
    elsewhere the test is skipped, saying what to install."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing; .ci/run installs Debian's {package} package")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found
