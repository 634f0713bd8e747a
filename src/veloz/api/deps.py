"""The dependencies routes declare (provided by `create_app`)."""

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from veloz.auth.service import AuthService
from veloz.config import Settings
from veloz.engine.client import EngineClient

# The client is a Protocol: any implementation will do, so it is not instance-checked.
Client = NamedDependency[SkipValidation[EngineClient]]
Config = NamedDependency[Settings]
Auth = NamedDependency[AuthService]
