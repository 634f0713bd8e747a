"""Account routes: balances, positions with equity and drawdown, venue connectivity and
what reconciliation with the venue found."""

from litestar import Controller, get

from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.engine.views.account import Account, EquityHistory, Ping, Positions
from veloz.engine.views.execution import Orphans


class AccountController(Controller):
    path = "/api"
    tags = ["account"]

    @get("/account", summary="Balances: free and locked per asset", responses=error_responses())
    async def account(self, engine_client: Client) -> Account:
        return await engine_client.account()

    @get(
        "/positions",
        summary="Positions, equity, drawdown from peak, gross leverage",
        responses=error_responses(),
    )
    async def positions(self, engine_client: Client) -> Positions:
        return await engine_client.positions()

    @get(
        "/equity",
        summary="Equity samples (one a minute, the newest day) with their drawdown",
        responses=error_responses(),
    )
    async def equity(self, engine_client: Client) -> EquityHistory:
        return await engine_client.equity_history()

    @get("/execution/ping", summary="Round trip to the venue", responses=error_responses(503))
    async def ping(self, engine_client: Client) -> Ping:
        return await engine_client.ping_venue()

    @get(
        "/execution/orphans",
        summary="Orders open at the venue that the journal does not know, and balance mismatches",
        responses=error_responses(),
    )
    async def orphans(self, engine_client: Client) -> Orphans:
        return await engine_client.orphans()
