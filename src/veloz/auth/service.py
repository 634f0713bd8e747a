"""The AuthService: turns a request's credentials into a Principal (who, with which role),
logs people in and out, rotates refresh tokens, and manages API keys and users.

Authentication of an ordinary request reads memory only: API keys and users are cached and
re-read from the store every `reload_s` (so a key created or revoked with the CLI while
the engine runs counts within that time; through the API, at once: every write through
the service updates the cache, and `on_change` tells the other processes holding a cache,
gateway replicas, through `veloz.runtime.credential_changes`). Login, refresh and
changes go to the store, and fail with 503 while it is down; requests with an access
token or an API key keep working through an outage.

Until the first load (the bootstrap admin written, then users and keys read) nothing is
trusted: `ready` is False (the readiness probe says so), a request with a credential is
answered 503, not 401, and a login first does that load itself. So once the service is
ready, or as soon as a login is answered, the configured credentials work. A store that
is down at start is retried quickly, not only every `reload_s`.
"""

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
from collections import deque
from collections.abc import Callable

import msgspec

from veloz.auth.credentials import (
    DUMMY_HASH,
    check_password_strength,
    digest,
    hash_password,
    new_api_key,
    new_refresh_token,
    verify_password,
)
from veloz.auth.roles import Role, parse_role
from veloz.auth.tokens import AccessTokens, TokenError
from veloz.model.errors import ErrorCode, VelozError
from veloz.persistence.store import (
    ApiKeyRecord,
    CredentialStore,
    RefreshTokenRecord,
    StoreUnavailable,
    UserRecord,
)

logger = logging.getLogger(__name__)

BOOTSTRAP_ADMIN = "admin"
USER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Expired and revoked refresh tokens are deleted this often (one row per login otherwise).
PURGE_EVERY_NS = 3600 * 1_000_000_000
# Until the first load works, it is retried after this, doubling up to `reload_s`.
FIRST_LOAD_RETRY_S = 0.1


class AuthConfig(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False
    jwt_secret: str = msgspec.field(default="")
    access_ttl_s: int = 900
    refresh_ttl_s: int = 7 * 86_400
    admin_password: str | None = None
    max_failed_logins: int = 5
    lockout_s: int = 900
    reload_s: float = 10.0

    def __repr__(self) -> str:
        return f"AuthConfig(enabled={self.enabled}, access_ttl_s={self.access_ttl_s})"


def gateway_token(config: AuthConfig) -> str:
    """What a gateway replica shows the engine (`X-Veloz-Gateway`) to have the requests it
    forwards taken as already counted and audited: derived from the JWT secret both hold,
    so a client cannot forge it. Authentication off: empty (nothing to protect)."""
    if not config.enabled or not config.jwt_secret:
        return ""
    digest = hmac.new(config.jwt_secret.encode(), b"veloz-gateway", hashlib.sha256)
    return digest.hexdigest()


class AuthError(VelozError):
    """A refusal: `unauthorized` (who are you), `forbidden` (not allowed), `locked_out` or
    `rate_limit_exceeded` (slow down, after `retry_after_s`), `store_unavailable` (the
    store is needed and down). The message never contains a credential."""

    def __init__(self, code: ErrorCode, message: str, retry_after_s: float = 0) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "user", "key" or "anonymous" (auth off)
    name: str  # user id, key id, or the client address
    role: Role

    @property
    def actor(self) -> str:
        """How the audit trail and the journal name whoever did something."""
        return f"{self.kind}:{self.name}"


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class NewApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """What creating a key answers: the key itself appears here and nowhere else, ever."""

    key_id: str
    name: str
    role: Role
    key: str
    expires_ns: int | None
    allowed_ips: list[str]


def parse_networks(allowed_ips: list[str]) -> list[str]:
    """Validate an allowlist (addresses or CIDRs); returns them normalised."""
    try:
        return [str(ipaddress.ip_network(item.strip(), strict=False)) for item in allowed_ips]
    except ValueError as exc:
        raise ValueError(f"allowed_ips: {exc}") from None


def _allowed(client_ip: str, networks: list[str]) -> bool:
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in networks)


class AuthService:
    def __init__(
        self, config: AuthConfig, store: CredentialStore | None, now_ns: Callable[[], int]
    ) -> None:
        self.config = config
        self._store = store
        self._now_ns = now_ns
        self._tokens = (
            AccessTokens(config.jwt_secret, config.access_ttl_s) if config.enabled else None
        )
        self._keys: dict[str, ApiKeyRecord] = {}  # by key hash
        self._users: dict[str, UserRecord] = {}
        self._failures: dict[str, deque[int]] = {}
        self._locked_until: dict[str, int] = {}
        self._last_used: dict[str, int] = {}
        self._reloader: asyncio.Task[None] | None = None
        self._admin_set = False
        self._loaded = False
        self._reloaded_ns = 0
        self._loading = asyncio.Lock()
        self.load_error = ""  # why the first load has not worked yet
        # Called after this service changed a credential in the store, so other processes
        # holding users and keys in memory can read them again (`credential_changes`).
        self.on_change: Callable[[], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def ready(self) -> bool:
        """The configured credentials work: auth is off, or the bootstrap admin is written
        and users and keys are loaded."""
        return not self.enabled or self._loaded

    def now_ns(self) -> int:
        return self._now_ns()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load users and keys and make sure the bootstrap admin exists (auth on only). A
        store that is down is retried in the background: until then nobody can log in,
        which is all that can be done without it."""
        if not self.enabled:
            return
        try:
            await self._load()
        except StoreUnavailable as exc:
            logger.error("auth: cannot load users and keys yet, retrying: %s", exc)
        self._reloader = asyncio.get_running_loop().create_task(
            self._reload_forever(), name="veloz-auth-reload"
        )

    async def stop(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        with contextlib.suppress(StoreUnavailable):
            await self._flush_last_used()

    async def _load(self) -> None:
        async with self._loading:  # the reloader and a first login may both ask
            try:
                await self.reload()
            except StoreUnavailable as exc:
                if not self._loaded:
                    self.load_error = str(exc)
                raise
            self.load_error = ""

    async def _loaded_now(self) -> None:
        """Do the first load now if it has not happened; 503 if the store cannot answer."""
        if self._loaded:
            return
        try:
            await self._load()
        except StoreUnavailable as exc:
            raise AuthError(
                ErrorCode.STORE_UNAVAILABLE, f"users and keys cannot be loaded yet: {exc}"
            ) from None

    async def reload(self) -> None:
        """Read users and keys into memory; the first time, write the bootstrap admin
        first (so what is read has it)."""
        store = self._require_store()
        if not self._admin_set and self.config.admin_password:
            await self._ensure_admin(self.config.admin_password)
        self._admin_set = True
        keys = await store.api_keys()
        users = await store.users()
        self._keys = {k.key_hash: k for k in keys}
        self._users = {u.user_id: u for u in users}
        self._loaded = True
        self._reloaded_ns = self._now_ns()

    async def catch_up(self, min_age_s: float = 1.0) -> bool:
        """Read users and keys again now unless that was done in the last `min_age_s`:
        another replica may have created the credential a request carries. False when
        nothing was read (too soon, or the store is down)."""
        if self._now_ns() - self._reloaded_ns < min_age_s * 1e9:
            return False
        try:
            await self._load()
        except StoreUnavailable:
            return False
        return True

    async def _reload_forever(self) -> None:
        purged_at = 0
        retry_s = FIRST_LOAD_RETRY_S
        while True:
            if self._loaded:
                await asyncio.sleep(self.config.reload_s)
            else:
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, self.config.reload_s)
            try:
                await self._flush_last_used()
                await self._load()
                now = self._now_ns()
                if now - purged_at > PURGE_EVERY_NS:
                    await self._require_store().purge_refresh_tokens(now)
                    purged_at = now
            except StoreUnavailable as exc:
                logger.warning("auth: keeping cached users and keys, the store is down: %s", exc)

    async def _flush_last_used(self) -> None:
        if self._store is None or not self._last_used:
            return
        used, self._last_used = self._last_used, {}
        try:
            await self._store.touch_api_keys(used)
        except StoreUnavailable:
            for key_id, ns in used.items():  # try again next time
                self._last_used[key_id] = max(ns, self._last_used.get(key_id, 0))

    async def _ensure_admin(self, password: str) -> None:
        """`VELOZ_ADMIN_PASSWORD` is the admin's password: set it if it is not already."""
        store = self._require_store()
        existing = await store.user(BOOTSTRAP_ADMIN)
        if existing is not None and await asyncio.to_thread(
            verify_password, password, existing.password_hash
        ):
            return
        now = self._now_ns()
        admin = UserRecord(
            user_id=BOOTSTRAP_ADMIN,
            role=Role.ADMIN.value,
            password_hash=await asyncio.to_thread(hash_password, password),
            disabled=False,
            created_ns=existing.created_ns if existing else now,
            updated_ns=now,
        )
        await store.save_user(admin)
        self._users[BOOTSTRAP_ADMIN] = admin
        logger.info("auth: bootstrap user %r set from VELOZ_ADMIN_PASSWORD", BOOTSTRAP_ADMIN)

    def _require_store(self) -> CredentialStore:
        if self._store is None:
            raise AuthError(ErrorCode.STORE_UNAVAILABLE, "authentication needs the history store")
        return self._store

    # -- authenticating a request ----------------------------------------------------

    def authenticate(
        self,
        *,
        authorization: str | None,
        api_key: str | None,
        query_token: str | None,
        client_ip: str,
    ) -> Principal | None:
        """Who is calling, from `X-API-Key`, `Authorization: Bearer` (an API key or an
        access token) or `?token=`; None when no credential was given. Raises AuthError
        401 for a credential that does not hold."""
        credential = api_key
        if credential is None and authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError(ErrorCode.UNAUTHORIZED, "Authorization must be 'Bearer <token>'")
            credential = value.strip()
        if credential is None:
            credential = query_token
        if not credential:
            return None
        if not self._loaded:
            raise AuthError(
                ErrorCode.STORE_UNAVAILABLE,
                "users and keys are not loaded yet; try again shortly",
                retry_after_s=1,
            )
        if credential.startswith("vz_"):
            return self._by_api_key(credential, client_ip)
        return self._by_access_token(credential)

    def _by_api_key(self, key: str, client_ip: str) -> Principal:
        record = self._keys.get(digest(key))
        now = self._now_ns()
        if record is None or record.revoked_ns is not None:
            raise AuthError(ErrorCode.UNAUTHORIZED, "unknown or revoked API key")
        if record.expires_ns is not None and record.expires_ns <= now:
            raise AuthError(ErrorCode.UNAUTHORIZED, f"API key {record.key_id} has expired")
        if not _allowed(client_ip, record.allowed_ips):
            raise AuthError(
                ErrorCode.FORBIDDEN, f"API key {record.key_id} may not be used from {client_ip}"
            )
        self._last_used[record.key_id] = now
        return Principal(kind="key", name=record.key_id, role=parse_role(record.role))

    def _by_access_token(self, token: str) -> Principal:
        assert self._tokens is not None
        try:
            claims = self._tokens.verify(token, self._now_ns() // 1_000_000_000)
        except TokenError as exc:
            raise AuthError(ErrorCode.UNAUTHORIZED, str(exc)) from None
        user = self._users.get(claims.user_id)
        if user is None or user.disabled:
            raise AuthError(
                ErrorCode.UNAUTHORIZED, "the token's user no longer exists or is disabled"
            )
        return Principal(kind="user", name=claims.user_id, role=claims.role)

    # -- login, refresh, logout ------------------------------------------------------

    async def login(self, user_id: str, password: str) -> TokenPair:
        await self._loaded_now()  # the bootstrap admin is written before it is checked
        now = self._now_ns()
        locked_until = self._locked_until.get(user_id, 0)
        if locked_until > now:
            raise AuthError(
                ErrorCode.LOCKED_OUT,
                f"too many failed logins for {user_id!r}; try again later",
                retry_after_s=(locked_until - now) / 1e9,
            )
        user = await self._require_store().user(user_id)
        # Hash even for an unknown user, so timing does not tell which users exist; on a
        # thread, since scrypt takes tens of milliseconds the order path must not wait.
        stored = user.password_hash if user else DUMMY_HASH
        valid = await asyncio.to_thread(verify_password, password, stored)
        if user is None or not valid or user.disabled:
            self._failed(user_id, now)
            raise AuthError(ErrorCode.UNAUTHORIZED, "wrong user id or password")
        self._failures.pop(user_id, None)
        self._users[user_id] = user
        return await self._issue(user, now)

    def _failed(self, user_id: str, now: int) -> None:
        window = self.config.lockout_s * 1_000_000_000
        failures = self._failures.setdefault(user_id, deque())
        failures.append(now)
        while failures and failures[0] <= now - window:
            failures.popleft()
        if len(failures) >= self.config.max_failed_logins:
            self._locked_until[user_id] = now + window
            failures.clear()
            logger.warning("auth: %r locked out after repeated failed logins", user_id)

    async def _issue(self, user: UserRecord, now: int) -> TokenPair:
        assert self._tokens is not None
        refresh = new_refresh_token()
        await self._require_store().add_refresh_token(
            RefreshTokenRecord(
                token_hash=digest(refresh),
                user_id=user.user_id,
                issued_ns=now,
                expires_ns=now + self.config.refresh_ttl_s * 1_000_000_000,
            )
        )
        access = self._tokens.issue(user.user_id, parse_role(user.role), now // 1_000_000_000)
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self._tokens.ttl_s)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a live refresh token, which is used up (rotation): a stolen one
        works once at most, and its reuse is refused."""
        store = self._require_store()
        now = self._now_ns()
        record = await store.refresh_token(digest(refresh_token))
        if record is None or record.expires_ns <= now:
            raise AuthError(ErrorCode.UNAUTHORIZED, "unknown or expired refresh token")
        if not await store.revoke_refresh_token(record.token_hash, now):
            raise AuthError(ErrorCode.UNAUTHORIZED, "the refresh token was revoked or already used")
        user = await store.user(record.user_id)
        if user is None or user.disabled:
            raise AuthError(
                ErrorCode.UNAUTHORIZED, "the token's user no longer exists or is disabled"
            )
        if record.issued_ns < user.updated_ns:
            # Issued before a password change or a disable: even one that slipped past the
            # revocation (a refresh racing the change) is refused.
            raise AuthError(
                ErrorCode.UNAUTHORIZED, "the refresh token predates a change of the user"
            )
        self._users[user.user_id] = user
        return await self._issue(user, now)

    async def logout(self, refresh_token: str) -> bool:
        return await self._require_store().revoke_refresh_token(
            digest(refresh_token), self._now_ns()
        )

    # -- API keys --------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        role: Role,
        expires_ns: int | None = None,
        allowed_ips: list[str] | None = None,
    ) -> NewApiKey:
        if not name.strip():
            raise ValueError("name must not be empty")
        networks = parse_networks(allowed_ips or [])
        key_id, key = new_api_key()
        record = ApiKeyRecord(
            key_id=key_id,
            name=name.strip(),
            role=role.value,
            key_hash=digest(key),
            created_ns=self._now_ns(),
            expires_ns=expires_ns,
            allowed_ips=networks,
        )
        await self._require_store().add_api_key(record)
        self._keys[record.key_hash] = record
        self._changed()
        return NewApiKey(
            key_id=key_id,
            name=record.name,
            role=role,
            key=key,
            expires_ns=expires_ns,
            allowed_ips=networks,
        )

    async def list_keys(self) -> list[ApiKeyRecord]:
        return await self._require_store().api_keys()

    async def revoke_key(self, key_id: str) -> bool:
        revoked = await self._require_store().revoke_api_key(key_id, self._now_ns())
        for key_hash, record in list(self._keys.items()):
            if record.key_id == key_id:
                del self._keys[key_hash]
        self._changed()
        return revoked

    # -- users -----------------------------------------------------------------------

    async def list_users(self) -> list[UserRecord]:
        return await self._require_store().users()

    async def create_user(self, user_id: str, role: Role, password: str) -> UserRecord:
        if not USER_ID.fullmatch(user_id):
            raise ValueError("user_id must be 1-64 of A-Z a-z 0-9 . _ -")
        check_password_strength(password)
        now = self._now_ns()
        user = UserRecord(
            user_id=user_id,
            role=role.value,
            password_hash=await asyncio.to_thread(hash_password, password),
            created_ns=now,
            updated_ns=now,
        )
        if not await self._require_store().add_user(user):  # never overwrites
            raise ValueError(f"user {user_id!r} exists already")
        self._users[user_id] = user
        self._changed()
        return user

    async def set_password(self, user_id: str, password: str) -> None:
        check_password_strength(password)
        user = await self._existing_user(user_id)
        now = self._now_ns()
        password_hash = await asyncio.to_thread(hash_password, password)
        changed = msgspec.structs.replace(user, password_hash=password_hash, updated_ns=now)
        await self._save_and_log_out(changed, now)

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        user = await self._existing_user(user_id)
        now = self._now_ns()
        await self._save_and_log_out(
            msgspec.structs.replace(user, disabled=disabled, updated_ns=now), now
        )

    async def _existing_user(self, user_id: str) -> UserRecord:
        user = await self._require_store().user(user_id)
        if user is None:
            raise LookupError(f"no user {user_id!r}")
        return user

    async def _save_and_log_out(self, user: UserRecord, now: int) -> None:
        store = self._require_store()
        await store.save_user(user)
        await store.revoke_refresh_tokens_of(user.user_id, now)
        self._users[user.user_id] = user
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
