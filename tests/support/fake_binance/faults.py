"""Faults a test arms for the next requests on a path (or WebSocket API method): what the
client sees, and whether the request still took effect (`apply`), since with a timeout,
a 5xx, a dropped connection or -1007 Binance may well have placed the order."""

import enum
from dataclasses import dataclass


class Fault(enum.Enum):
    TIMEOUT = "timeout"  # no answer until long after the client gave up
    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    DROP = "drop"  # the connection closed without an answer
    CODE_1007 = "code_1007"  # Binance's own "execution status unknown"
    RATE_429 = "rate_429"  # refused before processing; never applied
    BAN_418 = "ban_418"  # refused before processing; never applied


@dataclass
class ArmedFault:
    path: str
    fault: Fault
    count: int
    apply: bool
    method: str | None


class FaultPlan:
    def __init__(self) -> None:
        self.armed: list[ArmedFault] = []

    def arm(self, path: str, fault: Fault, *, count: int, apply: bool, method: str | None) -> None:
        self.armed.append(ArmedFault(path, fault, count, apply, method))

    def take(self, path: str, method: str) -> ArmedFault | None:
        for armed in self.armed:
            if armed.path == path and armed.method in (None, method):
                armed.count -= 1
                if armed.count <= 0:
                    self.armed.remove(armed)
                return armed
        return None
