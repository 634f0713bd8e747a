"""`veloz wal snapshot` and `veloz wal stats --json`, the two commands backup_wal.sh,
restore_wal.sh and verify_backup.sh read, through typer's CliRunner."""

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.journal.test_snapshot import _fill
from veloz.cli.main import app
from veloz.journal.segments import list_segments
from veloz.journal.verify import iterate_records


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    directory = tmp_path / "wal"
    asyncio.run(_fill(directory, 30))
    return directory


def test_snapshot_then_stats_agree(journal, tmp_path):
    runner = CliRunner()
    out = tmp_path / "snap"
    taken = runner.invoke(app, ["wal", "snapshot", "--dir", str(journal), "--out", str(out)])
    assert taken.exit_code == 0, taken.output
    total = sum(1 for _ in iterate_records(journal))  # 31 entries and the rotations
    assert f"sequences 1..{total}, {total} records" in taken.output
    stats = runner.invoke(app, ["wal", "stats", "--dir", str(out), "--json"])
    assert stats.exit_code == 0, stats.output
    figures = json.loads(stats.output)
    described = json.loads((out / "snapshot.json").read_text())
    assert figures["entries"] == described["records"] == total
    assert figures["last_sequence"] == described["last_seq"] == total
    assert figures["newest_checkpoint"] == described["checkpoint_seq"] == 1
    assert figures["damaged"] is False and figures["types"]["OrderNew"] == 30


def test_snapshot_failures_exit_1_with_one_line(journal, tmp_path):
    runner = CliRunner()
    list_segments(journal)[0][1].path.unlink()  # a segment missing: a gap
    done = runner.invoke(
        app, ["wal", "snapshot", "--dir", str(journal), "--out", str(tmp_path / "s")]
    )
    assert done.exit_code == 1
    assert "veloz: snapshot failed:" in done.output and "expected" in done.output
    missing = runner.invoke(app, ["wal", "snapshot", "--dir", str(tmp_path / "no"), "--out", "x"])
    assert missing.exit_code == 2
