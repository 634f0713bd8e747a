"""Request signatures as Binance computes them: HMAC-SHA256 against Binance's own
documented example, Ed25519 verified with the public key; keys never shown."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from veloz.binance.signing import (
    Credentials,
    Ed25519Signer,
    HmacSigner,
    signer_for,
)

# Binance's documented example (rest-api.md, "SIGNED Endpoint Examples for POST /api/v3/order").
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_hmac_matches_binances_documented_example():
    assert HmacSigner(DOC_SECRET).sign(DOC_PAYLOAD) == DOC_SIGNATURE


def test_hmac_changes_with_one_byte_of_the_payload():
    assert HmacSigner(DOC_SECRET).sign(DOC_PAYLOAD.replace("0.1", "0.2")) != DOC_SIGNATURE


def pem_key() -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    return pem, key


def test_ed25519_signature_verifies_with_the_public_key():
    pem, key = pem_key()
    signer = signer_for(pem)
    assert isinstance(signer, Ed25519Signer)
    signature = base64.b64decode(signer.sign(DOC_PAYLOAD))
    key.public_key().verify(signature, DOC_PAYLOAD.encode())  # raises if wrong


def test_a_secret_that_is_not_pem_signs_with_hmac():
    assert isinstance(signer_for(DOC_SECRET), HmacSigner)


def test_a_broken_pem_is_refused_without_showing_it():
    broken = "-----BEGIN PRIVATE KEY-----\nnot-a-key-at-all\n-----END PRIVATE KEY-----"
    with pytest.raises(ValueError) as refused:
        signer_for(broken)
    assert "not-a-key" not in str(refused.value) and "PEM" in str(refused.value)


def test_credentials_never_show_the_key_or_the_secret():
    credentials = Credentials("my-api-key-123", HmacSigner(DOC_SECRET))
    for text in (repr(credentials), str(credentials), repr(credentials.signer)):
        assert "my-api-key-123" not in text and DOC_SECRET not in text


def test_empty_key_or_secret_is_refused():
    with pytest.raises(ValueError):
        Credentials("", HmacSigner(DOC_SECRET))
    with pytest.raises(ValueError):
        HmacSigner("")


def test_a_pem_key_of_another_kind_is_refused_without_showing_it():
    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    with pytest.raises(ValueError, match="not an Ed25519 key") as refused:
        signer_for(pem)
    assert pem.splitlines()[1] not in str(refused.value)
