"""The SQL migrations shipped with VeloZ, one directory per dialect: `NNNN_name.sql`,
applied in version order and recorded in `schema_migrations`."""

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """Every migration for `dialect` ("sqlite" or "postgres"), oldest first."""
    found: list[Migration] = []
    folder = resources.files("veloz.persistence") / "migrations" / dialect
    for entry in folder.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two {dialect} migrations share a version: {versions}")
    return found
