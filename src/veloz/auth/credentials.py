"""Credentials made and checked here: password hashes (scrypt, memory-hard), API keys and
refresh tokens (random, stored only as their SHA-256). Every comparison is constant-time."""

import base64
import hashlib
import hmac
import secrets

# scrypt with N=2^14, r=8: 16 MiB and ~40 ms per check here: slow for a guesser, still
# fine for a login. The parameters travel in the hash, so they can be raised later.
_N, _R, _P = 1 << 14, 8, 1
_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD_LENGTH = 12
API_KEY_PREFIX = "vz"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, _unb64(digest))


# Checked against when the user does not exist, so an unknown user takes as long as a
# wrong password and the timing does not tell which user ids exist.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def digest(secret: str) -> str:
    """What is stored for a high-entropy secret (API key, refresh token): no KDF needed,
    they cannot be guessed, and a lookup by hash stays cheap."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """(key id, the key): `vz_<id>_<secret>`; the id is public, the key is shown once."""
    key_id = secrets.token_hex(6)
    return key_id, f"{API_KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)
