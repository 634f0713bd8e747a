"""Risk routes: the limits in force and where they came from, and the risk state
(trading mode, utilisation of each limit, denials by reason, equity, drawdown, VaR,
leverage and concentration)."""

from litestar import Controller, get

from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.engine.views.risk import LimitsInForce, RiskStatus


class RiskController(Controller):
    path = "/api/risk"
    tags = ["risk"]

    @get(
        "/limits",
        summary="The risk limits in force, their source file, load time and hash",
        responses=error_responses(),
    )
    async def limits(self, engine_client: Client) -> LimitsInForce:
        return await engine_client.risk_limits()

    @get(
        "/status",
        summary="Trading mode, utilisation of each limit, denials, drawdown",
        responses=error_responses(),
    )
    async def status(self, engine_client: Client) -> RiskStatus:
        return await engine_client.risk_status()
