"""The dashboard's strategies and research views in Chromium against a real engine: a grid
strategy added and started from the form generated from its parameter schema shows its
resting orders and its state, and stops through the confirm dialog; a parameter the
engine refuses shows the engine's 400 message naming it; a small backtest on the sample
bars runs from the research form to `done` and its HTML report opens in a new tab."""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.sample_bars import SAMPLE, sample_path
from tests.ui import dashboard
from tests.ui.dashboard import Engine, running_engine

WITHIN_MS = 10_000


def with_sample(directory: Path) -> str:
    """A data directory in `directory` holding the sample bars (a research job may read
    only files under VELOZ_DATA_DIR)."""
    data = directory / "data"
    data.mkdir(parents=True)
    shutil.copyfile(sample_path(), data / SAMPLE)
    return str(data)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """The shared engine, with the sample bars in its data directory."""
    with running_engine(tmp_path, VELOZ_DATA_DIR=with_sample(tmp_path)) as running:
        yield running


@pytest.fixture
def auth_engine(tmp_path: Path) -> Iterator[Engine]:
    """The shared engine with authentication on (`engine.http` logged in as admin), with
    the sample bars in its data directory."""
    directory = tmp_path / "auth"
    with running_engine(directory, auth=True, VELOZ_DATA_DIR=with_sample(directory)) as running:
        yield running


def test_a_grid_added_from_the_form_shows_its_orders_and_stops(
    engine: Engine, page: Page, artifacts: Path
) -> None:
    page.goto(f"{engine.url}#/strategies")
    expect(page.get_by_test_id("strategies-empty")).to_be_visible(timeout=WITHIN_MS)

    form = page.get_by_test_id("strategy-add-form")
    form.get_by_label("strategy id").fill("grid-ui")
    form.get_by_label("strategy", exact=True).select_option("grid")
    form.get_by_label("symbol").select_option("BTCUSDT")
    # The form is the grid's schema: its fields, with their defaults filled in.
    expect(page.locator("#strategy-param-levels")).to_have_value("5")
    page.locator("#strategy-param-levels").fill("2")
    page.locator("#strategy-param-spacing").fill("50.0")
    page.locator("#strategy-param-qty").fill("0.010")
    page.get_by_test_id("strategy-add-submit").click()

    expect(page.get_by_test_id("strategy-state-grid-ui")).to_have_text("running", timeout=WITHIN_MS)
    # Two levels a side: four resting orders, counted live from the stream's events.
    expect(page.get_by_test_id("strategy-open-grid-ui")).to_have_text("4", timeout=WITHIN_MS)
    page.get_by_role("button", name="Show the orders of grid-ui").click()
    orders = page.get_by_test_id("strategy-orders-grid-ui").locator("tbody tr")
    expect(orders).to_have_count(4, timeout=WITHIN_MS)
    expect(orders.filter(has_text="BUY")).to_have_count(2)
    expect(orders.filter(has_text="SELL")).to_have_count(2)
    # What was typed reached the engine as typed: no digit lost or added on the way.
    added = engine.read("/api/strategies/grid-ui")
    assert added["params"] == {
        "levels": "2",
        "spacing": "50.0",
        "qty": "0.010",
        "lower": "0",
        "upper": "0",
    }
    page.screenshot(path=str(artifacts / "strategies.png"))

    # Paused: not called, its resting orders stay; resumed: running again.
    page.get_by_test_id("strategy-pause-grid-ui").click()
    expect(page.get_by_test_id("strategy-state-grid-ui")).to_have_text("paused", timeout=WITHIN_MS)
    expect(page.get_by_test_id("strategy-open-grid-ui")).to_have_text("4")
    page.get_by_test_id("strategy-resume-grid-ui").click()
    expect(page.get_by_test_id("strategy-state-grid-ui")).to_have_text("running", timeout=WITHIN_MS)

    # Stop asks first; Cancel leaves it running.
    page.get_by_test_id("strategy-stop-grid-ui").click()
    page.get_by_test_id("confirm-cancel").click()
    expect(page.get_by_test_id("strategy-state-grid-ui")).to_have_text("running")
    page.get_by_test_id("strategy-stop-grid-ui").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("strategy-state-grid-ui")).to_have_text("stopped", timeout=WITHIN_MS)
    expect(page.get_by_test_id("strategy-open-grid-ui")).to_have_text("0", timeout=WITHIN_MS)
    # A stopped strategy cannot be started again: only delete is offered.
    expect(page.get_by_test_id("strategy-start-grid-ui")).to_have_count(0)
    expect(page.get_by_test_id("strategy-delete-grid-ui")).to_be_visible()


def test_a_parameter_the_engine_refuses_is_shown_in_its_words(engine: Engine, page: Page) -> None:
    page.goto(f"{engine.url}#/strategies")
    form = page.get_by_test_id("strategy-add-form")
    form.get_by_label("strategy id").fill("ema-ui")
    form.get_by_label("strategy", exact=True).select_option("ema_cross")

    # The form's checks, from the schema, and what it sends: the typed text, every digit.
    checked = page.evaluate(
        """async () => {
            const { validate, toPayload } = await import('/js/form.js')
            const schema = {
              type: 'object',
              required: ['name'],
              properties: {
                name: { type: 'string', minLength: 1 },
                n: { type: 'integer', minimum: 1, maximum: 10 },
                qty: { type: 'string', format: 'decimal', exclusiveMinimum: 0 },
                on: { type: 'boolean', default: false },
              },
            }
            return [
              validate(schema, { name: '', n: '1.5', qty: '0', on: false }),
              validate(schema, { name: 'x', n: '11', qty: 'abc' }),
              toPayload(schema, { name: 'x', n: ' 7 ', qty: '0.12345678901234567890', on: true }),
            ]
        }"""
    )
    assert checked == [
        {
            "name": "name is required",
            "n": "n must be a whole number, got 1.5",
            "qty": "qty must be greater than 0",
        },
        {"n": "n must be at most 10", "qty": "qty must be a number, got abc"},
        {"name": "x", "n": "7", "qty": "0.12345678901234567890", "on": True},
    ]

    # Out of the schema's bounds: refused in the form, nothing sent.
    page.locator("#strategy-param-fast").fill("0")
    page.get_by_test_id("strategy-add-submit").click()
    expect(page.get_by_text("fast must be at least 1")).to_be_visible()
    assert engine.read("/api/strategies")["strategies"] == []

    # Within each bound but wrong together: the engine's 400, verbatim.
    page.locator("#strategy-param-fast").fill("30")
    page.locator("#strategy-param-slow").fill("20")
    page.get_by_test_id("strategy-add-submit").click()
    expect(page.get_by_role("alert")).to_have_text(
        "bad_params: parameters of ema_cross: fast (30) must be shorter than slow (20)",
        timeout=WITHIN_MS,
    )
    assert engine.read("/api/strategies")["strategies"] == []

    # An id already used: the engine's 409, verbatim.
    taken = {"strategy_id": "ema-ui", "strategy": "ema_cross", "symbol": "BTCUSDT"}
    assert engine.http.post("/api/strategies", json=taken | {"start": False}).status_code == 201
    page.locator("#strategy-param-fast").fill("10")
    page.get_by_test_id("strategy-add-submit").click()
    expect(form.get_by_role("alert")).to_have_text(
        "duplicate_strategy_id: strategy id ema-ui is already used", timeout=WITHIN_MS
    )


def summary_cell(summary: Locator, name: str) -> str:
    """The value of the run summary's row `name`."""
    row = summary.locator("tr").filter(has=summary.page.get_by_role("rowheader", name=name))
    return row.locator("td").inner_text().strip()


def assert_rounded(shown: str, value: str, *, percent: bool) -> None:
    """`shown` is `value` (a float's JSON text) to at most 6 significant digits, as a
    percentage with " %" when `percent`."""
    assert shown.endswith(" %") == percent, shown
    text = shown.removesuffix(" %")
    assert len(re.sub(r"\D", "", text).lstrip("0")) <= 6, shown
    assert float(text) == pytest.approx(float(value) * (100 if percent else 1), rel=1e-5)


def test_a_backtest_runs_from_the_research_view_and_opens_its_report(
    engine: Engine, page: Page, artifacts: Path
) -> None:
    page.goto(f"{engine.url}#/research")
    expect(page.get_by_test_id("research-empty")).to_be_visible(timeout=WITHIN_MS)
    page.get_by_test_id("research-form").get_by_label("strategy", exact=True).select_option(
        "ema_cross"
    )
    page.locator("#research-param-fast").fill("10")
    page.locator("#research-param-slow").fill("30")
    page.locator("#research-param-qty").fill("0.01")
    page.locator("#research-symbol").fill("BTCUSDT")
    page.locator("#research-start").fill("2022-01-01")
    page.locator("#research-end").fill("2022-01-03")

    # A file outside the data directory: the engine's 400, in words, and no job.
    page.locator("#research-source").fill("../secret.csv")
    page.get_by_test_id("research-submit").click()
    expect(page.get_by_test_id("research-form-error")).to_have_text(
        "bad_params: data source '../secret.csv': over the API only store:VENUE/SYMBOL/INTERVAL"
        " or a file under the data directory (VELOZ_DATA_DIR) may be read",
        timeout=WITHIN_MS,
    )
    assert engine.read("/api/backtests")["count"] == 0

    # An optimisation's space is built from the form: a value given twice is the
    # engine's 400 naming the parameter.
    page.locator("#research-source").fill(SAMPLE)
    page.locator("#research-kind-optimization").check()
    page.locator("#research-space-fast-mode").select_option("values")
    page.locator("#research-space-fast-values").fill("5, 5")
    page.get_by_test_id("research-submit").click()
    expect(page.get_by_test_id("research-form-error")).to_have_text(
        "bad_params: space fast of ema_cross: a value is given twice", timeout=WITHIN_MS
    )
    assert engine.read("/api/optimizations")["count"] == 0

    page.locator("#research-kind-backtest").check()
    page.get_by_test_id("research-submit").click()
    expect(page.get_by_test_id("research-form-error")).to_have_count(0, timeout=WITHIN_MS)
    states = page.locator("[data-testid^='job-state-']")
    expect(states).to_have_count(1, timeout=WITHIN_MS)
    expect(states).to_have_text("done", timeout=20_000)
    job = engine.read("/api/backtests")["jobs"][0]
    assert job["request"]["params"] == {"fast": "10", "slow": "30", "qty": "0.01"}
    # Two days of one-minute bars, all played.
    expect(page.get_by_test_id(f"job-progress-{job['id']}")).to_have_text("2880 / 2880")
    summary = page.get_by_test_id(f"job-summary-{job['id']}")
    detail = engine.read(f"/api/backtests/{job['id']}")
    expect(summary).to_contain_text(detail["summary"]["final_equity"], timeout=WITHIN_MS)
    # Money exactly as the engine wrote it; statistics (floats) rounded for reading.
    assert summary_cell(summary, "fees") == detail["summary"]["fees"]
    statistics = detail["summary"]["statistics"]
    assert_rounded(summary_cell(summary, "sharpe"), statistics["sharpe"], percent=False)
    assert_rounded(summary_cell(summary, "total return"), statistics["total_return"], percent=True)
    assert_rounded(summary_cell(summary, "max drawdown"), statistics["max_drawdown"], percent=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "research.png"))

    with page.context.expect_page() as opened:
        page.get_by_test_id(f"job-report-{job['id']}").click()
    report = opened.value
    report.wait_for_load_state()
    assert report.url.endswith(f"/api/backtests/{job['id']}/report")
    expect(report).to_have_title("Backtest: ema_cross on BTCUSDT")
    report.close()


def test_a_viewer_sees_strategies_and_runs_but_is_offered_no_action(
    auth_engine: Engine, open_page: dashboard.PageOpener
) -> None:
    auth_engine.add_user("watcher", "viewer")
    backtest = {
        "strategy": "ema_cross",
        "data": [{"symbol": "BTCUSDT", "source": SAMPLE}],
        "end": "2021-12-31T23:30",
    }
    submitted = auth_engine.http.post("/api/backtests", json=backtest)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]  # it runs while the strategies view is checked
    strategy = {"strategy_id": "grid-v", "strategy": "grid", "symbol": "BTCUSDT"}
    added = auth_engine.http.post("/api/strategies", json=strategy | {"params": {"levels": 1}})
    assert added.status_code == 201, added.text

    page = open_page(auth_engine)
    page.goto(f"{auth_engine.url}#/strategies")
    page.get_by_label("User").fill("watcher")
    page.get_by_label("Password").fill(dashboard.USER_PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_test_id("strategy-state-grid-v")).to_have_text("running", timeout=WITHIN_MS)
    expect(page.get_by_test_id("strategies-viewing-only")).to_be_visible()
    expect(page.get_by_test_id("strategy-add-form")).to_have_count(0)
    expect(page.get_by_test_id("strategy-row-grid-v").get_by_role("button")).to_have_text(
        ["▸"]  # only the one that shows its orders
    )

    page.get_by_test_id("tab-research").click()
    expect(page.get_by_test_id(f"job-state-{job_id}")).to_have_text("done", timeout=20_000)
    expect(page.get_by_test_id("research-viewing-only")).to_be_visible()
    expect(page.get_by_test_id("research-form")).to_have_count(0)
    expect(page.get_by_test_id(f"job-delete-{job_id}")).to_have_count(0)
    # The report opens in a new tab, which cannot send the session's header: the link
    # carries the access token.
    with page.context.expect_page() as opened:
        page.get_by_test_id(f"job-report-{job_id}").click()
    report = opened.value
    report.wait_for_load_state()
    expect(report).to_have_title("Backtest: ema_cross on BTCUSDT")
    report.close()
