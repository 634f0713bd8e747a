"""JWT access tokens: HS256, short-lived, carrying who and which role. Refresh tokens are
not JWTs: they are random, stored hashed and revocable (see AuthService)."""

import jwt
import msgspec

from veloz.auth.roles import Role, parse_role

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32


class TokenError(Exception):
    """The token is malformed, forged or expired (the message says which, never the token)."""


class AccessClaims(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    role: Role
    expires_s: int


class AccessTokens:
    def __init__(self, secret: str, ttl_s: int) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.ttl_s = ttl_s

    def __repr__(self) -> str:
        return f"AccessTokens(ttl_s={self.ttl_s})"  # never the secret

    def issue(self, user_id: str, role: Role, now_s: int) -> str:
        claims = {"sub": user_id, "role": role.value, "iat": now_s, "exp": now_s + self.ttl_s}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, now_s: int) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # Times are checked against our clock below, not the library's.
                options={
                    "require": ["sub", "exp", "role"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {type(exc).__name__}") from None
        if not isinstance(claims["exp"], int) or claims["exp"] <= now_s:
            raise TokenError("the token has expired")
        try:
            role = parse_role(str(claims["role"]))
        except ValueError:
            raise TokenError("the token names no known role") from None
        return AccessClaims(user_id=str(claims["sub"]), role=role, expires_s=claims["exp"])
