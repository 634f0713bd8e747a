"""Checking signed requests as Binance does: the API key, the signature (HMAC-SHA256 hex,
compared without regard to case, or Ed25519 base64) over the payload Binance defines, and
the timestamp against `recvWindow` and the server's clock."""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.support.fake_binance import wire

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000


def rest_payload(raw_query: str, raw_body: str) -> str:
    """REST: "the query string concatenated without separator to the HTTP body", each as
    sent (still percent-encoded), without the `signature` parameter itself."""
    return _without_signature(raw_query) + _without_signature(raw_body)


def ws_api_payload(params: Mapping[str, object]) -> str:
    """WebSocket API: every parameter but `signature`, sorted by name, `k=v` joined by
    `&`, no percent-encoding."""
    return "&".join(f"{k}={ws_value(params[k])}" for k in sorted(params) if k != "signature")


def ws_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _without_signature(raw: str) -> str:
    if not raw:
        return ""
    return "&".join(part for part in raw.split("&") if not part.startswith("signature="))


class Verifier:
    """The account's key: `api_key` and either an HMAC secret or an Ed25519 public key."""

    def __init__(
        self, api_key: str, *, secret: str | None = None, ed25519_public_key_pem: str | None = None
    ) -> None:
        if (secret is None) == (ed25519_public_key_pem is None):
            raise ValueError("give either an HMAC secret or an Ed25519 public key")
        self.api_key = api_key
        self._secret = secret.encode() if secret is not None else None
        self._public: Ed25519PublicKey | None = None
        if ed25519_public_key_pem is not None:
            key = load_pem_public_key(ed25519_public_key_pem.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("the public key is not an Ed25519 key")
            self._public = key

    def __repr__(self) -> str:
        kind = "HMAC" if self._secret is not None else "Ed25519"
        return f"Verifier({kind})"

    def check_key(self, api_key: str | None) -> None:
        if not api_key:
            raise wire.BAD_KEY_FORMAT
        if not hmac.compare_digest(api_key.encode(), self.api_key.encode()):
            raise wire.REJECTED_KEY

    def valid(self, payload: str, signature: str) -> bool:
        if self._secret is not None:
            expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        assert self._public is not None
        try:
            raw = base64.b64decode(signature, validate=True)
            self._public.verify(raw, payload.encode())
        except (binascii.Error, ValueError, InvalidSignature):
            return False
        return True

    def check_signature(self, payload: str, signature: str | None) -> None:
        if not signature:
            raise wire.mandatory("signature")
        if not self.valid(payload, signature):
            raise wire.BAD_SIGNATURE


def check_timestamp(params: Mapping[str, str], server_ms: int) -> None:
    """Binance's rule: `timestamp < serverTime + 1000` and `serverTime - timestamp <=
    recvWindow` (timestamps may come in µs; recvWindow in ms with up to 3 decimals)."""
    timestamp = wire.integer(params, "timestamp")
    if timestamp is None:
        raise wire.mandatory("timestamp")
    if timestamp > 10**14:  # microseconds
        timestamp //= 1000
    window = wire.decimal(params, "recvWindow", required=False)
    recv_window = DEFAULT_RECV_WINDOW_MS if window is None else window
    if recv_window > MAX_RECV_WINDOW_MS:
        raise wire.Refusal(
            -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000."
        )
    if timestamp >= server_ms + 1000:
        raise wire.AHEAD_OF_SERVER
    if server_ms - timestamp > recv_window:
        raise wire.OUTSIDE_RECV_WINDOW
