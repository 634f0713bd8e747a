"""A consistent copy of a SQLite history store while the engine writes it, through
SQLite's online backup API (never a file copy, which could catch a half-written page or
miss what is still in the -wal file)."""

import os
import sqlite3
from pathlib import Path

from veloz.backup.counts import sqlite_counts


def backup_sqlite(source: Path, out: Path) -> None:
    """Copy the database `source` into the new file `out` (a single file: the copy is
    switched out of WAL mode, so no -wal or -shm file goes with it)."""
    if not source.is_file():
        raise FileNotFoundError(f"no SQLite database at {source}")
    if out.exists():
        raise FileExistsError(f"{out} already exists")
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    # Read-only: the backup never writes to the engine's database.
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"the copy fails its integrity check: {verdict}")
        finally:
            dst.close()
    finally:
        src.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    partial.rename(out)


def describe_copy(path: Path) -> dict[str, object]:
    """What info.json records about a copy: rows per table and the journal sequence the
    projection holds (a restore must not pair it with a journal that ends before it)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        has_state = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projector_state'"
        ).fetchone()
        last = (
            conn.execute("SELECT max(last_seq) FROM projector_state").fetchone()[0]
            if has_state
            else None
        )
    finally:
        conn.close()
    return {"counts": sqlite_counts(path), "projector_last_seq": last}
