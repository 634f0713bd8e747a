"""Headless Chromium for UI tests: Debian's /usr/bin/chromium driven by playwright (its own
browser download does not work here). Required in CI; skipped with the reason elsewhere."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

# The dashboard's fixtures (tests/ui/dashboard.py), for every module here; a module may
# override one with its own variant (a module-level fixture of the same name).
from tests.ui.dashboard import auth_engine, engine, open_page, page, problems

__all__ = ["artifacts", "auth_engine", "browser", "engine", "open_page", "page", "problems"]

# Playwright's `expect` waits 5 s by default: a real engine on a loaded CI machine (2
# cores, other tests running) may take longer to show what the test waits for.
expect.set_options(timeout=10_000)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is required in CI: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go for a person to look at (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
