"""The HTML reports in a real browser: they open from disk with no error, load nothing
but themselves, draw every chart (canvases of real size with more than a background on
them) and show the monthly returns and the trades. Screenshots go to tests/artifacts/."""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.unit.backtest.test_report import optimization_report, sample_outcome
from veloz.backtest.report import render_backtest_report, render_optimization_report
from veloz.backtest.round_trips import round_trips

# For each chart: its canvases' sizes and the most distinct colours on one of the plot's
# canvases (the widest and tallest ones; the axes' labels would count without data),
# sampling every 7th pixel. A plot with no series shows its grid: two or three colours.
CHART_STATE = """ids => ids.map(id => {
  const canvases = Array.from(document.querySelectorAll('#' + id + ' canvas'));
  const width = Math.max(...canvases.map(c => c.width));
  const height = Math.max(...canvases.map(c => c.height));
  let colours = 0;
  for (const canvas of canvases) {
    if (canvas.width !== width || canvas.height !== height) continue;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < pixels.length; i += 28) {
      seen.add((pixels[i] << 24) | (pixels[i + 1] << 16) | (pixels[i + 2] << 8) | pixels[i + 3]);
    }
    colours = Math.max(colours, seen.size);
  }
  return {id, canvases: canvases.map(c => [c.width, c.height]), colours};
})"""
DRAWN = f"ids => ({CHART_STATE})(ids).every(chart => chart.colours > 8)"


class Opened:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: object) -> None:
        kind = getattr(message, "type", "")
        if kind in ("error", "warning"):
            self.problems.append(f"console {kind}: {getattr(message, 'text', '')}")


def open_report(browser: Browser, path: Path, charts: list[str]) -> tuple[Opened, Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    opened = Opened(page)
    page.goto(path.as_uri())
    page.wait_for_function(DRAWN, arg=charts, timeout=15_000)
    return opened, page


def check_charts(page: Page, charts: list[str]) -> None:
    for chart in page.evaluate(CHART_STATE, charts):
        sizes = chart["canvases"]
        assert sizes, f"{chart['id']}: no canvas"
        assert max(w for w, _ in sizes) > 500 and max(h for _, h in sizes) > 150, chart
        assert chart["colours"] > 8, f"{chart['id']} looks blank: {chart}"


def test_the_backtest_report_in_chromium(browser: Browser, tmp_path: Path, artifacts: Path) -> None:
    outcome = sample_outcome()
    path = tmp_path / "backtest.html"
    path.write_text(render_backtest_report(outcome), encoding="utf-8")
    charts = ["equity-chart", "drawdown-chart", "price-chart"]
    opened, page = open_report(browser, path, charts)
    page.screenshot(path=str(artifacts / "report-backtest.png"), full_page=True)
    for chart in charts:
        page.locator(f"#{chart}").screenshot(path=str(artifacts / f"report-{chart}.png"))

    assert opened.problems == []
    assert opened.requests == [path.as_uri()]  # nothing but the file itself
    check_charts(page, charts)
    # The monthly table: Dec 2021, Jan and Feb 2022 of the sample.
    rows = page.locator("#monthly-returns tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(0).inner_text() == "2021"
    assert rows.nth(1).locator("td").nth(1).inner_text().endswith("%")  # January 2022
    trips, _ = round_trips(outcome.result.fills)
    assert page.locator("#trades tbody tr").count() == len(trips) == 1_663
    first = page.locator("#trades tbody tr").nth(0).locator("td")
    assert first.nth(1).inner_text() in ("long", "short")
    assert page.locator("#statistics table").count() == 4


@pytest.mark.parametrize("with_best", [True, False])
def test_the_optimisation_report_in_chromium(
    browser: Browser, tmp_path: Path, artifacts: Path, with_best: bool
) -> None:
    path = tmp_path / "optimization.html"
    best = sample_outcome() if with_best else None
    path.write_text(render_optimization_report(optimization_report(), best), encoding="utf-8")
    charts = ["equity-chart", "drawdown-chart"] if with_best else []
    opened, page = open_report(browser, path, charts)
    page.screenshot(path=str(artifacts / f"report-optimization-{with_best}.png"), full_page=True)

    assert opened.problems == []
    assert opened.requests == [path.as_uri()]
    check_charts(page, charts)
    assert page.locator("#results tbody tr").count() == 2
    assert page.locator("#walk-forward tbody tr").count() == 1
    assert page.locator("#monthly-returns tbody tr").count() == (2 if with_best else 0)
