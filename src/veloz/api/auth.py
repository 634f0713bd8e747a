"""Authentication routes: log in, refresh, log out, who am I; API keys and users (admin).
Which role each needs is in `veloz.api.access.ROUTE_ROLES`."""

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath

from veloz.api.body import AnyRequest, body_operation, read_fields
from veloz.api.deps import Auth
from veloz.api.errors import error_responses
from veloz.auth.roles import Role, parse_role
from veloz.auth.service import AuthError, AuthService, NewApiKey, Principal, TokenPair
from veloz.model.errors import CommandRejected, ErrorCode

# The request bodies, as documented (the routes read JSON or forms with `read_fields`).
_PASSWORD = Annotated[str, msgspec.Meta(description="at least 12 characters")]


class Login(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    password: str


class RefreshToken(msgspec.Struct, frozen=True, kw_only=True):
    refresh_token: Annotated[str, msgspec.Meta(description="from login or refresh")]


class NewKey(msgspec.Struct, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(description="what the key is for")]
    role: Role
    expires_in_s: Annotated[int, msgspec.Meta(gt=0, description="omit for never")] | None = None
    allowed_ips: Annotated[
        list[str], msgspec.Meta(description="addresses or CIDRs it may be used from; omit for any")
    ] = msgspec.field(default_factory=list)


class NewUser(msgspec.Struct, frozen=True, kw_only=True):
    user_id: Annotated[str, msgspec.Meta(description="1-64 of A-Z a-z 0-9 . _ -")]
    role: Role
    password: _PASSWORD


class NewPassword(msgspec.Struct, frozen=True, kw_only=True):
    password: _PASSWORD


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    name: str
    role: str
    created_ns: int
    last_used_ns: int | None
    expires_ns: int | None
    allowed_ips: list[str]
    revoked_ns: int | None


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    role: str
    disabled: bool
    created_ns: int
    updated_ns: int


class Keys(msgspec.Struct, frozen=True):
    count: int
    keys: list[KeyView]


class Users(msgspec.Struct, frozen=True):
    count: int
    users: list[UserView]


class Done(msgspec.Struct, frozen=True):
    ok: bool
    changed: bool


def _text(fields: dict[str, Any], name: str, max_length: int = 256) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise CommandRejected(f"{name} must be a non-empty string of at most {max_length}")
    return value


def _role(fields: dict[str, Any]) -> Role:
    try:
        return parse_role(_text(fields, "role"))
    except ValueError as exc:
        raise CommandRejected(str(exc)) from None


def _enabled(auth: AuthService) -> AuthService:
    if not auth.enabled:
        raise AuthError(ErrorCode.AUTH_DISABLED, "authentication is off (VELOZ_AUTH_ENABLED)")
    return auth


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=200,
        summary="Exchange a user id and password for an access and a refresh token",
        operation_class=body_operation(Login),
        responses=error_responses(401, 404, 429, 503),
    )
    async def login(self, request: AnyRequest, auth: Auth) -> TokenPair:
        fields = await read_fields(request)
        return await _enabled(auth).login(_text(fields, "user_id"), _text(fields, "password"))

    @post(
        "/refresh",
        status_code=200,
        summary="A new token pair for a refresh token, which is used up",
        operation_class=body_operation(RefreshToken),
        responses=error_responses(401, 404, 503),
    )
    async def refresh(self, request: AnyRequest, auth: Auth) -> TokenPair:
        fields = await read_fields(request)
        return await _enabled(auth).refresh(_text(fields, "refresh_token"))

    @post(
        "/logout",
        status_code=200,
        summary="Revoke a refresh token",
        operation_class=body_operation(RefreshToken),
        responses=error_responses(404, 503),
    )
    async def logout(self, request: AnyRequest, auth: Auth) -> Done:
        fields = await read_fields(request)
        revoked = await _enabled(auth).logout(_text(fields, "refresh_token"))
        return Done(ok=True, changed=revoked)

    @get("/me", summary="Who the credential in this request is", responses=error_responses(401))
    async def me(self, request: AnyRequest) -> Principal:
        principal: Principal = request.scope["state"]["principal"]
        return principal

    @get("/keys", summary="API keys (never their secret)", responses=error_responses(404, 503))
    async def keys(self, auth: Auth) -> Keys:
        found = await _enabled(auth).list_keys()
        views = [msgspec.convert(k, KeyView, from_attributes=True) for k in found]
        return Keys(count=len(views), keys=views)

    @post(
        "/keys",
        status_code=201,
        summary="Create an API key; the key is in this answer only",
        operation_class=body_operation(NewKey),
        responses=error_responses(404, 503),
    )
    async def create_key(self, request: AnyRequest, auth: Auth) -> NewApiKey:
        fields = await read_fields(request)
        expires_in = fields.get("expires_in_s")
        if expires_in is not None and (not isinstance(expires_in, int) or expires_in <= 0):
            raise CommandRejected("expires_in_s must be a positive integer")
        allowed = fields.get("allowed_ips") or []
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise CommandRejected("allowed_ips must be a list of addresses or CIDRs")
        service = _enabled(auth)
        expires_ns = None
        if expires_in is not None:
            expires_ns = service.now_ns() + expires_in * 1_000_000_000
        try:
            return await service.create_key(
                _text(fields, "name"), _role(fields), expires_ns, allowed
            )
        except ValueError as exc:
            raise CommandRejected(str(exc)) from None

    @delete(
        "/keys/{key_id:str}",
        status_code=200,
        summary="Revoke an API key",
        responses=error_responses(404, 503),
    )
    async def revoke_key(self, key_id: FromPath[str], auth: Auth) -> Done:
        revoked = await _enabled(auth).revoke_key(key_id)
        if not revoked:
            raise CommandRejected(f"no live API key {key_id}", code=ErrorCode.NOT_FOUND)
        return Done(ok=True, changed=True)

    @get("/users", summary="Users (never their password)", responses=error_responses(404, 503))
    async def users(self, auth: Auth) -> Users:
        found = await _enabled(auth).list_users()
        views = [msgspec.convert(u, UserView, from_attributes=True) for u in found]
        return Users(count=len(views), users=views)

    @post(
        "/users",
        status_code=201,
        summary="Create a user",
        operation_class=body_operation(NewUser),
        responses=error_responses(404, 409, 503),
    )
    async def create_user(self, request: AnyRequest, auth: Auth) -> UserView:
        fields = await read_fields(request)
        try:
            user = await _enabled(auth).create_user(
                _text(fields, "user_id", 64), _role(fields), _text(fields, "password")
            )
        except ValueError as exc:
            raise CommandRejected(str(exc)) from None
        return msgspec.convert(user, UserView, from_attributes=True)

    @post(
        "/users/{user_id:str}/password",
        status_code=200,
        summary="Set a user's password (their refresh tokens are revoked)",
        operation_class=body_operation(NewPassword),
        responses=error_responses(404, 503),
    )
    async def set_password(self, user_id: FromPath[str], request: AnyRequest, auth: Auth) -> Done:
        fields = await read_fields(request)
        await _user_change(_enabled(auth).set_password(user_id, _text(fields, "password")))
        return Done(ok=True, changed=True)

    @post(
        "/users/{user_id:str}/disable",
        status_code=200,
        summary="Disable a user (their tokens stop working)",
        responses=error_responses(404, 503),
    )
    async def disable_user(self, user_id: FromPath[str], auth: Auth) -> Done:
        await _user_change(_enabled(auth).set_disabled(user_id, True))
        return Done(ok=True, changed=True)

    @post(
        "/users/{user_id:str}/enable",
        status_code=200,
        summary="Enable a disabled user",
        responses=error_responses(404, 503),
    )
    async def enable_user(self, user_id: FromPath[str], auth: Auth) -> Done:
        await _user_change(_enabled(auth).set_disabled(user_id, False))
        return Done(ok=True, changed=True)


async def _user_change(change: Any) -> None:
    try:
        await change
    except LookupError as exc:
        raise CommandRejected(str(exc.args[0]), code=ErrorCode.NOT_FOUND) from None
    except ValueError as exc:
        raise CommandRejected(str(exc)) from None
