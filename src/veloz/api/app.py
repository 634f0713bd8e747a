"""Building the Litestar app around an EngineClient."""

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from veloz import __version__
from veloz.api.errors import domain_error, http_error
from veloz.api.health import HealthController
from veloz.api.orders import OrdersController
from veloz.engine.client import EngineClient
from veloz.model.errors import VelozError


def create_app(client: EngineClient) -> Litestar:
    return Litestar(
        route_handlers=[HealthController, OrdersController],
        dependencies={"engine_client": Provide(lambda: client, sync_to_thread=False)},
        exception_handlers={VelozError: domain_error, HTTPException: http_error},
        openapi_config=OpenAPIConfig(title="VeloZ", version=__version__, path="/schema"),
        request_max_body_size=64 * 1024,
        logging_config=None,  # logging is configured once, by the CLI, to stderr
    )
