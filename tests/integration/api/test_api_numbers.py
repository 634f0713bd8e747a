"""Decimals as a client reads them, from a real engine with real fills: an average price
that does not terminate reads at the instrument's price precision, equity keeps one form,
stdio STATUS sends equity as a JSON number, and nothing anywhere is in exponent form."""

import io
import json
import re
from decimal import Decimal

from tests.support.engine import quote, wait_for_status
from veloz.api.stream_hub import sse_frames
from veloz.engine.bus import BusMessage
from veloz.model.enums import OrderStatus
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.stdio import NdjsonOut, StdioSession

D = Decimal
EXPONENT = re.compile(rb"[:\[,]-?\d+(?:\.\d+)?[eE][+-]?\d")  # a number, not a string
DECIMALS = re.compile(rb'"(\w+)":(-?\d+(?:\.(\d+))?)')


def places(document: bytes, field: str) -> set[int]:
    """How many decimal places `field` is written with wherever it occurs."""
    name = field.encode()
    return {len(m.group(3) or b"") for m in DECIMALS.finditer(document) if m.group(1) == name}


async def buy(api, engine, client_order_id: str, qty: str, price: str) -> None:
    answer = await api.post(
        "/api/order",
        json={
            "side": "BUY",
            "symbol": "BTCUSDT",
            "qty": qty,
            "price": price,
            "client_order_id": client_order_id,
        },
    )
    assert answer.status_code == 200, answer.text
    await wait_for_status(engine, client_order_id, OrderStatus.FILLED)


async def test_an_average_that_does_not_terminate_reads_at_the_price_precision(api, engine):
    frames: list[bytes] = []

    def on_bus(message: BusMessage) -> None:
        frames.extend(frame for _, frame in sse_frames(message))

    engine.bus.subscribe(on_bus)
    engine.market.on_data(quote(bid="49999.99", ask="50000.00"))
    await buy(api, engine, "n-1", "0.001", "50000")
    engine.market.on_data(quote(bid="50075.07", ask="50075.08"))
    await buy(api, engine, "n-2", "0.002", "50075.08")

    (position,) = engine.portfolio.positions()
    exact = position.avg_price
    assert exact is not None and -exact.as_tuple().exponent > 2  # e.g. 50050.0533333...

    body = (await api.get("/api/positions")).content
    shown = json.loads(body, parse_float=D)
    assert shown["positions"][0]["avg_price"] == exact.quantize(D("0.01"))
    assert places(body, "avg_price") == {2}  # BTCUSDT's price increment is 0.01
    # The position is net of the fee taken in BTC, off the 0.00001 grid: it reads at BTC's
    # precision, as the balance does; what traded is on the grid and reads at its places.
    assert places(body, "qty") == {8}
    btc = [b for b in (await api.get("/api/account")).json()["balances"] if b["asset"] == "BTC"]
    assert shown["positions"][0]["qty"] == D(str(btc[0]["free"]))
    assert places(body, "equity") == {8}  # USDT's precision
    assert position.avg_price == exact  # only the rendering rounded

    account = (await api.get("/api/account")).content
    for document in (body, account, *frames):
        assert not EXPONENT.search(document), document
    assert places(b"".join(frames), "price") == {2}
    assert places(b"".join(frames), "executed_qty") == places(b"".join(frames), "qty") == {5}


async def test_equity_keeps_one_form_and_stdio_status_sends_numbers(api, engine):
    buffer = io.BytesIO()
    out = NdjsonOut(buffer)
    session = StdioSession(LocalEngineClient(engine), out, engine.clock)

    async def status() -> bytes:
        buffer.seek(0)
        buffer.truncate()
        await session.handle(b"STATUS")
        out.flush()
        return buffer.getvalue()

    before = await status()
    engine.market.on_data(quote(bid="49999.99", ask="50000.00"))
    await buy(api, engine, "e-1", "0.001", "50000")
    after = await status()
    for line in (before, after):
        event = json.loads(line, parse_float=D)
        assert event["type"] == "account"
        assert isinstance(event["equity"], D), "equity is a JSON number, as stdio.md says"
        assert places(line, "equity") == {8}
        assert not EXPONENT.search(line)
    positions = (await api.get("/api/positions")).content
    risk = (await api.get("/api/risk/status")).content
    assert places(positions, "equity") == places(risk, "equity") == {8}
