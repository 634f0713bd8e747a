"""The dashboard's shell in Chromium against a real engine subprocess: it loads with no
console error and no request to another host; the status bar shows the mode, the source,
the venue and each component; a mode change made over HTTP shows as a banner without a
reload; the login flow with authentication on, and what a viewer is not offered; the
stream shows a lost engine within 5 s and reconnects after a restart, the views catching
up without a reload; an expired access token is refreshed once, and a failed refresh
brings the login form back over the app with what was typed still there.
Screenshots: tests/artifacts/dashboard-main.png and login.png (1280x800)."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.ui import dashboard
from tests.ui.dashboard import ADMIN_PASSWORD, CONNECTION_ERRORS, USER_PASSWORD, Engine, Problems
from veloz.runtime.health import trading_kind

OPEN = "open"
DOWN = re.compile("^(lost|reconnecting)$")
LOST_WITHIN_MS = 5000
UNDER_LOAD_MS = 10_000  # what the engine does, on a loaded machine
RESYNCS = "async () => (await import('/js/stream.js')).resyncCount()"


def load(page: Page, engine: Engine) -> None:
    page.goto(engine.url)
    expect(page.get_by_test_id("status-conn")).to_have_attribute("data-state", OPEN)


def log_in(page: Page, user_id: str, password: str) -> None:
    page.get_by_label("User").fill(user_id)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")


def page_of_a_new_user(
    engine: Engine, open_page: dashboard.PageOpener, user_id: str, role: str
) -> Page:
    """A page on `engine` (authentication on) logged in as a new user with `role`, its
    stream open."""
    engine.add_user(user_id, role)
    page = open_page(engine)
    page.goto(engine.url)
    log_in(page, user_id, USER_PASSWORD)
    expect(page.get_by_test_id("status-user")).to_have_text(f"{user_id} ({role})")
    expect(page.get_by_test_id("status-conn")).to_have_attribute("data-state", OPEN)
    return page


def test_the_dashboard_loads_with_the_status_bar(
    engine: Engine, page: Page, artifacts: Path
) -> None:
    load(page, engine)
    expect(page.get_by_test_id("status-mode")).to_have_text("ACTIVE")
    expect(page.get_by_test_id("status-trading")).to_have_attribute("data-trading", "sim")
    expect(page.get_by_test_id("status-trading")).to_have_text("SIM")
    expect(page.get_by_test_id("status-source")).to_have_text("sim")
    expect(page.get_by_test_id("status-venue")).to_have_text("sim")
    for name in ("journal", "market", "venue", "database", "auth"):
        expect(page.get_by_test_id(f"status-component-{name}")).to_have_attribute("data-ok", "true")
    expect(page.get_by_test_id("status-component-auth")).to_have_attribute(
        "data-status", "disabled"
    )
    # The market data's age counts from the stream's quotes (10 ms ticks here).
    expect(page.get_by_test_id("status-market-age")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(page.get_by_test_id("status-symbol")).to_have_value("BTCUSDT")
    expect(page.get_by_test_id("status-banner")).to_have_count(0)
    expect(page.get_by_test_id("conn-banner")).to_have_count(0)
    # No session with authentication off: nothing to log out of.
    expect(page.get_by_test_id("logout")).to_have_count(0)
    page.wait_for_timeout(500)  # let the first quotes draw before the picture
    page.screenshot(path=str(artifacts / "dashboard-main.png"))


def test_a_mode_change_shows_as_a_banner_without_a_reload(engine: Engine, page: Page) -> None:
    load(page, engine)
    loads: list[str] = []
    page.on("load", lambda loaded: loads.append(loaded.url))
    # Every readiness read is held unanswered from now on: the mode can only come from
    # the stream's `account` events (not from the 5 s readiness poll).
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/health/ready", hold)
    assert engine.http.post("/api/admin/readonly").status_code == 200
    banner = page.get_by_test_id("status-banner")
    expect(banner).to_contain_text("READONLY", timeout=UNDER_LOAD_MS)
    expect(banner).to_contain_text("new orders are refused")
    expect(page.get_by_test_id("status-banner-reason")).to_contain_text("readonly by")
    expect(page.get_by_test_id("status-mode")).to_have_text("READONLY")
    assert engine.http.post("/api/admin/maintenance").status_code == 200
    expect(banner).to_have_attribute("data-mode", "MAINTENANCE", timeout=UNDER_LOAD_MS)
    assert engine.http.post("/api/admin/ready").status_code == 200
    assert engine.http.post("/api/admin/readwrite").status_code == 200
    expect(banner).to_have_count(0, timeout=UNDER_LOAD_MS)
    expect(page.get_by_test_id("status-mode")).to_have_text("ACTIVE")
    assert loads == []
    assert held, "the status bar did not re-read the readiness"
    page.unroute("**/health/ready", hold)
    for route in held:
        route.continue_()


def test_a_live_engine_cannot_be_taken_for_anything_else(engine: Engine, page: Page) -> None:
    """The readiness of an engine trading on Binance spot (faked in the answer: the tests
    trade nowhere) turns the status bar's badge into a red LIVE and the page title too."""
    load(page, engine)
    trading = page.get_by_test_id("status-trading")
    expect(trading).to_have_text("SIM")

    def as_live(route: Route) -> None:
        real = route.fetch()
        body = real.json() | {"trading": "live", "execution_mode": "binance_spot"}
        route.fulfill(response=real, body=json.dumps(body))

    page.route("**/health/ready", as_live)
    assert engine.http.post("/api/admin/readonly").status_code == 200  # read again now
    expect(trading).to_have_attribute("data-trading", "live", timeout=UNDER_LOAD_MS)
    expect(trading).to_have_text("LIVE — real money")
    expect(trading).to_have_class(re.compile(r"\bbadge-live\b"))
    expect(page.get_by_test_id("status-bar")).to_have_class(re.compile(r"\bstatus-live\b"))
    expect(page).to_have_title(re.compile("^LIVE"))


def test_the_stream_is_shown_lost_and_reconnects_after_a_restart_catching_up(
    engine: Engine, page: Page, problems: Problems
) -> None:
    load(page, engine)
    conn = page.get_by_test_id("status-conn")
    resyncs = page.evaluate(RESYNCS)
    assert resyncs >= 1  # the first connection asks the views to fetch
    loads: list[str] = []
    page.on("load", lambda loaded: loads.append(loaded.url))

    problems.tolerate(CONNECTION_ERRORS)  # the engine is down on purpose
    engine.stop()
    expect(conn).to_have_attribute("data-state", DOWN, timeout=LOST_WITHIN_MS)
    expect(page.get_by_test_id("conn-banner")).to_be_visible(timeout=LOST_WITHIN_MS)

    # While the page cannot reach it, the engine comes back, an order is placed and the
    # mode changes: the page must catch up on both without a reload.
    page.route("**/api/stream*", lambda route: route.abort())
    engine.start()
    engine.place("away-1")
    assert engine.http.post("/api/admin/readonly").status_code == 200
    page.unroute("**/api/stream*")

    expect(conn).to_have_attribute("data-state", OPEN, timeout=10_000)
    expect(page.get_by_test_id("conn-banner")).to_have_count(0)
    assert page.evaluate(RESYNCS) > resyncs  # the views were told to re-fetch
    expect(page.get_by_test_id("status-banner")).to_contain_text("READONLY")
    # The blotter (another view, following the same stream) shows the order placed while
    # the page was cut off.
    expect(page.get_by_test_id("order-row-away-1")).to_be_visible(timeout=UNDER_LOAD_MS)
    assert loads == []


def test_a_hung_engine_shows_as_a_lost_stream_within_5_s(
    engine: Engine, page: Page, problems: Problems
) -> None:
    """No connection closes when the engine hangs: the page notices the silence itself."""
    load(page, engine)
    conn = page.get_by_test_id("status-conn")
    problems.tolerate(CONNECTION_ERRORS)
    # The 5 s are counted by the page's own clock, from just before the engine hangs to
    # the status bar's change: the test's polling, slower on a loaded machine, is not.
    page.evaluate(
        """() => {
            const conn = document.querySelector('[data-testid="status-conn"]')
            window.__hungAt = performance.now()
            window.__lostAfter = null
            new MutationObserver((changes, observer) => {
                if (/^(lost|reconnecting)$/.test(conn.dataset.state)) {
                    window.__lostAfter = performance.now() - window.__hungAt
                    observer.disconnect()
                }
            }).observe(conn, { attributes: true, attributeFilter: ['data-state'] })
        }"""
    )
    engine.pause()
    try:
        expect(conn).to_have_attribute("data-state", DOWN, timeout=UNDER_LOAD_MS)
        lost_after = page.evaluate("window.__lostAfter")
        assert lost_after is not None and lost_after < LOST_WITHIN_MS, lost_after
        expect(page.get_by_test_id("conn-banner")).to_be_visible()
    finally:
        engine.resume()
    expect(conn).to_have_attribute("data-state", OPEN, timeout=10_000)
    expect(page.get_by_test_id("conn-banner")).to_have_count(0)


def test_login_flow_with_authentication_on(
    auth_engine: Engine, open_page: dashboard.PageOpener, artifacts: Path
) -> None:
    page = open_page(auth_engine)
    page.goto(auth_engine.url)
    form = page.get_by_test_id("login-form")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("status-bar")).to_have_count(0)  # nothing before a login
    expect(page.get_by_label("User")).to_be_focused()
    page.screenshot(path=str(artifacts / "login.png"))

    log_in(page, "admin", "not the password")
    expect(page.get_by_test_id("login-error")).to_contain_text("unauthorized")
    expect(form).to_be_visible()

    log_in(page, "admin", ADMIN_PASSWORD)
    expect(form).to_have_count(0)
    expect(page.get_by_test_id("status-user")).to_have_text("admin (admin)")
    expect(page.get_by_test_id("status-component-auth")).to_have_attribute("data-status", "ok")
    expect(page.get_by_test_id("status-conn")).to_have_attribute("data-state", OPEN)
    expect(page.get_by_test_id("status-mode")).to_have_text("ACTIVE")

    page.get_by_test_id("logout").click()
    expect(form).to_be_visible()
    expect(page.get_by_test_id("status-bar")).to_have_count(0)
    expect(page.get_by_label("User")).to_have_value("")


def test_a_viewer_is_not_offered_what_it_may_not_do(
    auth_engine: Engine, open_page: dashboard.PageOpener
) -> None:
    page = page_of_a_new_user(auth_engine, open_page, "watcher", "viewer")
    roles = page.evaluate(
        """async () => {
            const { can } = await import('/js/store.js')
            return [can('viewer'), can('trader'), can('admin')]
        }"""
    )
    assert roles == [True, False, False]
    # The trade view offers no order form to a viewer.
    expect(page.get_by_test_id("ticket-viewonly")).to_be_visible()
    expect(page.get_by_test_id("ticket-submit")).to_have_count(0)


def test_an_expired_token_is_refreshed_once_then_a_failed_refresh_shows_the_login(
    auth_engine: Engine, open_page: dashboard.PageOpener
) -> None:
    page = page_of_a_new_user(auth_engine, open_page, "trader1", "trader")

    refreshes: list[str] = []

    def count_refresh(request: Request) -> None:
        if request.url.endswith("/api/auth/refresh"):
            refreshes.append(request.url)

    page.on("request", count_refresh)

    # The engine's answer to an expired access token (the shortest TTL it allows is 30 s,
    # too long for a test): the next readiness read gets it once. A mode change makes the
    # status bar read it at once (rather than at its next 5 s poll).
    expired = {"error": "unauthorized", "message": "the access token has expired"}

    def once_401(route: Route) -> None:
        page.unroute("**/health/ready", once_401)
        route.fulfill(status=401, content_type="application/json", body=json.dumps(expired))

    with page.expect_response("**/api/auth/refresh", timeout=8000) as refreshed:
        page.route("**/health/ready", once_401)
        assert auth_engine.http.post("/api/admin/readonly").status_code == 200
    assert refreshed.value.status == 200
    assert auth_engine.http.post("/api/admin/readwrite").status_code == 200
    expect(page.get_by_test_id("status-mode")).to_have_text("ACTIVE")
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("login-form")).to_have_count(0)  # the refresh worked
    expect(page.get_by_test_id("status-user")).to_have_text("trader1 (trader)")

    # Something typed in a view, then the session ends: the refresh token is revoked (a
    # password change revokes them) and the next answer is a 401 again.
    page.get_by_test_id("ticket-qty").fill("0.02500")
    changed = auth_engine.http.post(
        "/api/auth/users/trader1/password", json={"password": "a-new-password-123"}
    )
    assert changed.status_code == 200, changed.text
    with page.expect_response("**/api/auth/refresh", timeout=8000) as refused:
        page.route("**/health/ready", once_401)
        assert auth_engine.http.post("/api/admin/readonly").status_code == 200
    assert refused.value.status == 401
    form = page.get_by_test_id("login-form")
    expect(form).to_be_visible(timeout=8000)
    expect(page.get_by_test_id("login-expired")).to_be_visible()
    expect(page.get_by_label("User")).to_have_value("trader1")
    assert len(refreshes) == 2  # one refresh per 401, no loop

    page.get_by_label("Password").fill("a-new-password-123")
    page.get_by_label("Password").press("Enter")
    expect(form).to_have_count(0)
    expect(page.get_by_test_id("ticket-qty")).to_have_value("0.02500")
    expect(page.get_by_test_id("status-conn")).to_have_attribute("data-state", OPEN)
    expect(page.get_by_test_id("status-mode")).to_have_text("READONLY")


@pytest.mark.parametrize(
    ("market_source", "execution_mode", "kind"),
    [
        ("sim", "sim_engine", "sim"),
        ("binance_ws", "sim_engine", "paper"),
        ("binance_rest", "sim_engine", "paper"),
        ("binance_ws", "binance_testnet_spot", "testnet"),
        ("binance_ws", "binance_spot", "live"),
    ],
)
def test_readiness_names_what_trades_where(
    market_source: str, execution_mode: str, kind: str
) -> None:
    """What the status bar's badge shows (`/health/ready` `trading`)."""
    assert trading_kind(market_source, execution_mode) == kind
