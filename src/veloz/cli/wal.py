"""`veloz wal inspect|verify|stats|checkpoint|snapshot`: look into the journal, read-only
except `checkpoint`, which needs the engine stopped (it takes the journal's lock).
`snapshot` copies it consistently while the engine runs (scripts/backup/backup_wal.sh)."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from veloz.config import Settings

app = typer.Typer(
    help="Inspect, verify and checkpoint the order journal (WAL).", no_args_is_help=True
)

DirOption = Annotated[
    Path | None, typer.Option("--dir", help="Journal directory (default VELOZ_WAL_DIR, ./data/wal)")
]


def _settings() -> "Settings":
    from veloz.config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None


def journal_directory(given: Path | None) -> Path:
    directory = given if given is not None else _settings().wal_dir
    if not directory.is_dir():
        typer.echo(f"veloz: no journal directory at {directory}", err=True)
        raise typer.Exit(2)
    return directory


@app.command()
def verify(directory: DirOption = None) -> None:
    """Check every record of every segment; exit 1 if anything is damaged."""
    from veloz.journal.verify import verify_directory

    report = verify_directory(journal_directory(directory))
    table = Table(title=f"journal {report.directory}")
    for column in ("segment", "first seq", "last seq", "records", "checkpoints", "problems"):
        table.add_column(column)
    for seg in report.segments:
        problems = [f"{d.length} bad bytes at {d.offset} ({d.reason})" for d in seg.damage]
        if seg.tail is not None:
            kind = "torn tail" if seg.segment.is_current else "bad end"
            problems.append(f"{kind}: {seg.tail.length} bytes at {seg.tail.offset}")
        table.add_row(
            seg.segment.path.name,
            str(seg.first_seq or "-"),
            str(seg.last_seq or "-"),
            str(seg.records),
            str(len(seg.checkpoints)),
            "; ".join(problems) or "ok",
        )
    console = Console()
    console.print(table)
    for gap in report.gaps:
        console.print(f"[red]gap[/red] {gap}")
    for stranger in report.strangers:
        console.print(f"[yellow]unexpected file[/yellow] {stranger.name} (the engine ignores it)")
    if report.damaged and report.start_affected:
        console.print("[red]DAMAGED[/red]: the engine will start READONLY on this journal")
        raise typer.Exit(1)
    if report.damaged:
        console.print(
            f"[yellow]DAMAGED (history only)[/yellow]: the damage lies before the newest "
            f"checkpoint (seq {report.last_checkpoint_seq}); the engine starts ACTIVE from it, "
            "and the records before it cannot be replayed or rebuilt"
        )
        raise typer.Exit(1)
    console.print(f"[green]OK[/green]: {report.entries} records in {len(report.segments)} segments")


@app.command()
def stats(
    directory: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
) -> None:
    """Entry counts by type, sizes, sequences and the newest checkpoint."""
    from veloz.journal.verify import verify_directory

    report = verify_directory(journal_directory(directory))
    table = Table(title=f"journal {report.directory}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    last = next((s.last_seq for s in reversed(report.segments) if s.last_seq), None)
    rows = [
        ("segments", len(report.segments)),
        ("bytes", report.bytes),
        ("entries", report.entries),
        ("last sequence", last),
        ("newest checkpoint", report.last_checkpoint_seq),
        ("damaged", report.damaged),
    ]
    if as_json:
        figures = {name.replace(" ", "_"): value for name, value in rows}
        typer.echo(json.dumps(figures | {"types": dict(sorted(report.types.items()))}, indent=2))
        return
    rows += [(f"entries {name}", count) for name, count in sorted(report.types.items())]
    for name, value in rows:
        table.add_row(name, "-" if value is None else str(value))
    Console().print(table)


@app.command()
def inspect(
    directory: DirOption = None,
    from_seq: Annotated[int, typer.Option(help="First sequence to show")] = 0,
    limit: Annotated[int, typer.Option(help="Entries to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per entry")] = False,
) -> None:
    """Show entries with their decoded payloads."""
    import msgspec

    from veloz.codec import PayloadError, decode_event, encode_json
    from veloz.journal.framing import EntryType
    from veloz.journal.verify import iterate_records, type_name

    table = Table(title="journal entries")
    for column in ("seq", "ts_ns", "type", "segment"):
        table.add_column(column, no_wrap=True)
    # Never cut a payload: fold it over lines in a terminal (piped: see below).
    table.add_column("payload", overflow="fold")
    records = iterate_records(journal_directory(directory), from_seq)
    for _, (path, record) in zip(range(limit), records, strict=False):
        if record.entry_type in (EntryType.Checkpoint, EntryType.Rotation):
            body: object = {"bytes": len(record.payload)}
            if record.entry_type == EntryType.Rotation:
                body = msgspec.msgpack.decode(record.payload)
        else:
            try:
                body = decode_event(record.entry_type, record.payload)
            except PayloadError as exc:
                body = {"undecodable": str(exc)}
        entry = {
            "seq": record.seq,
            "ts_ns": record.ts_ns,
            "type": type_name(record.entry_type),
            "segment": path.name,
            "payload": body,
        }
        if as_json:
            typer.echo(encode_json(entry).decode())
        else:
            table.add_row(
                str(record.seq),
                str(record.ts_ns),
                str(entry["type"]),
                path.name,
                encode_json(body).decode(),
            )
    if not as_json:
        console = Console()
        if not console.is_terminal:  # piped (grep, less, a file): every row on one line
            console = Console(width=1_000_000)
        console.print(table)


@app.command()
def checkpoint(directory: DirOption = None) -> None:
    """Replay the journal and write a checkpoint now (the engine must be stopped; a
    running engine takes one with POST /api/admin/checkpoint)."""
    import asyncio

    import msgspec

    from veloz.config import SettingsError
    from veloz.journal.segments import JournalLocked
    from veloz.runtime.engine_config import engine_config
    from veloz.runtime.live import LiveEngine

    try:
        config = engine_config(_settings())
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
    journal = msgspec.structs.replace(config.journal, directory=str(journal_directory(directory)))
    engine = LiveEngine(msgspec.structs.replace(config, journal=journal))
    try:
        seq = asyncio.run(engine.checkpoint_offline())
    except JournalLocked as exc:
        typer.echo(f"veloz: {exc}; use POST /api/admin/checkpoint on the running engine", err=True)
        raise typer.Exit(3) from None
    typer.echo(f"checkpoint written at sequence {seq}")


@app.command()
def snapshot(
    out: Annotated[
        Path, typer.Option("--out", help="Where the copy goes (created; must be empty)")
    ],
    directory: DirOption = None,
) -> None:
    """Copy the journal consistently while the engine runs (it does not take the engine's
    lock): completed segments as they are, the current one up to its last complete
    record, retried if a rotation races the copy; then verified and described in
    snapshot.json. Exit 1 if no consistent copy could be taken."""
    from veloz.journal.snapshot import SnapshotError, take_snapshot

    try:
        taken = take_snapshot(journal_directory(directory), out)
    except (SnapshotError, OSError) as exc:
        typer.echo(f"veloz: snapshot failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"snapshot {taken.directory}: sequences {taken.first_seq}..{taken.last_seq}, "
        f"{taken.records} records in {len(taken.files)} files, newest checkpoint "
        f"{taken.checkpoint_seq}"
    )
