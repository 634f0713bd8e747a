"""What the fake says on the wire: Binance's error answers (code, message, HTTP status),
number formatting (decimals as strings, as Binance sends them) and parameter parsing with
Binance's own refusals for missing or malformed values."""

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

# Binance's documented pattern for a DECIMAL parameter, quoted in its -1100 answers.
DECIMAL_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_DECIMAL = re.compile(DECIMAL_PATTERN)
# Client order ids (FIX API docs; REST and WebSocket API enforce the same).
CLIENT_ORDER_ID_PATTERN = r"^[a-zA-Z0-9-_]{1,36}$"
_CLIENT_ORDER_ID = re.compile(CLIENT_ORDER_ID_PATTERN)


class Refusal(Exception):
    """An error answer: `{"code": code, "msg": msg}` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{status} {code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


# The refusals the fake gives, with errors.md's wording.
def mandatory(name: str) -> Refusal:
    return Refusal(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def not_required(name: str) -> Refusal:
    return Refusal(-1106, f"Parameter '{name}' sent when not required.")


def illegal(name: str, legal: str) -> Refusal:
    return Refusal(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


BAD_SYMBOL = Refusal(-1121, "Invalid symbol.")
BAD_SIGNATURE = Refusal(-1022, "Signature for this request is not valid.")
BAD_KEY_FORMAT = Refusal(-2014, "API-key format invalid.", 401)
REJECTED_KEY = Refusal(-2015, "Invalid API-key, IP, or permissions for action.", 401)
OUTSIDE_RECV_WINDOW = Refusal(-1021, "Timestamp for this request is outside of the recvWindow.")
AHEAD_OF_SERVER = Refusal(
    -1021, "Timestamp for this request was 1000ms ahead of the server's time."
)
DUPLICATE_ORDER = Refusal(-2010, "Duplicate order sent.")
INSUFFICIENT_BALANCE = Refusal(-2010, "Account has insufficient balance for requested action.")
WOULD_TAKE = Refusal(-2010, "Order would immediately match and take.")
UNKNOWN_ORDER_CANCEL = Refusal(-2011, "Unknown order sent.")
NO_SUCH_ORDER = Refusal(-2013, "Order does not exist.")
WRONG_CLIENT_ID = Refusal(-2039, "Client order ID is not correct for this order ID.")
TIMEOUT_1007 = Refusal(
    -1007,
    "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown.",
    408,  # errors.md gives no status for -1007; 408 is what clients see in practice
)
INTERNAL_500 = Refusal(
    -1001, "Internal error; unable to process your request. Please try again.", 500
)
BUSY_503 = Refusal(
    -1008,
    "Server is currently overloaded with other requests. Please try again in a few minutes.",
    503,
)


def filter_failure(name: str) -> Refusal:
    return Refusal(-1013, f"Filter failure: {name}")


def fmt(value: Decimal) -> str:
    """Binance's 8-decimal strings ("0.10000000"), exact (no float on the way)."""
    return f"{value:.8f}"


def text(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise mandatory(name)
    return value


def decimal(params: Mapping[str, str], name: str, *, required: bool = True) -> Decimal | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise mandatory(name)
        return None
    if not _DECIMAL.match(value):
        raise illegal(name, DECIMAL_PATTERN)
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise illegal(name, DECIMAL_PATTERN) from None


def integer(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise mandatory(name) from None


def client_order_id(value: str, name: str = "newClientOrderId") -> str:
    if not _CLIENT_ORDER_ID.match(value):
        raise illegal(name, CLIENT_ORDER_ID_PATTERN)
    return value
