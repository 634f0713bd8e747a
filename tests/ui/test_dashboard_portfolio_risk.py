"""The dashboard's portfolio and risk views in Chromium against a real engine: a fill
updates positions and PnL without a reload; the risk view shows the limits' source, sha256
and the breaker; an admin switches to READONLY and reloads the limits through the confirm
dialog; a bad limits file is refused in words; a viewer is offered no admin action."""

import hashlib
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.processes import OPEN_RISK_LIMITS, SHIPPED_RISK_LIMITS
from tests.ui.dashboard import USER_PASSWORD, Engine, running_engine

WITHIN_MS = 10_000
# A quote amount as the engine writes it: the quote asset's 8 places (USDT in the sim).
QUOTE_AMOUNT = re.compile(r"^-?\d+\.\d{8}$")


def shipped_limits_tripping_on_the_second_denial() -> str:
    """config/risk_limits.yaml, with a breaker that trips on the second rejection and no
    equity-loss trigger (the sim's prices move the 1,000 BTC balance by more than 5,000)."""
    text = SHIPPED_RISK_LIMITS.read_text()
    for old, new in (("max_rejections: 50", "max_rejections: 1"), ("max_loss: 5000", "max_loss:")):
        assert old in text, f"config/risk_limits.yaml no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def limits_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The engine's limits file in the test's directory, so that a test may rewrite it:
    the open limits, or the text given by indirect parametrisation."""
    path = tmp_path / "risk_limits.yaml"
    text = getattr(request, "param", None)
    if text is None:
        shutil.copyfile(OPEN_RISK_LIMITS, path)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def engine(tmp_path: Path, limits_file: Path) -> Iterator[Engine]:
    with running_engine(tmp_path, VELOZ_RISK_LIMITS_FILE=str(limits_file)) as running:
        yield running


def confirm(page: Page) -> None:
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Confirm").click()


def test_a_fill_updates_positions_and_pnl_without_a_reload(
    engine: Engine, page: Page, artifacts: Path
) -> None:
    page.goto(f"{engine.url}#/portfolio")
    expect(page.get_by_test_id("portfolio-positions")).to_contain_text("No positions")
    page.evaluate("window.__sameDocument = true")
    # The chart starts with the engine's own equity samples (/api/equity; the first is
    # taken at the first quote).
    expect(page.get_by_test_id("portfolio-chart")).to_have_attribute(
        "data-engine-samples", re.compile(r"^[1-9]\d*$")
    )

    order = {"side": "BUY", "symbol": "BTCUSDT", "qty": "0.5", "type": "MARKET"}
    assert engine.http.post("/api/order", json=order).status_code == 200

    row = page.get_by_test_id("position-row-BTCUSDT")
    expect(row).to_be_visible(timeout=WITHIN_MS)
    position = engine.read("/api/positions")["positions"][0]
    # As the engine wrote them: the quantity net of the fee charged in BTC, the fees.
    expect(row.get_by_test_id("position-qty")).to_have_text(position["qty"])
    expect(row.get_by_test_id("position-fees")).to_have_text(position["fees"])
    expect(row.get_by_test_id("position-rpnl")).to_have_text(position["realized_pnl"])
    expect(row.get_by_test_id("position-upnl")).to_have_text(QUOTE_AMOUNT)
    expect(page.get_by_test_id("balance-row-BTC")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True

    # The mark moves with the market: unrealised PnL follows without a reload.
    first = row.get_by_test_id("position-upnl").inner_text()
    expect(row.get_by_test_id("position-upnl")).not_to_have_text(first, timeout=WITHIN_MS)

    # Selling part realises PnL (the fees alone make it non-zero).
    sell = order | {"side": "SELL", "qty": "0.2"}
    assert engine.http.post("/api/order", json=sell).status_code == 200
    expect(row.get_by_test_id("position-qty")).to_have_text("0.29950", timeout=WITHIN_MS)
    realised = engine.read("/api/positions")["positions"][0]["realized_pnl"]
    assert realised != "0.00000000"
    expect(row.get_by_test_id("position-rpnl")).to_have_text(realised)
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(artifacts / "portfolio.png"))


@pytest.mark.parametrize(
    "limits_file", [shipped_limits_tripping_on_the_second_denial()], indirect=True, ids=["shipped"]
)
def test_risk_view_shows_the_limits_source_sha256_and_breaker(
    engine: Engine, page: Page, limits_file: Path, artifacts: Path
) -> None:
    page.goto(f"{engine.url}#/risk")
    expect(page.get_by_test_id("risk-source")).to_have_text(str(limits_file))
    sha256 = hashlib.sha256(limits_file.read_bytes()).hexdigest()
    expect(page.get_by_test_id("risk-sha256")).to_have_text(sha256)
    expect(page.get_by_test_id("risk-breaker")).to_contain_text("closed")
    expect(page.get_by_test_id("risk-mode")).to_have_text("ACTIVE")
    expect(page.get_by_test_id("risk-var")).to_contain_text("%")
    # The shipped file's override: BTCUSDT's max qty 5 (Max qty is the 3rd column).
    btc = page.get_by_test_id("risk-limits").get_by_role("row", name=re.compile("^BTCUSDT"))
    expect(btc.get_by_role("cell").nth(1)).to_have_text("5")
    expect(page.get_by_test_id("risk-breaker-limits")).to_contain_text("max_rejections")
    page.screenshot(path=str(artifacts / "risk.png"))

    # Two orders over BTCUSDT's max qty: denied, and the second trips the breaker, which
    # the page shows as it happens, with the denials by reason.
    too_big = {"side": "BUY", "symbol": "BTCUSDT", "qty": "6", "price": "50000"}
    for _ in range(2):
        assert engine.http.post("/api/order", json=too_big).status_code == 422
    expect(page.get_by_test_id("risk-breaker")).to_contain_text("TRIPPED: 2 rejections")
    expect(page.get_by_test_id("risk-mode")).to_contain_text("HALTED")
    expect(page.get_by_test_id("risk-denials")).to_contain_text("2")

    page.get_by_test_id("risk-action-reset-breaker").click()
    confirm(page)
    expect(page.get_by_test_id("risk-answer")).to_have_text("Reset breaker: mode ACTIVE (changed).")
    expect(page.get_by_test_id("risk-breaker")).to_have_text("closed (1 trip)")


def test_admin_sets_readonly_through_the_confirm_dialog(engine: Engine, page: Page) -> None:
    page.goto(f"{engine.url}#/risk")
    expect(page.get_by_test_id("risk-mode")).to_have_text("ACTIVE")

    # From the keyboard: Enter on the button asks, Esc cancels and nothing is sent.
    page.get_by_test_id("risk-action-readonly").focus()
    page.keyboard.press("Enter")
    expect(
        page.get_by_test_id("confirm-dialog").get_by_role("button", name="Cancel")
    ).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("confirm-dialog")).to_have_count(0)
    expect(page.get_by_test_id("risk-answer")).to_have_count(0)
    assert engine.read("/api/risk/status")["mode"] == "ACTIVE"

    page.get_by_test_id("risk-action-readonly").click()
    confirm(page)
    expect(page.get_by_test_id("risk-answer")).to_have_text("Read-only: mode READONLY (changed).")
    expect(page.get_by_test_id("risk-mode")).to_have_text(
        "READONLY — readonly by anonymous:127.0.0.1"
    )
    expect(page.get_by_test_id("status-mode")).to_contain_text("READONLY")
    assert engine.read("/api/risk/status")["mode"] == "READONLY"


def test_reload_shows_the_answer_and_a_bad_file_in_words(
    engine: Engine, page: Page, limits_file: Path
) -> None:
    page.goto(f"{engine.url}#/risk")
    old_sha = hashlib.sha256(limits_file.read_bytes()).hexdigest()
    expect(page.get_by_test_id("risk-sha256")).to_have_text(old_sha)

    limits_file.write_text("defaults:\n  max_qty: 7\n")
    new_sha = hashlib.sha256(limits_file.read_bytes()).hexdigest()
    page.get_by_test_id("risk-action-reload").click()
    confirm(page)
    expect(page.get_by_test_id("risk-answer")).to_contain_text(f"sha256 {new_sha}")
    expect(page.get_by_test_id("risk-sha256")).to_have_text(new_sha)
    expect(page.get_by_test_id("risk-limits")).to_contain_text("7")

    limits_file.write_text("defaults:\n  max_qty: lots\n")
    page.get_by_test_id("risk-action-reload").click()
    confirm(page)
    error = page.get_by_test_id("risk-action-error")
    expect(error).to_contain_text("bad_limits: ")
    expect(error).to_contain_text("max_qty")
    expect(error).not_to_contain_text("[object Object]")
    expect(page.get_by_test_id("risk-answer")).to_have_count(0)
    # The limits in force stay.
    expect(page.get_by_test_id("risk-sha256")).to_have_text(new_sha)


def test_a_viewer_is_offered_no_admin_action(
    auth_engine: Engine, open_page: Callable[[Engine], Page]
) -> None:
    auth_engine.add_user("watcher", "viewer")
    viewer = open_page(auth_engine)
    viewer.goto(f"{auth_engine.url}#/risk")
    viewer.get_by_test_id("login-user").fill("watcher")
    viewer.get_by_test_id("login-password").fill(USER_PASSWORD)
    viewer.get_by_test_id("login-submit").click()

    expect(viewer.get_by_test_id("risk-mode")).to_have_text("ACTIVE")
    expect(viewer.get_by_test_id("risk-sha256")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    expect(viewer.get_by_role("region", name="Admin")).to_have_count(0)
    expect(viewer.get_by_role("button", name=re.compile("Reload|Read-only|breaker"))).to_have_count(
        0
    )
    viewer.get_by_test_id("tab-portfolio").click()
    expect(viewer.get_by_test_id("portfolio-positions")).to_contain_text("No positions")
