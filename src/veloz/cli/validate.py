"""`veloz validate-deployment TARGET` (and `scripts/validate_deployment.sh`): the checks the
deployment runbook runs by hand after a release, against a running engine, one line per
step, stopping at the first failure with a non-zero exit that names it.

TARGET is a URL, or an environment name whose URL is in `VELOZ_<NAME>_URL` (e.g.
`VELOZ_PRODUCTION_URL=https://veloz.example.com`); `local` means
`http://127.0.0.1:$VELOZ_PORT`. With authentication on, the credential comes from
`TEST_TOKEN` (as in the runbook) or `VELOZ_API_KEY`, never from the command line.

Steps: the three health probes, `/metrics`, `/api/market`, an order round trip (a limit
buy below the bid by half the price band in force (half the bid without a band), seen in
`/api/order_state`, then cancelled), the SSE stream and the
market WebSocket. `--skip-order` leaves the order out (a production account without a test
symbol). Exit codes: 0 every step passed, 1 a step failed, 2 a bad target.

When the target is a gateway replica (or a proxy over gateways: its `/health/ready` says
`"served_by": "gateway"`), two more steps come right after `health`: `gateway engine` (the
gateway's link to the engine it forwards commands to) and `gateway stream` (how far it
follows the engine's event stream), each passing only when that component of the
gateway's `/health/ready` is ok, so that a gateway that is not ready says why.
"""

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any

import typer

Step = Callable[[], Awaitable[str]]


class StepFailed(Exception):
    """A check did not hold; the message says what was seen."""


def validate_deployment(
    target: Annotated[str, typer.Argument(help="A URL, or an environment name (VELOZ_<NAME>_URL)")],
    symbol: Annotated[str, typer.Option(help="Symbol of the test order")] = "BTCUSDT",
    qty: Annotated[str, typer.Option(help="Quantity of the test order")] = "0.001",
    skip_order: Annotated[bool, typer.Option("--skip-order", help="No test order")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each step may take")] = 10.0,
) -> None:
    """Check a running deployment as the runbook does: health, metrics, market data, an
    order round trip, the SSE stream and the WebSocket; on a gateway also its engine link
    and its event stream."""
    base = _resolve(target)
    token = os.environ.get("TEST_TOKEN") or os.environ.get("VELOZ_API_KEY")
    code = asyncio.run(
        _run(base, token, symbol, Decimal(qty), skip_order=skip_order, step_s=timeout)
    )
    raise typer.Exit(code)


def _resolve(target: str) -> str:
    if target.startswith(("http://", "https://")):
        return target.rstrip("/")
    if target == "local":
        return f"http://127.0.0.1:{os.environ.get('VELOZ_PORT', '8080')}"
    variable = f"VELOZ_{target.upper().replace('-', '_')}_URL"
    url = os.environ.get(variable)
    if not url:
        typer.echo(f"veloz: {target!r} is not a URL and {variable} is not set", err=True)
        raise typer.Exit(2)
    return url.rstrip("/")


async def _run(
    base: str, token: str | None, symbol: str, qty: Decimal, *, skip_order: bool, step_s: float
) -> int:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limit = aiohttp.ClientTimeout(total=step_s)
    async with aiohttp.ClientSession(base_url=base, headers=headers, timeout=limit) as http:
        checks = _Checks(http, symbol, qty, step_s)
        gateway = await checks.served_by_gateway()
        steps: list[tuple[str, Step]] = [("health", lambda: checks.probe("/health"))]
        if gateway:
            steps += [
                ("gateway engine", lambda: checks.gateway_component("engine")),
                ("gateway stream", lambda: checks.gateway_component("stream")),
            ]
        steps += [
            ("ready", lambda: checks.probe("/health/ready")),
            ("startup", lambda: checks.probe("/health/startup")),
            ("metrics", checks.metrics),
            ("market", checks.market),
        ]
        if not skip_order:
            steps.append(("order round trip", checks.order_round_trip))
        steps += [("sse stream", checks.sse), ("websocket", checks.websocket)]
        typer.echo(f"validating {base}{' (a gateway)' if gateway else ''}")
        for name, step in steps:
            started = time.perf_counter()
            try:
                detail = await asyncio.wait_for(step(), step_s)
            except (StepFailed, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
                typer.echo(f"FAIL {name}: {reason}")
                typer.echo(f"veloz: deployment check failed at step '{name}'", err=True)
                return 1
            elapsed = (time.perf_counter() - started) * 1000
            typer.echo(f"ok   {name} ({elapsed:.0f} ms){': ' + detail if detail else ''}")
    typer.echo("all checks passed")
    return 0


class _Checks:
    def __init__(self, http: Any, symbol: str, qty: Decimal, timeout: float) -> None:
        self._http = http
        self._symbol = symbol
        self._qty = qty
        self._timeout = timeout
        self._bid: Decimal | None = None

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        async with self._http.request(method, path, json=body) as response:
            text = await response.text()
            if response.status != 200:
                raise StepFailed(f"{method} {path} answered {response.status}: {text[:300]}")
            return json.loads(text)

    async def probe(self, path: str) -> str:
        answer = await self._json("GET", path)
        return str(answer.get("status", ""))

    async def _readiness(self) -> tuple[int, Any]:
        """/health/ready's status and JSON body, whatever the status: a gateway that is not
        ready answers 503 with the components that say why."""
        async with self._http.get("/health/ready") as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                raise StepFailed(
                    f"GET /health/ready answered {response.status}, not JSON: {text[:300]}"
                ) from None

    async def served_by_gateway(self) -> bool:
        """Whether the target is a gateway (`"served_by": "gateway"` in /health/ready).
        Unreachable or not JSON: not known to be one; the steps then say what is wrong."""
        import aiohttp

        try:
            _, answer = await asyncio.wait_for(self._readiness(), self._timeout)
        except (StepFailed, aiohttp.ClientError, OSError, TimeoutError):
            return False
        return isinstance(answer, dict) and answer.get("served_by") == "gateway"

    async def gateway_component(self, name: str) -> str:
        """One component of a gateway's /health/ready (`engine`: its link to the engine;
        `stream`: its place in the event stream), which must be ok."""
        status, answer = await self._readiness()
        components = answer.get("components") if isinstance(answer, dict) else None
        component = components.get(name) if isinstance(components, dict) else None
        if not isinstance(component, dict):
            raise StepFailed(f"the gateway's /health/ready ({status}) reports no `{name}`")
        state = component.get("status", "?")
        detail = component.get("detail") or ""
        said = f"{state}{': ' + detail if detail else ''}"
        if component.get("ok") is not True:
            what = {"engine": "engine link", "stream": "event stream"}.get(name, name)
            raise StepFailed(f"the gateway's {what} is not ok (/health/ready {status}): {said}")
        return said

    async def metrics(self) -> str:
        async with self._http.get("/metrics") as response:
            text = await response.text()
        if response.status != 200 or "veloz_" not in text:
            raise StepFailed(f"/metrics answered {response.status} without veloz_ series")
        return f"{sum(1 for line in text.splitlines() if line.startswith('veloz_'))} series"

    async def market(self) -> str:
        answer = await self._json("GET", f"/api/market?symbol={self._symbol}")
        if answer.get("status") != "ok" or answer.get("bid") is None:
            raise StepFailed(f"market data for {self._symbol} is {answer.get('status')}")
        self._bid = Decimal(str(answer["bid"]))
        return f"{self._symbol} bid {answer['bid']} ask {answer['ask']}"

    async def order_round_trip(self) -> str:
        if self._bid is None:
            raise StepFailed("no bid to price the test order at")
        coid = f"validate-{uuid.uuid4().hex[:12]}"
        # Below the bid by half the price band: it rests and does not trade, yet passes the
        # band check (half the bid when no band applies); the engine rounds onto the tick.
        band_pct = await self._price_band_pct()
        discount = band_pct / 200 if band_pct else Decimal("0.5")
        price = (self._bid * (1 - discount)).quantize(Decimal("0.01"), ROUND_DOWN)
        order = {
            "side": "BUY",
            "symbol": self._symbol,
            "qty": str(self._qty),
            "price": str(price),
            "client_order_id": coid,
        }
        placed = await self._json("POST", "/api/order", order)
        if not placed.get("ok"):
            raise StepFailed(f"order not taken: {placed}")
        state = await self._wait_status(coid, ("ACCEPTED", "PARTIALLY_FILLED", "FILLED"))
        await self._json("POST", "/api/cancel", {"client_order_id": coid})
        final = await self._wait_status(coid, ("CANCELLED", "FILLED"))
        return f"{coid} {state} then {final}"

    async def _price_band_pct(self) -> Decimal | None:
        """The LIMIT price band (%) for the test symbol in the limits in force, if any."""
        limits = (await self._json("GET", "/api/risk/limits")).get("limits") or {}
        own = (limits.get("symbols") or {}).get(self._symbol)
        for scope in (own, limits.get("defaults")):
            band = (scope or {}).get("price_band_pct")
            if band is not None:
                return Decimal(str(band))
        return None

    async def _wait_status(self, coid: str, wanted: tuple[str, ...]) -> str:
        deadline = time.monotonic() + self._timeout
        status = "?"
        while time.monotonic() < deadline:
            answer = await self._json("GET", f"/api/order_state?client_order_id={coid}")
            status = str(answer.get("status"))
            if status in wanted:
                return status
            if status == "REJECTED":
                raise StepFailed(f"{coid} rejected: {answer.get('reason')}")
            await asyncio.sleep(0.1)
        raise StepFailed(f"{coid} stayed {status}, expected {' or '.join(wanted)}")

    async def sse(self) -> str:
        path = f"/api/stream?types=market&symbol={self._symbol}"
        async with self._http.get(path) as response:
            if response.status != 200:
                raise StepFailed(f"/api/stream answered {response.status}")
            async for raw in response.content:
                line = bytes(raw).decode(errors="replace").strip()
                if line.startswith("event:"):
                    return line
        raise StepFailed("the stream ended without an event")

    async def websocket(self) -> str:
        async with self._http.ws_connect("/ws/market") as ws:
            await ws.send_json(
                {"action": "subscribe", "symbols": [self._symbol], "channels": ["book_top"]}
            )
            async for message in ws:
                data: dict[str, Any] = json.loads(message.data)
                if data.get("type") in ("book_top", "trade", "kline"):
                    return f"first message: {data['type']}"
                if data.get("type") == "error":
                    raise StepFailed(f"/ws/market refused: {data.get('message')}")
        raise StepFailed("/ws/market closed without a market message")
