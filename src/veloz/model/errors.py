"""Domain errors. Each carries a stable machine code that transports map to their own form
(an HTTP status, an `error` event on stdio) without inspecting the message."""


class VelozError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        # The finer cause under a general code, e.g. risk_rejected / max_position_exceeded.
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class CommandRejected(VelozError):
    """A command was refused before it changed anything.

    Codes: `bad_params`, `unknown_symbol`, `duplicate_client_order_id`, `not_found`,
    `order_final`, `trading_disabled`, `risk_rejected` and `rate_limit_exceeded` (with a
    `reason`), `journal_unavailable`, `not_ready`, `shutting_down`.
    """

    code = "bad_params"


class InvalidTransition(VelozError):
    """An event does not fit the order's current state; it is reported, never applied.

    Codes: `illegal_transition`, `overfill`, `duplicate_trade`, `mismatched_order`.
    """

    code = "illegal_transition"
