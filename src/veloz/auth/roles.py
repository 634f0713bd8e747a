"""Roles, each allowing everything the one below it does: viewer < trader < admin."""

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: "Role") -> bool:
        return self.rank >= required.rank


_RANK = {Role.VIEWER: 1, Role.TRADER: 2, Role.ADMIN: 3}


def parse_role(value: str) -> Role:
    try:
        return Role(value.lower())
    except ValueError:
        raise ValueError(f"role must be one of {', '.join(Role)}, got {value!r}") from None
