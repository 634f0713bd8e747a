"""The README and docs/ link to files that exist: a moved page or a screenshot that was
never committed shows here, not as a broken link on the page."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# [text](target) and ![alt](target); a target with a scheme or a bare #anchor is not a file.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_names_a_file_that_exists(page: Path) -> None:
    missing = [
        target
        for target in LINK.findall(page.read_text())
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)
        and not target.startswith("#")
        and not (page.parent / target.split("#")[0]).exists()
    ]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_the_readme_shows_the_dashboard() -> None:
    assert "](docs/images/dashboard.png)" in (ROOT / "README.md").read_text()
