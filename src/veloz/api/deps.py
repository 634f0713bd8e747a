"""The dependencies routes declare (provided by `create_app`)."""

from litestar.di import NamedDependency

from veloz.auth.service import AuthService
from veloz.config import Settings
from veloz.engine.client import EngineClient

Client = NamedDependency[EngineClient]
Config = NamedDependency[Settings]
Auth = NamedDependency[AuthService]
