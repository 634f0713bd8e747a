"""`veloz db migrate|status|rebuild`: the history store's schema and contents.

`rebuild` replays the journal into an emptied projection; it takes the journal's lock, so
it refuses while the engine runs (exit 3)."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from veloz.persistence.store import HistoryStore, MigrationStatus, Store

app = typer.Typer(help="Migrate, inspect and rebuild the history store.", no_args_is_help=True)

_T = TypeVar("_T")

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Store URL (default VELOZ_DATABASE_URL, sqlite:///./data/veloz.db)"),
]


def open_configured_store(url: str | None) -> "Store":
    from veloz.config import SettingsError, load_settings
    from veloz.persistence.service import open_store
    from veloz.persistence.urls import DatabaseUrlError

    try:
        chosen = url if url is not None else load_settings().database_url
        if chosen.lower() == "none":
            raise DatabaseUrlError("VELOZ_DATABASE_URL=none: there is no history store")
        return open_store(chosen)
    except (SettingsError, DatabaseUrlError) as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None


def with_store(url: str | None, work: Callable[["Store"], Awaitable[_T]]) -> _T:
    """Connect to the store `url` names (default VELOZ_DATABASE_URL), run `work`, close;
    exit 1 with one line if the database cannot be reached."""
    from veloz.persistence.store import StoreUnavailable

    store = open_configured_store(url)

    async def run() -> _T:
        try:
            await store.connect()
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        typer.echo(f"veloz: history store unavailable: {exc}", err=True)
        raise typer.Exit(1) from None


def when(ns: int | None, missing: str = "-") -> str:
    """A nanosecond time as the CLI's tables show it (UTC, to the second)."""
    if ns is None:
        return missing
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def migrate(url: UrlOption = None) -> None:
    """Apply the migrations not applied yet (the engine also does this at start unless
    VELOZ_DATABASE_MIGRATE=false)."""
    applied = with_store(url, lambda store: store.migrate())
    for migration in applied:
        typer.echo(f"applied {migration.version:04d}_{migration.name}")
    if not applied:
        typer.echo("nothing to apply: the schema is current")


@app.command()
def status(url: UrlOption = None) -> None:
    """Migrations, the projection's high-water mark and the rows per table."""

    async def read(
        store: "HistoryStore",
    ) -> tuple[list["MigrationStatus"], int | None, dict[str, int]]:
        migrations = await store.migrations()
        if any(m.applied_ns is None for m in migrations):
            return migrations, None, {}
        return migrations, await store.high_water(), await store.table_counts()

    migrations, high_water, counts = with_store(url, read)
    console = Console()
    table = Table(title=f"history store {open_configured_store(url).name}")
    table.add_column("migration")
    table.add_column("applied")
    for m in migrations:
        table.add_row(f"{m.version:04d}_{m.name}", when(m.applied_ns, "pending"))
    console.print(table)
    if high_water is None:
        console.print("schema not current: run `veloz db migrate`")
        raise typer.Exit(1)
    console.print(f"projected through journal sequence {high_water}")
    rows = Table()
    rows.add_column("table")
    rows.add_column("rows", justify="right")
    for name, count in counts.items():
        rows.add_row(name, str(count))
    console.print(rows)


@app.command()
def rebuild(
    url: UrlOption = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Journal directory (default VELOZ_WAL_DIR, ./data/wal)"),
    ] = None,
) -> None:
    """Empty the orders, fills and mode changes and project them again from the journal.
    The engine must be stopped."""
    from veloz.cli.wal import journal_directory
    from veloz.journal.segments import DirectoryLock, JournalLocked
    from veloz.persistence.projector import rebuild as rebuild_store

    wal_dir = journal_directory(directory)
    lock = DirectoryLock(wal_dir)
    try:
        lock.acquire()
    except JournalLocked as exc:
        typer.echo(f"veloz: {exc}; stop the engine before rebuilding", err=True)
        raise typer.Exit(3) from None
    try:

        async def work(store: "HistoryStore") -> tuple[int, dict[str, int]]:
            await store.migrate()
            stats = await rebuild_store(store, wal_dir)
            return stats.high_water, await store.table_counts()

        high_water, counts = with_store(url, work)
    finally:
        lock.release()
    shown = ", ".join(f"{counts[t]} {t}" for t in ("orders", "fills", "mode_changes"))
    typer.echo(f"rebuilt through journal sequence {high_water}: {shown}")


@app.command()
def backup(
    out: Annotated[Path, typer.Argument(help="The copy to write (a new file)")],
    url: UrlOption = None,
    info: Annotated[
        Path | None,
        typer.Option(help="Also write this JSON file: source, time, rows per table of the copy"),
    ] = None,
) -> None:
    """Copy the SQLite history store with SQLite's online backup API while the engine
    runs. PostgreSQL is backed up by scripts/backup/backup_postgres.sh (pg_dump)."""
    import json
    import sqlite3
    import time

    from veloz.backup.sqlite_copy import backup_sqlite, describe_copy
    from veloz.persistence.urls import redact, sqlite_path

    chosen = _chosen_url(url)
    if _dialect(chosen) != "sqlite":
        typer.echo(
            f"veloz: {redact(chosen)} is PostgreSQL: back it up with "
            "scripts/backup/backup_postgres.sh -t full (pg_dump)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        backup_sqlite(Path(sqlite_path(chosen)), out)
        if info is not None:
            facts = {"url": redact(chosen), "created_ns": time.time_ns(), **describe_copy(out)}
            info.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    except (OSError, sqlite3.Error) as exc:
        typer.echo(f"veloz: backup failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backed up {redact(chosen)} to {out}")


@app.command()
def counts(
    url: UrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    expect: Annotated[
        Path | None,
        typer.Option(
            help="A JSON file with the counts to find (an object of table: rows, or one "
            "with a 'counts' member, as info.json has): exit 1 naming each difference"
        ),
    ] = None,
) -> None:
    """Rows per table, every table the store holds (what backups record and
    verify_backup.sh -t compares a test restore with)."""
    import json

    from veloz.backup.counts import differences, table_counts

    chosen = _chosen_url(url)
    _dialect(chosen)
    try:
        found = table_counts(chosen)
    except OSError as exc:
        typer.echo(f"veloz: history store unavailable: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(found, sort_keys=True))
    elif expect is None:
        for table, rows in found.items():
            typer.echo(f"{table} {rows}")
    if expect is not None:
        try:
            wanted = json.loads(expect.read_text())
        except (OSError, ValueError) as exc:
            typer.echo(f"veloz: cannot read {expect}: {exc}", err=True)
            raise typer.Exit(2) from None
        wanted = wanted.get("counts", wanted) if isinstance(wanted, dict) else None
        if not isinstance(wanted, dict):
            typer.echo(f"veloz: {expect} holds no table counts", err=True)
            raise typer.Exit(2)
        problems = differences({k: int(v) for k, v in wanted.items()}, found)
        for problem in problems:
            typer.echo(f"veloz: count differs: {problem}", err=True)
        if problems:
            raise typer.Exit(1)
        if not as_json:
            typer.echo(f"counts match {expect}: {len(wanted)} tables")


def _chosen_url(url: str | None) -> str:
    from veloz.config import SettingsError, load_settings

    try:
        return url if url is not None else load_settings().database_url
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None


def _dialect(url: str) -> str:
    from veloz.persistence.urls import DatabaseUrlError, dialect_of

    try:
        if url.lower() == "none":
            raise DatabaseUrlError("VELOZ_DATABASE_URL=none: there is no history store")
        return dialect_of(url)
    except DatabaseUrlError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
