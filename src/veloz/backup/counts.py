"""Rows per table of a history store, whatever tables it holds: what a backup records and
a test restore is compared with. Table names as backup_postgres.sh's info.json has them
(`orders`; `schema.table` outside the public schema)."""

import asyncio
import sqlite3
from pathlib import Path

import asyncpg

from veloz.persistence.urls import dialect_of, sqlite_path

_PG_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2
"""


def table_counts(url: str) -> dict[str, int]:
    """Rows per table of the store `url` names. Raises OSError if it cannot be read."""
    if dialect_of(url) == "sqlite":
        return sqlite_counts(Path(sqlite_path(url)))
    return asyncio.run(_postgres_counts(url))


def sqlite_counts(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        return {
            name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
            for name in names
        }
    except sqlite3.Error as exc:
        raise OSError(f"{path}: {exc}") from None
    finally:
        conn.close()


async def _postgres_counts(url: str) -> dict[str, int]:
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        raise OSError(f"cannot connect: {type(exc).__name__}: {exc}") from None
    try:
        counts: dict[str, int] = {}
        for schema, table in await conn.fetch(_PG_TABLES):
            name = table if schema == "public" else f"{schema}.{table}"
            quoted = f'"{schema}"."{table}"'
            counts[name] = int(await conn.fetchval(f"SELECT count(*) FROM {quoted}"))
        return counts
    finally:
        await conn.close()


def differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """One line per table whose count differs (a table missing counts as a difference)."""
    return [
        f"{table}: expected {count}, found {actual.get(table, 'no such table')}"
        for table, count in sorted(expected.items())
        if actual.get(table) != count
    ]
