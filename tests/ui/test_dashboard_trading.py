"""The dashboard's trade view in Chromium against a real engine: an order placed from the
ticket shows in the blotter and on the chart and is cancelled from the blotter; a
marketable order fills and the fill shows in the trades and on the chart; a risk rejection
is shown verbatim; an off-grid quantity is refused before anything is sent; READONLY
disables the ticket with the reason; a viewer is offered no ticket and no cancel."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.ui.dashboard import USER_PASSWORD, Engine, PageOpener, running_engine

WITHIN_MS = 10_000
# The engine's own limits for this module: BTCUSDT orders above 5 are refused (422),
# nothing else is limited.
LIMITS = """\
defaults: {}
drawdown_warning_pct: null
drawdown_critical_pct: null
symbols:
  BTCUSDT:
    max_qty: 5
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine for the module's tests (each leaves no open order behind it that the
    next one minds), with the limits above."""
    directory = tmp_path_factory.mktemp("trading")
    limits = directory / "risk_limits.yaml"
    limits.write_text(LIMITS)
    with running_engine(directory, VELOZ_RISK_LIMITS_FILE=str(limits)) as running:
        yield running


class Watched:
    """The trade view on a page (console errors and foreign requests fail the test through
    the shared fixtures) with the orders it posts recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.orders: list[dict[str, Any]] = []
        page.on("request", self._request)

    def _request(self, request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/order"):
            self.orders.append(json.loads(request.post_data or "{}"))


def open_trade_view(page: Page, on: Engine) -> None:
    page.goto(f"{on.url}#/trade")
    expect(page.get_by_test_id("ticket-filters")).to_be_visible(timeout=WITHIN_MS)
    expect(page.get_by_test_id("market-feed")).to_have_attribute("data-state", "open")


@pytest.fixture
def watched(open_page: PageOpener, engine: Engine) -> Watched:
    page = open_page(engine)
    watched = Watched(page)
    open_trade_view(page, engine)
    return watched


def placed_id(page: Page, previous: str | None = None) -> str:
    """The id of the order the ticket placed (another one than `previous`)."""
    placed = page.get_by_test_id("ticket-placed")
    expect(placed).to_be_visible(timeout=WITHIN_MS)
    if previous is not None:
        expect(placed).not_to_contain_text(previous, timeout=WITHIN_MS)
    found = re.search(r"Order (\S+):", placed.inner_text())
    assert found, placed.inner_text()
    return found.group(1)


def fill_ticket(page: Page, *, qty: str, price: str | None = None, side: str = "buy") -> None:
    page.get_by_test_id(f"ticket-side-{side}").check()
    page.get_by_test_id("ticket-type").select_option("MARKET" if price is None else "LIMIT")
    page.get_by_test_id("ticket-qty").fill(qty)
    if price is not None:
        page.get_by_test_id("ticket-price").fill(price)


def bid(engine: Engine) -> str:
    market = engine.read("/api/market?symbol=BTCUSDT")
    return str(market["bid"])


def test_an_order_from_the_ticket_shows_in_the_blotter_and_on_the_chart_and_cancels(
    watched: Watched, engine: Engine
) -> None:
    page = watched.page
    # 10 % under the bid, on the tick: rests.
    price = f"{float(bid(engine)) * 0.9:.2f}"
    fill_ticket(page, qty="0.01", price=price)
    page.get_by_test_id("ticket-price").press("Enter")  # Enter submits
    coid = placed_id(page)
    assert watched.orders[-1]["qty"] == "0.01" and watched.orders[-1]["price"] == price
    row = page.get_by_test_id("blotter-open").get_by_test_id(f"order-row-{coid}")
    expect(row).to_be_visible(timeout=WITHIN_MS)
    expect(row).to_contain_text(price)
    expect(page.get_by_test_id(f"chart-order-{coid}")).to_contain_text(f"BUY 0.01000 @ {price}")

    page.get_by_test_id(f"cancel-{coid}").click()
    expect(row).to_have_count(0, timeout=WITHIN_MS)
    expect(page.get_by_test_id(f"chart-order-{coid}")).to_have_count(0)
    page.get_by_test_id("blotter-tab-history").click()
    history = page.get_by_test_id("blotter-history").get_by_test_id(f"order-row-{coid}")
    expect(history).to_have_attribute("data-status", "CANCELLED", timeout=WITHIN_MS)
    state = engine.http.get("/api/order_state", params={"client_order_id": coid}).json()
    assert state["status"] == "CANCELLED"


def test_a_marketable_order_fills_and_the_fill_shows_in_trades_and_on_the_chart(
    watched: Watched, engine: Engine, artifacts: Path
) -> None:
    page = watched.page
    fill_ticket(page, qty="0.02000")
    page.get_by_test_id("ticket-submit").click()
    coid = placed_id(page)
    expect(page.get_by_test_id("ticket-placed")).to_contain_text("FILLED", timeout=WITHIN_MS)
    trades = engine.http.get("/api/trades", params={"symbol": "BTCUSDT", "limit": 5}).json()
    trade_id = next(t["trade_id"] for t in trades["trades"] if t["client_order_id"] == coid)
    page.get_by_test_id("blotter-tab-trades").click()
    row = page.get_by_test_id(f"trade-row-{trade_id}")
    expect(row).to_be_visible(timeout=WITHIN_MS)
    expect(row).to_contain_text("0.02000")
    expect(page.get_by_test_id(f"chart-fill-{trade_id}")).to_contain_text("0.02000")

    # A resting order too, for the screenshot: a price line beside the fill's marker.
    fill_ticket(page, qty="0.01", price=f"{float(bid(engine)) * 0.999:.2f}")
    page.get_by_test_id("ticket-qty").press("Enter")
    resting = placed_id(page, previous=coid)
    page.get_by_test_id("blotter-tab-open").click()
    expect(page.get_by_test_id(f"order-row-{resting}")).to_be_visible(timeout=WITHIN_MS)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "trade.png"))


def test_a_risk_rejection_is_shown_verbatim(watched: Watched, engine: Engine) -> None:
    page = watched.page
    price = f"{float(bid(engine)) * 0.9:.2f}"
    fill_ticket(page, qty="6", price=price)
    page.keyboard.press("Enter")
    error = page.get_by_test_id("ticket-error")
    expect(error).to_be_visible(timeout=WITHIN_MS)
    # The same order over HTTP: the words the ticket shows are the engine's.
    answer = engine.http.post(
        "/api/order", json={"symbol": "BTCUSDT", "side": "BUY", "qty": "6", "price": price}
    )
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "risk_rejected" and body["reason"] == "qty_above_maximum"
    assert error.inner_text().strip() == f"risk_rejected: {body['message']} ({body['reason']})"
    # Esc clears what was typed, and the error with it.
    page.get_by_test_id("ticket-qty").press("Escape")
    expect(page.get_by_test_id("ticket-qty")).to_have_value("")
    expect(error).to_have_count(0)


def test_an_off_grid_qty_is_refused_before_sending(watched: Watched, engine: Engine) -> None:
    page = watched.page
    fill_ticket(page, qty="0.000015", price=f"{float(bid(engine)) * 0.9:.2f}")
    invalid = page.get_by_test_id("ticket-invalid")
    expect(invalid).to_contain_text("LOT_SIZE: qty 0.000015 is not a multiple of the step 0.00001")
    page.get_by_test_id("ticket-submit").click()
    fill_ticket(page, qty="0.000001")
    expect(invalid).to_contain_text("not a multiple of the step 0.00001")
    page.get_by_test_id("ticket-qty").press("Enter")
    fill_ticket(page, qty="0.0001", price="1.00")  # 0.0001 x 1 = 0.0001 USDT
    expect(invalid).to_contain_text("NOTIONAL")
    expect(invalid).to_contain_text("minimum notional 5 USDT")
    page.get_by_test_id("ticket-qty").press("Enter")
    assert watched.orders == []  # nothing was sent


def test_readonly_disables_the_ticket_with_the_reason(watched: Watched, engine: Engine) -> None:
    page = watched.page
    fill_ticket(page, qty="0.01", price=f"{float(bid(engine)) * 0.9:.2f}")
    assert engine.http.post("/api/admin/readonly").status_code == 200
    try:
        blocked = page.get_by_test_id("ticket-blocked")
        expect(blocked).to_contain_text("Trading is READONLY", timeout=WITHIN_MS)
        expect(page.get_by_test_id("ticket-submit")).to_be_disabled()
        expect(page.get_by_test_id("ticket-qty")).to_be_disabled()
    finally:
        assert engine.http.post("/api/admin/readwrite").status_code == 200
    expect(page.get_by_test_id("ticket-blocked")).to_have_count(0, timeout=WITHIN_MS)
    # What was typed is still there.
    expect(page.get_by_test_id("ticket-qty")).to_have_value("0.01")
    assert watched.orders == []


def test_a_viewer_sees_no_ticket_and_no_cancel(open_page: PageOpener, auth_engine: Engine) -> None:
    auth_engine.add_user("watcher", "viewer")
    market = auth_engine.http.get("/api/market", params={"symbol": "BTCUSDT"})
    coid = auth_engine.place("viewer-sees", price=f"{float(market.json()['bid']) * 0.9:.2f}")[
        "client_order_id"
    ]
    page = open_page(auth_engine)
    page.goto(f"{auth_engine.url}#/trade")
    page.get_by_test_id("login-user").fill("watcher")
    page.get_by_test_id("login-password").fill(USER_PASSWORD)
    page.get_by_test_id("login-password").press("Enter")
    row = page.get_by_test_id(f"order-row-{coid}")
    expect(row).to_be_visible(timeout=WITHIN_MS)
    expect(page.get_by_test_id("ticket-viewonly")).to_contain_text("viewer")
    expect(page.get_by_test_id("ticket-form")).to_have_count(0)
    expect(page.get_by_test_id(f"cancel-{coid}")).to_have_count(0)
    expect(page.get_by_test_id("cancel-all")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("cancel", re.I))).to_have_count(0)
    # The market is there for a viewer too: the instruments and the feed.
    expect(page.get_by_test_id("market-feed")).to_have_attribute("data-state", "open")


def test_the_history_pages_back_and_filters_by_symbol_and_status(
    watched: Watched, engine: Engine
) -> None:
    page = watched.page
    price = f"{float(bid(engine)) * 0.9:.2f}"
    placed = []
    for n in range(30):  # more than a page of 25
        coid = f"page-{n:02d}"
        order = {"symbol": "BTCUSDT", "side": "BUY", "qty": "0.001", "price": price}
        answer = engine.http.post("/api/order", json=order | {"client_order_id": coid})
        assert answer.status_code == 200, answer.text
        placed.append(coid)
    eth = engine.read("/api/market?symbol=ETHUSDT")
    answer = engine.http.post(
        "/api/order",
        json={
            "symbol": "ETHUSDT",
            "side": "BUY",
            "qty": "0.01",
            "price": f"{float(eth['bid']) * 0.9:.2f}",
            "client_order_id": "eth-1",
        },
    )
    assert answer.status_code == 200, answer.text
    assert engine.http.post("/api/cancel", json={"client_order_id": "page-29"}).is_success

    history = page.get_by_test_id("blotter-history")
    page.get_by_test_id("blotter-tab-history").click()
    # The blotter follows the selected symbol: no ETHUSDT order.
    expect(history.get_by_test_id("order-row-page-28")).to_be_visible(timeout=WITHIN_MS)
    expect(history.get_by_test_id("order-row-eth-1")).to_have_count(0)
    rows = history.locator("tbody tr")
    expect(rows).to_have_count(25)
    first_page = set(rows.evaluate_all("rs => rs.map(r => r.dataset.testid)"))
    page.get_by_test_id("history-pager-older").click()
    expect(history.get_by_test_id("order-row-page-00")).to_be_visible(timeout=WITHIN_MS)
    second_page = set(rows.evaluate_all("rs => rs.map(r => r.dataset.testid)"))
    assert first_page.isdisjoint(second_page)
    assert {f"order-row-{c}" for c in placed} <= first_page | second_page
    page.get_by_test_id("history-pager-newest").click()
    expect(history.get_by_test_id("order-row-page-28")).to_be_visible(timeout=WITHIN_MS)

    page.get_by_test_id("blotter-status").select_option("CANCELLED")
    expect(history.get_by_test_id("order-row-page-28")).to_have_count(0, timeout=WITHIN_MS)
    expect(history.get_by_test_id("order-row-page-29")).to_be_visible()
    page.get_by_test_id("blotter-symbol").select_option("")  # every symbol
    page.get_by_test_id("blotter-status").select_option("open")
    expect(history.get_by_test_id("order-row-eth-1")).to_be_visible(timeout=WITHIN_MS)
    expect(history.get_by_test_id("order-row-page-29")).to_have_count(0)

    page.get_by_test_id("blotter-tab-open").click()
    page.get_by_test_id("cancel-all").click()
    expect(page.get_by_test_id("confirm-dialog")).to_be_visible()
    page.get_by_test_id("confirm-ok").click()
    open_rows = page.get_by_test_id("blotter-open").locator("tbody tr[data-status]")
    expect(open_rows).to_have_count(0, timeout=WITHIN_MS)
    expect(page.get_by_test_id("blotter-open")).to_contain_text("No open orders.")
    assert engine.http.get("/api/orders_state", params={"status": "open"}).json()["count"] == 0


def log_in_on_the_trade_view(page: Page, user_id: str) -> None:
    page.get_by_test_id("login-user").fill(user_id)
    page.get_by_test_id("login-password").fill(USER_PASSWORD)
    page.get_by_test_id("login-password").press("Enter")
    expect(page.get_by_test_id("login-form")).to_have_count(0, timeout=WITHIN_MS)
    expect(page.get_by_test_id("ticket-filters")).to_be_visible(timeout=WITHIN_MS)


def type_an_order_and_log_out(page: Page) -> None:
    """A sell of 0.012 at 51234.56 IOC typed in the ticket (not placed), then a logout."""
    page.get_by_test_id("ticket-side-sell").check()
    page.get_by_test_id("ticket-qty").fill("0.012")
    page.get_by_test_id("ticket-price").fill("51234.56")
    page.get_by_test_id("ticket-tif").select_option("IOC")
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("ticket-form")).to_have_count(0, timeout=WITHIN_MS)


def test_what_was_typed_survives_logging_out_and_in_again(
    auth_engine: Engine, open_page: PageOpener
) -> None:
    auth_engine.add_user("dealer", "trader")
    page = open_page(auth_engine)
    page.goto(f"{auth_engine.url}#/trade")
    log_in_on_the_trade_view(page, "dealer")
    type_an_order_and_log_out(page)
    log_in_on_the_trade_view(page, "dealer")
    expect(page.get_by_test_id("ticket-qty")).to_have_value("0.012")
    expect(page.get_by_test_id("ticket-price")).to_have_value("51234.56")
    expect(page.get_by_test_id("ticket-tif")).to_have_value("IOC")
    expect(page.get_by_test_id("ticket-side-sell")).to_be_checked()


def expect_an_empty_ticket(page: Page) -> None:
    expect(page.get_by_test_id("ticket-qty")).to_have_value("")
    expect(page.get_by_test_id("ticket-price")).to_have_value("")
    expect(page.get_by_test_id("ticket-tif")).to_have_value("GTC")
    expect(page.get_by_test_id("ticket-side-buy")).to_be_checked()
    expect(page.get_by_test_id("ticket-placed")).to_have_count(0)


def test_another_user_starts_with_an_empty_ticket(
    open_page: PageOpener, auth_engine: Engine
) -> None:
    """What one user typed is not shown to another who logs in on the same page: after a
    logout, nor over the app kept mounted when a session expired."""
    auth_engine.add_user("dealer", "trader")
    auth_engine.add_user("other", "trader")
    page = open_page(auth_engine)
    page.goto(f"{auth_engine.url}#/trade")
    log_in_on_the_trade_view(page, "dealer")
    type_an_order_and_log_out(page)

    log_in_on_the_trade_view(page, "other")
    expect(page.get_by_test_id("status-user")).to_have_text("other (trader)")
    expect_an_empty_ticket(page)

    # `other` types, then the session ends on its own (the access token is refused and
    # so is the refresh): the login form shows over the ticket, which stays mounted.
    page.get_by_test_id("ticket-qty").fill("0.5")
    refused = {"error": "unauthorized", "message": "the token has expired"}

    def answer_401(route: Route) -> None:
        route.fulfill(status=401, content_type="application/json", body=json.dumps(refused))

    page.route("**/api/auth/refresh", answer_401)
    page.route("**/health/ready", answer_401)
    expect(page.get_by_test_id("login-expired")).to_be_visible(timeout=WITHIN_MS)
    expect(page.get_by_test_id("ticket-qty")).to_have_value("0.5")  # under the form
    page.unroute("**/api/auth/refresh", answer_401)
    page.unroute("**/health/ready", answer_401)

    # `dealer` logs in there: neither `other`'s qty nor dealer's own earlier order (it was
    # forgotten when `other` logged in) is shown.
    log_in_on_the_trade_view(page, "dealer")
    expect(page.get_by_test_id("status-user")).to_have_text("dealer (trader)")
    expect_an_empty_ticket(page)


def test_the_views_follow_the_selected_symbol(watched: Watched, engine: Engine) -> None:
    page = watched.page
    found = engine.read("/api/instruments")
    eth = next(i for i in found["instruments"] if i["symbol"] == "ETHUSDT")
    page.get_by_test_id("status-symbol").select_option("ETHUSDT")
    expect(page.get_by_test_id("ticket")).to_contain_text("Order ticket ETHUSDT")
    expect(page.get_by_test_id("ticket-filters")).to_contain_text(
        f"tick {eth['price_increment']} · step {eth['size_increment']}"
    )
    expect(page.get_by_test_id("market-view")).to_contain_text("Market ETHUSDT")
    expect(page.get_by_test_id("market-feed")).to_have_attribute("data-state", "open")
    # The book top and the last trades are ETHUSDT's: near its price, not BTCUSDT's.
    market = engine.read("/api/market?symbol=ETHUSDT")
    ask = page.get_by_test_id("book-ask")
    expect(ask).not_to_have_text("-", timeout=WITHIN_MS)
    assert abs(float(ask.inner_text()) / float(market["ask"]) - 1) < 0.05
    expect(page.get_by_test_id("blotter-symbol")).to_have_value("ETHUSDT")
