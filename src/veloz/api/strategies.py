"""Strategy routes: list, add, inspect, start, pause, resume, stop and remove strategies,
and the catalogue of strategies with their parameter schemas. Every change is journaled
before it is answered (so it survives a restart) and audited like every mutating request."""

from litestar import Controller, delete, get, post
from litestar.params import FromPath

from veloz.api.admin import actor_of
from veloz.api.body import AnyRequest, body_operation, read_fields
from veloz.api.deps import Client
from veloz.api.errors import error_responses
from veloz.engine.views.strategies import Strategies, StrategyCatalog, StrategyView
from veloz.model.commands import AddStrategy, parse_add_strategy

_CHANGE_ERRORS = error_responses(404, 409, 503)


class StrategiesController(Controller):
    path = "/api/strategies"
    tags = ["strategies"]

    @get(
        "/",
        summary="Every strategy with its state, position, PnL and counts",
        responses=error_responses(),
    )
    async def list_strategies(self, engine_client: Client) -> Strategies:
        return await engine_client.strategies()

    @post(
        "/",
        status_code=201,
        summary="Add a strategy (and start it unless start is false)",
        operation_class=body_operation(AddStrategy),
        responses=error_responses(400, 409, 413, 503),
    )
    async def add(self, request: AnyRequest, engine_client: Client) -> StrategyView:
        command = parse_add_strategy(await read_fields(request))
        return await engine_client.add_strategy(command, actor_of(request))

    @get(
        "/catalog",
        summary="The strategies that can be added and their parameter schemas",
        responses=error_responses(),
    )
    async def catalog(self, engine_client: Client) -> StrategyCatalog:
        return await engine_client.strategy_catalog()

    @get("/{strategy_id:str}", summary="One strategy", responses=error_responses(404))
    async def one(self, strategy_id: FromPath[str], engine_client: Client) -> StrategyView:
        return await engine_client.strategy(strategy_id)

    @delete(
        "/{strategy_id:str}",
        status_code=200,
        summary="Stop the strategy, cancel its orders and forget it",
        responses=_CHANGE_ERRORS,
    )
    async def remove(
        self, strategy_id: FromPath[str], request: AnyRequest, engine_client: Client
    ) -> StrategyView:
        return await engine_client.change_strategy(strategy_id, "remove", actor_of(request))

    @post("/{strategy_id:str}/start", status_code=200, responses=_CHANGE_ERRORS)
    async def start(
        self, strategy_id: FromPath[str], request: AnyRequest, engine_client: Client
    ) -> StrategyView:
        return await engine_client.change_strategy(strategy_id, "start", actor_of(request))

    @post(
        "/{strategy_id:str}/stop",
        status_code=200,
        summary="Stop calling it and cancel its open orders",
        responses=_CHANGE_ERRORS,
    )
    async def stop(
        self, strategy_id: FromPath[str], request: AnyRequest, engine_client: Client
    ) -> StrategyView:
        return await engine_client.change_strategy(strategy_id, "stop", actor_of(request))

    @post(
        "/{strategy_id:str}/pause",
        status_code=200,
        summary="Stop calling it; its resting orders stay",
        responses=_CHANGE_ERRORS,
    )
    async def pause(
        self, strategy_id: FromPath[str], request: AnyRequest, engine_client: Client
    ) -> StrategyView:
        return await engine_client.change_strategy(strategy_id, "pause", actor_of(request))

    @post("/{strategy_id:str}/resume", status_code=200, responses=_CHANGE_ERRORS)
    async def resume(
        self, strategy_id: FromPath[str], request: AnyRequest, engine_client: Client
    ) -> StrategyView:
        return await engine_client.change_strategy(strategy_id, "resume", actor_of(request))
