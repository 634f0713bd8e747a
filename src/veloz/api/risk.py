"""Risk routes: the limits in force and where they came from, and the risk state
(trading mode, utilisation of each limit, denials by reason, equity, drawdown, VaR,
leverage and concentration)."""

from decimal import Decimal

import msgspec
from litestar import Controller, get

from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.model.enums import OrderSide, TradingMode
from veloz.risk.limits import RiskLimits
from veloz.risk.portfolio_risk import exposures


class LimitsInForce(msgspec.Struct, frozen=True, kw_only=True):
    limits: RiskLimits
    source: str | None
    loaded_at_ns: int
    sha256: str | None
    order_rate_limit: float | None


class SymbolUtilisation(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    position_qty: Decimal
    open_buy_qty: Decimal
    open_sell_qty: Decimal
    open_orders: int
    max_position_qty: Decimal | None
    max_open_orders: int | None


class BreakerState(msgspec.Struct, frozen=True, kw_only=True):
    tripped: bool
    reason: str
    until_ns: int | None
    trips: int


class RiskStatus(msgspec.Struct, frozen=True, kw_only=True):
    mode: TradingMode
    mode_reason: str
    breaker: BreakerState
    open_orders: int
    max_open_orders: int | None
    symbols: list[SymbolUtilisation]
    denials: dict[str, int]
    equity: Decimal
    peak_equity: Decimal
    drawdown: Decimal
    var_95: float
    var_99: float
    equity_samples: int
    gross_leverage: Decimal
    net_leverage: Decimal
    largest_position_share: Decimal
    concentration_hhi: Decimal


class RiskController(Controller):
    path = "/api/risk"
    tags = ["risk"]

    @get(
        "/limits",
        summary="The risk limits in force, their source file, load time and hash",
        responses=error_responses(),
    )
    async def limits(self, engine_client: Client) -> LimitsInForce:
        risk = engine_client.engine.risk
        loaded = risk.loaded
        return LimitsInForce(
            limits=loaded.limits,
            source=loaded.source,
            loaded_at_ns=loaded.loaded_at_ns,
            sha256=loaded.sha256,
            order_rate_limit=risk.rate_per_s,
        )

    @get(
        "/status",
        summary="Trading mode, utilisation of each limit, denials, drawdown",
        responses=error_responses(),
    )
    async def status(self, engine_client: Client) -> RiskStatus:
        engine = engine_client.engine
        limits = engine.risk.loaded.limits
        symbols = []
        for symbol in sorted(engine.instruments):
            symbol_limits = limits.for_symbol(symbol)
            symbols.append(
                SymbolUtilisation(
                    symbol=symbol,
                    position_qty=engine.portfolio.position_qty(symbol),
                    open_buy_qty=engine.oms.open_qty(symbol, OrderSide.BUY),
                    open_sell_qty=engine.oms.open_qty(symbol, OrderSide.SELL),
                    open_orders=engine.oms.open_count(symbol),
                    max_position_qty=symbol_limits.max_position_qty,
                    max_open_orders=symbol_limits.max_open_orders,
                )
            )
        equity = engine.portfolio.equity()
        exposure = exposures([p.notional for p in engine.portfolio.positions()], equity)
        breaker = engine.breaker
        return RiskStatus(
            mode=engine.mode,
            mode_reason=engine.mode_reason,
            breaker=BreakerState(
                tripped=breaker.tripped,
                reason=breaker.reason,
                until_ns=breaker.tripped_until_ns,
                trips=breaker.trips,
            ),
            open_orders=engine.oms.open_count(),
            max_open_orders=limits.max_open_orders,
            symbols=symbols,
            denials=dict(sorted(engine.stats.rejections.items())),
            equity=equity,
            peak_equity=engine.portfolio.peak_equity,
            drawdown=engine.portfolio.drawdown(),
            var_95=engine.risk.value_at_risk(0.95),
            var_99=engine.risk.value_at_risk(0.99),
            equity_samples=engine.risk.equity_sample_count,
            gross_leverage=exposure.gross_leverage,
            net_leverage=exposure.net_leverage,
            largest_position_share=exposure.largest_share,
            concentration_hhi=exposure.hhi,
        )
