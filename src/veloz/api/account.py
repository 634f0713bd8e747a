"""Account routes: balances, positions with equity and drawdown, venue connectivity."""

import time
from decimal import Decimal

import msgspec
from litestar import Controller, get

from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.model.account import Balance, PositionView
from veloz.model.errors import CommandRejected
from veloz.risk.portfolio_risk import exposures


class Account(msgspec.Struct, frozen=True, kw_only=True):
    ts_ns: int
    balances: list[Balance]


class Positions(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    positions: list[PositionView]
    equity: Decimal
    drawdown: Decimal
    leverage: Decimal


class Ping(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    venue: str
    latency_ms: float


class AccountController(Controller):
    path = "/api"
    tags = ["account"]

    @get("/account", summary="Balances: free and locked per asset", responses=error_responses())
    async def account(self, engine_client: Client) -> Account:
        return Account(
            ts_ns=engine_client.engine.clock.time_ns(), balances=engine_client.balances()
        )

    @get(
        "/positions",
        summary="Positions, equity, drawdown from peak, gross leverage",
        responses=error_responses(),
    )
    async def positions(self, engine_client: Client) -> Positions:
        portfolio = engine_client.engine.portfolio
        positions = engine_client.positions()
        equity = portfolio.equity()
        return Positions(
            count=len(positions),
            positions=positions,
            equity=equity,
            drawdown=portfolio.drawdown(),
            leverage=exposures([p.notional for p in positions], equity).gross_leverage,
        )

    @get("/execution/ping", summary="Round trip to the venue", responses=error_responses(503))
    async def ping(self, engine_client: Client) -> Ping:
        venue = engine_client.engine.venue
        started = time.perf_counter()
        try:
            await venue.ping()
        except ConnectionError as exc:
            raise CommandRejected(f"{venue.name}: {exc}", code="venue_unreachable") from None
        return Ping(
            ok=True, venue=venue.name, latency_ms=round((time.perf_counter() - started) * 1000, 3)
        )
