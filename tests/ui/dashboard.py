"""Shared fixtures for the dashboard's browser tests: a real engine subprocess on loopback
and a Chromium page on it that fails the test on any console error, page error or request
to another host.

tests/ui/conftest.py re-exports the fixtures: a test module under tests/ui just names them
as parameters, in any order:

    from tests.ui.dashboard import Engine

    def test_something(page: Page, engine: Engine) -> None:
        page.goto(engine.url)
        expect(page.get_by_test_id("status-mode")).to_have_text("ACTIVE")

A module may override a fixture with its own variant (a module-level `engine` fixture
with other settings, say); `page` then opens on that one. `running_engine` builds one:

    @pytest.fixture
    def engine(tmp_path: Path) -> Iterator[Engine]:
        with running_engine(tmp_path, VELOZ_RISK_LIMITS_FILE=str(LIMITS)) as running:
            yield running

Fixtures:
- `engine` -> `Engine`: `veloz engine --port N` on 127.0.0.1 (sim market, sim venue,
  BTCUSDT and ETHUSDT, 10 ms ticks, open risk limits, the journal and SQLite store in
  the test's tmp_path), ready before the test starts; killed after it, the pages opened
  on it being closed first (whatever the order in which pytest tears the fixtures down).
- `auth_engine` -> `Engine`: the same with authentication on; the bootstrap user `admin`
  has the password `ADMIN_PASSWORD`, and `engine.http` is logged in as admin (its
  Authorization header is set). `engine.add_user(user_id, role)` creates another user
  (password `USER_PASSWORD`).
- `page` -> `Page`: a new browser context at 1280x800 on `engine`, NOT navigated yet
  (call `page.goto(engine.url)`). At teardown the test fails if a console error, a page
  error or a request to anything but the engine happened. Requests to other hosts are
  also aborted.
- `open_page` -> `PageOpener`: `open_page(engine)` opens the same kind of page on another
  engine, e.g. `auth_engine` (`page` always uses `engine`, which would start a second one).
- `problems` -> `Problems`: what the pages of this test recorded. `problems.tolerate(re)`
  accepts console errors matching a regex from then on (e.g. while the test stops the
  engine on purpose: `problems.tolerate(CONNECTION_ERRORS)`).

Chromium logs an HTTP error answer (4xx/5xx) as a console error "Failed to load resource:
the server responded with a status of N"; those are the engine's answers, which the app
must show in words, so they are not counted (tests assert what the app shows instead).
Connection failures ("net::ERR_CONNECTION_REFUSED"...) are counted unless tolerated.

`Engine`:
- `url` ("http://127.0.0.1:PORT/"), `port`, `wal_dir`, `env`, `http` (an httpx.Client on
  the engine; `engine.http.post("/api/admin/readonly")`)
- `stop()`: kill -9 (the page sees its stream drop); `start()`: start again on the same
  journal and port and wait until ready; `restart()`: both; `pause()` / `resume()`:
  SIGSTOP / SIGCONT (a hung engine: connections stay open, nothing answers)
- `log()`: what the engine wrote to stdout/stderr (for failure messages)
- `place(coid, side="BUY", symbol="BTCUSDT", qty="0.01", price="40000")`: a resting limit
  order via HTTP, returns the answer's JSON
- `read(path)`: GET `path` (asserting a 200), the answer's JSON with every decimal as the
  text the engine wrote

`running_engine(directory, auth=False, **settings)`: a context manager, an `Engine` in
`directory` with `settings` (VELOZ_* variables) added to its environment, started (with
`auth`, authentication on and `engine.http` logged in as admin) and closed at the end.
"""

import contextlib
import json
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Route,
    ViewportSize,
    WebSocket,
)
from playwright.sync_api import Error as PlaywrightError

from tests.support.processes import free_port, start_veloz, veloz_env

__all__ = [
    "ADMIN_PASSWORD",
    "CONNECTION_ERRORS",
    "USER_PASSWORD",
    "VIEWPORT",
    "Engine",
    "PageOpener",
    "Problems",
    "auth_engine",
    "engine",
    "open_page",
    "page",
    "problems",
    "running_engine",
]

VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
ADMIN_PASSWORD = "admin-password-for-tests"
USER_PASSWORD = "user-password-for-tests"
READY_WITHIN_S = 30.0
# The console errors Chromium logs when the engine cannot be reached at all, or is killed
# while it answers.
CONNECTION_ERRORS = (
    r"net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|CONNECTION_CLOSED|EMPTY_RESPONSE"
    r"|INCOMPLETE_CHUNKED_ENCODING|CONTENT_LENGTH_MISMATCH|NETWORK_CHANGED|ABORTED)"
    r"|WebSocket connection to .* failed"
)
HTTP_ERROR_ANSWER = re.compile(r"^Failed to load resource: the server responded with a status of")


class Engine:
    """A `veloz engine` subprocess on a fixed loopback port, restartable on its journal."""

    def __init__(self, directory: Path, auth: bool = False, **settings: str) -> None:
        self.directory = directory
        self.wal_dir = directory / "wal"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        extra = {"VELOZ_HOST": "127.0.0.1", "VELOZ_PORT": str(self.port)}
        if auth:
            extra |= {
                "VELOZ_AUTH_ENABLED": "true",
                "VELOZ_JWT_SECRET": secrets.token_hex(32),
                "VELOZ_ADMIN_PASSWORD": ADMIN_PASSWORD,
                # Tests log in several times a second from the same address.
                "VELOZ_LOGIN_RATE_LIMIT": "1000",
            }
        self.auth = auth
        self.env = veloz_env(self.wal_dir, **(extra | settings))
        self.http = httpx.Client(base_url=self.url.rstrip("/"), timeout=10.0)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = directory / f"engine-{self.port}.log"
        # Browser contexts open on this engine: closed before it is killed for good, so
        # their cut stream is not a console error.
        self.contexts: list[BrowserContext] = []

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self._log_path.open("ab") as log:
            self.process = start_veloz(
                ["engine", "--port", str(self.port), "--host", "127.0.0.1"],
                self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the engine exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.TransportError):
                ready = self.http.get("/health/ready")
                if ready.status_code == 200:
                    return
            time.sleep(0.05)  # another process: there is no event to await
        pytest.fail(f"the engine did not become ready within {READY_WITHIN_S} s:\n{self.log()}")

    def stop(self) -> None:
        """kill -9: no goodbye to the page's stream, as after a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the engine hangs with its connections open (no close for the page to see)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def login(self, user_id: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        """An access token; with `user_id="admin"` also sets it on `self.http`."""
        answer = self.http.post("/api/auth/login", json={"user_id": user_id, "password": password})
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        if user_id == "admin":
            self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    def add_user(self, user_id: str, role: str, password: str = USER_PASSWORD) -> None:
        answer = self.http.post(
            "/api/auth/users", json={"user_id": user_id, "role": role, "password": password}
        )
        assert answer.status_code == 201, answer.text

    def place(
        self,
        coid: str,
        side: str = "BUY",
        symbol: str = "BTCUSDT",
        qty: str = "0.01",
        price: str = "40000",
    ) -> dict[str, Any]:
        order = {"client_order_id": coid, "side": side, "symbol": symbol, "qty": qty}
        answer = self.http.post("/api/order", json=order | {"price": price})
        assert answer.status_code == 200, answer.text
        placed: dict[str, Any] = answer.json()
        return placed

    def read(self, path: str) -> Any:
        """GET `path`: the answer's JSON with every decimal as the text the engine wrote."""
        answer = self.http.get(path)
        assert answer.status_code == 200, answer.text
        return json.loads(answer.text, parse_float=str)

    def close(self) -> None:
        """The end of the engine's fixture: the pages on it closed first, then kill -9."""
        while self.contexts:
            context = self.contexts.pop()
            with contextlib.suppress(PlaywrightError):  # already closed with its browser
                context.close()
        self.stop()
        self.http.close()


class Problems:
    """Console errors, page errors and foreign requests seen by a test's pages."""

    def __init__(self, hosts: set[str]) -> None:
        self.hosts = hosts  # "127.0.0.1:PORT" of the engines the pages may talk to
        self.found: list[str] = []
        self._tolerated: list[re.Pattern[str]] = []

    def tolerate(self, pattern: str) -> None:
        """From now on, console errors matching `pattern` (a regex) are not problems."""
        self._tolerated.append(re.compile(pattern))

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"page error: {error}"))
        page.route("**/*", self._route)
        page.on("websocket", self._websocket)

    def _websocket(self, socket: WebSocket) -> None:
        if urlsplit(socket.url).netloc not in self.hosts:
            self.found.append(f"WebSocket to another host: {socket.url}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        if HTTP_ERROR_ANSWER.match(text) or any(p.search(text) for p in self._tolerated):
            return
        self.found.append(f"console error: {text} at {message.location}")

    def _route(self, route: Route, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob") or parts.netloc in self.hosts:
            route.continue_()
            return
        self.found.append(f"request to another host: {request.method} {request.url}")
        route.abort()


@contextlib.contextmanager
def running_engine(directory: Path, auth: bool = False, **settings: str) -> Iterator[Engine]:
    """An engine in `directory` (made if missing) with `settings` in its environment, ready
    (with `auth`, `engine.http` logged in as admin); closed (`Engine.close`) at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    running = Engine(directory, auth=auth, **settings)
    try:
        running.start()
        if auth:
            running.login()
        yield running
    finally:
        running.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with running_engine(tmp_path) as running:
        yield running


@pytest.fixture
def auth_engine(tmp_path: Path) -> Iterator[Engine]:
    with running_engine(tmp_path / "auth", auth=True) as running:
        yield running


@pytest.fixture
def problems() -> Problems:
    return Problems(set())


PageOpener = Callable[[Engine], Page]


@pytest.fixture
def open_page(browser: Browser, problems: Problems) -> Iterator[PageOpener]:
    """Pages on an engine. Each one's context is closed by whichever ends first: this
    fixture or the engine's (`Engine.close`), so never after its engine was killed."""
    opened: list[tuple[Engine, BrowserContext]] = []

    def opener(on: Engine) -> Page:
        problems.hosts.add(f"127.0.0.1:{on.port}")
        context = browser.new_context(viewport=VIEWPORT)
        opened.append((on, context))
        on.contexts.append(context)
        new = context.new_page()
        problems.watch(new)
        return new

    yield opener
    for on, context in opened:
        if context in on.contexts:
            on.contexts.remove(context)
            context.close()
    assert not problems.found, "\n".join(problems.found)


@pytest.fixture
def page(engine: Engine, open_page: PageOpener) -> Page:
    return open_page(engine)
