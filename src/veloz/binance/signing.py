"""Signing Binance requests: HMAC-SHA256 (hex) with a secret key, or Ed25519 (base64) with
a private key in PEM, as Binance's "SIGNED endpoint security" describes. The payload is
the query string (and body) exactly as sent.

Neither the key nor the secret ever leaves this module in text: `Credentials` shows
neither in a repr, and errors name the problem, not the value.
"""

import base64
import hashlib
import hmac
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key


class Signer(Protocol):
    def sign(self, payload: str) -> str: ...


class HmacSigner:
    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the HMAC secret is empty")
        self._secret = secret.encode()

    def sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(***)"


class Ed25519Signer:
    __slots__ = ("_key",)

    def __init__(self, private_key_pem: str) -> None:
        try:
            key = load_pem_private_key(private_key_pem.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ValueError(
                "not a readable unencrypted PEM private key (Binance takes Ed25519 keys in "
                "PKCS#8 PEM)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"the PEM key is {type(key).__name__}, not an Ed25519 key")
        self._key = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode())).decode()

    def __repr__(self) -> str:
        return "Ed25519Signer(***)"


def signer_for(secret: str) -> Signer:
    """An Ed25519 signer for a PEM private key, else HMAC with the secret."""
    if "-----BEGIN" in secret:
        return Ed25519Signer(secret)
    return HmacSigner(secret)


class Credentials:
    """An API key and what signs for it. Neither shows in a repr or str."""

    __slots__ = ("api_key", "signer")

    def __init__(self, api_key: str, signer: Signer) -> None:
        if not api_key:
            raise ValueError("the API key is empty")
        self.api_key = api_key
        self.signer = signer

    def __repr__(self) -> str:
        return "Credentials(api_key=***, signer=***)"

    __str__ = __repr__
