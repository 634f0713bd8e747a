"""`veloz wal verify|stats|inspect|checkpoint` and `veloz engine` start-up errors, through
typer's CliRunner on journals a real engine wrote."""

import asyncio
import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.engine import engine_config, quote, wait_for_status
from veloz.cli.main import app
from veloz.journal.framing import HEADER_SIZE, EntryType, encode_record
from veloz.journal.segments import CURRENT_NAME, list_segments
from veloz.journal.verify import iterate_records, type_name, verify_directory
from veloz.model.commands import CancelOrder, SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.runtime.live import LiveEngine

D = Decimal


async def _trade(directory: Path) -> None:
    """One resting order cancelled, one market order filled; then a clean stop."""
    engine = LiveEngine(engine_config(directory))
    await engine.start()
    engine.market.on_data(quote())
    await engine.submit(
        SubmitOrder(
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            qty=D("0.01"),
            price=D("49000"),
            client_order_id="rest-1",
        )
    )
    await wait_for_status(engine, "rest-1", OrderStatus.ACCEPTED)
    await engine.cancel(CancelOrder(client_order_id="rest-1"))
    await wait_for_status(engine, "rest-1", OrderStatus.CANCELLED)
    await engine.submit(
        SubmitOrder(
            symbol="BTCUSDT",
            side=OrderSide.BUY,
            qty=D("0.02"),
            order_type=OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
            client_order_id="mkt-1",
        )
    )
    await wait_for_status(engine, "mkt-1", OrderStatus.FILLED)
    await engine.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    directory = tmp_path / "wal"
    asyncio.run(_trade(directory))
    return directory


def entry_counts(directory: Path) -> Counter[str]:
    return Counter(type_name(record.entry_type) for _, record in iterate_records(directory))


# -- verify ------------------------------------------------------------------------------


def test_verify_a_fresh_journal(runner, journal):
    result = runner.invoke(app, ["wal", "verify", "--dir", str(journal)])
    assert result.exit_code == 0, result.output
    entries = sum(entry_counts(journal).values())
    assert re.search(rf"\bOK\b: {entries} records in 1 segments", result.output)
    assert "DAMAGED" not in result.output


def test_verify_reports_a_flipped_byte_in_the_middle(runner, journal):
    records = [record for _, record in iterate_records(journal)]
    middle = records[len(records) // 2]  # not the last record: damage, not a torn tail
    assert middle is not records[-1]
    segment = journal / CURRENT_NAME
    data = bytearray(segment.read_bytes())
    data[middle.offset + HEADER_SIZE] ^= 0xFF
    segment.write_bytes(bytes(data))
    result = runner.invoke(app, ["wal", "verify", "--dir", str(journal)])
    assert result.exit_code == 1, result.output
    assert "DAMAGED" in result.output
    assert "bad crc" in result.output
    assert not re.search(r"\bOK\b:", result.output)


async def _trade_across_segments(directory: Path) -> None:
    """Enough orders for several small segments, then a checkpoint in the newest."""
    engine = LiveEngine(engine_config(directory, max_segment_bytes=4096))
    await engine.start()
    engine.market.on_data(quote())
    for n in range(40):
        await engine.submit(
            SubmitOrder(
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=D("0.01"),
                price=D("49000"),
                client_order_id=f"many-{n}",
            )
        )
    await engine.write_checkpoint()
    await engine.stop()


async def _start_mode(directory: Path) -> tuple[str, list[str]]:
    engine = LiveEngine(engine_config(directory))
    await engine.start()
    mode, problems = str(engine.mode), list(engine.journal_problems)
    await engine.stop()
    return mode, problems


def test_damage_behind_the_newest_checkpoint_is_history_only_as_the_engine_finds(runner, tmp_path):
    journal = tmp_path / "wal"
    asyncio.run(_trade_across_segments(journal))
    segments, _ = list_segments(journal)
    assert len(segments) >= 3, "the trading should have filled several segments"
    oldest = segments[0].path
    data = bytearray(oldest.read_bytes())
    data[HEADER_SIZE + 3] ^= 0xFF  # inside the first record of the oldest segment
    oldest.write_bytes(bytes(data))
    (journal / "notes.txt").write_text("an operator's file")

    result = runner.invoke(app, ["wal", "verify", "--dir", str(journal)])
    assert result.exit_code == 1, result.output
    assert "DAMAGED (history only)" in result.output and "READONLY" not in result.output
    assert "the engine ignores it" in result.output
    mode, problems = asyncio.run(_start_mode(journal))
    assert mode == "ACTIVE" and problems == []  # what verify said the engine would do


def test_damage_in_what_the_engine_replays_means_readonly_as_the_engine_finds(runner, journal):
    records = [record for _, record in iterate_records(journal)]
    middle = records[len(records) // 2]  # in the segment holding the newest checkpoint
    segment = journal / CURRENT_NAME
    data = bytearray(segment.read_bytes())
    data[middle.offset + HEADER_SIZE] ^= 0xFF
    segment.write_bytes(bytes(data))

    result = runner.invoke(app, ["wal", "verify", "--dir", str(journal)])
    assert result.exit_code == 1, result.output
    assert "the engine will start READONLY" in result.output
    mode, problems = asyncio.run(_start_mode(journal))
    assert mode == "READONLY" and problems


def test_verify_without_a_journal_directory(runner, tmp_path):
    result = runner.invoke(app, ["wal", "verify", "--dir", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "no journal directory" in result.output


def test_verify_reads_the_directory_from_veloz_wal_dir(runner, journal, clean_env):
    clean_env.setenv("VELOZ_WAL_DIR", str(journal))
    result = runner.invoke(app, ["wal", "verify"])
    assert result.exit_code == 0 and "OK" in result.output


# -- stats -------------------------------------------------------------------------------


def test_stats_prints_the_entry_counts(runner, journal):
    counts = entry_counts(journal)
    assert counts["OrderNew"] == 2 and counts["OrderCancel"] == 1
    assert counts["OrderFill"] >= 1 and counts["Checkpoint"] >= 1
    result = runner.invoke(app, ["wal", "stats", "--dir", str(journal)])
    assert result.exit_code == 0, result.output
    for name, count in counts.items():
        assert re.search(rf"entries {name}\W+{count}\b", result.output), (name, result.output)
    assert re.search(rf"\bentries\W+{sum(counts.values())}\b", result.output)
    assert re.search(r"\bdamaged\W+False\b", result.output)


# -- inspect -----------------------------------------------------------------------------


def test_inspect_json_prints_one_object_per_entry(runner, journal):
    result = runner.invoke(app, ["wal", "inspect", "--json", "--dir", str(journal)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    entries = [json.loads(line, parse_float=Decimal) for line in lines]
    records = [record for _, record in iterate_records(journal)]
    assert (
        [e["seq"] for e in entries] == [r.seq for r in records] == list(range(1, len(records) + 1))
    )
    assert [e["type"] for e in entries] == [type_name(r.entry_type) for r in records]
    (new_rest,) = [
        e
        for e in entries
        if e["type"] == "OrderNew" and e["payload"]["client_order_id"] == "rest-1"
    ]
    assert new_rest["payload"]["type"] == "OrderSubmitted"
    assert new_rest["payload"]["qty"] == D("0.01") and new_rest["payload"]["price"] == 49000
    assert all(e["segment"] == CURRENT_NAME for e in entries)
    checkpoint = next(e for e in entries if e["type"] == "Checkpoint")
    assert checkpoint["payload"]["bytes"] > 0


def test_inspect_from_seq_and_limit(runner, journal):
    result = runner.invoke(
        app, ["wal", "inspect", "--json", "--from-seq", "3", "--limit", "2", "--dir", str(journal)]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["seq"] for line in result.output.splitlines()] == [3, 4]


def test_inspect_shows_a_table_without_json(runner, journal):
    result = runner.invoke(app, ["wal", "inspect", "--dir", str(journal)])
    assert result.exit_code == 0, result.output
    assert "journal entries" in result.output and "OrderNew" in result.output


def test_inspect_reports_an_undecodable_payload(runner, journal):
    records = [r for _, r in iterate_records(journal) if r.entry_type == EntryType.OrderNew]
    # Re-frame the same payload under another entry type: valid record, wrong contents.
    segment = journal / CURRENT_NAME
    data = bytearray(segment.read_bytes())
    target = records[0]
    reframed = encode_record(EntryType.OrderFill, target.seq, target.ts_ns, target.payload)
    data[target.offset : target.offset + len(reframed)] = reframed
    segment.write_bytes(bytes(data))
    result = runner.invoke(app, ["wal", "inspect", "--json", "--dir", str(journal)])
    entry = next(
        json.loads(line)
        for line in result.output.splitlines()
        if json.loads(line)["seq"] == target.seq
    )
    assert entry["type"] == "OrderFill"
    assert "OrderSubmitted stored under entry type" in entry["payload"]["undecodable"]


# -- checkpoint --------------------------------------------------------------------------


def test_checkpoint_writes_a_checkpoint(runner, journal):
    before = verify_directory(journal)
    result = runner.invoke(app, ["wal", "checkpoint", "--dir", str(journal)])
    assert result.exit_code == 0, result.output
    seq = before.entries + 1
    assert f"checkpoint written at sequence {seq}" in result.output
    after = verify_directory(journal)
    assert not after.damaged
    assert after.entries == before.entries + 1
    assert after.last_checkpoint_seq == seq
    last = list(iterate_records(journal))[-1][1]
    assert last.seq == seq and last.entry_type == EntryType.Checkpoint


async def test_checkpoint_is_refused_while_a_running_engine_holds_the_journal(
    runner, engine, wal_dir
):
    assert engine.ready
    before = verify_directory(wal_dir).entries
    # In a thread: the command runs its own event loop with asyncio.run.
    result = await asyncio.to_thread(
        runner.invoke, app, ["wal", "checkpoint", "--dir", str(wal_dir)]
    )
    assert result.exit_code == 3, result.output
    assert "in use by another process" in result.output
    assert "POST /api/admin/checkpoint" in result.output
    assert verify_directory(wal_dir).entries == before


def test_checkpoint_with_invalid_settings_exits_2_naming_the_variable(runner, journal, clean_env):
    clean_env.setenv("VELOZ_WAL_SYNC", "maybe")
    result = runner.invoke(app, ["wal", "checkpoint", "--dir", str(journal)])
    assert result.exit_code == 2
    assert "VELOZ_WAL_SYNC" in result.output


# -- engine ------------------------------------------------------------------------------


def test_engine_with_an_invalid_setting_exits_2_naming_the_variable(runner, clean_env, tmp_path):
    clean_env.setenv("VELOZ_WAL_DIR", str(tmp_path / "wal"))
    clean_env.setenv("VELOZ_WAL_SYNC", "maybe")
    result = runner.invoke(app, ["engine", "--stdio"])
    assert result.exit_code == 2
    assert result.stderr.startswith("veloz: VELOZ_WAL_SYNC: ")
    assert result.stdout == ""  # stdout is reserved for events
    assert not (tmp_path / "wal").exists()


def test_engine_trading_at_binance_without_keys_exits_2_naming_them(runner, clean_env, tmp_path):
    clean_env.setenv("VELOZ_WAL_DIR", str(tmp_path / "wal"))
    clean_env.setenv("VELOZ_MARKET_SOURCE", "binance_ws")
    clean_env.setenv("VELOZ_EXECUTION_MODE", "binance_spot")
    result = runner.invoke(app, ["engine"])
    assert result.exit_code == 2
    assert "VELOZ_BINANCE_API_KEY and VELOZ_BINANCE_API_SECRET" in result.stderr
    assert not (tmp_path / "wal").exists()


def test_engine_errors_never_show_the_secret(runner, clean_env):
    secret = "veloz-cli-secret-0b7d3c"
    clean_env.setenv("VELOZ_BINANCE_API_SECRET", secret)
    clean_env.setenv("VELOZ_PORT", "not-a-port")
    result = runner.invoke(app, ["engine"])
    assert result.exit_code == 2
    assert "VELOZ_PORT" in result.stderr
    assert secret not in result.output


def test_help_lists_the_commands(runner):
    result = runner.invoke(app, ["wal", "--help"])
    assert result.exit_code == 0
    for command in ("inspect", "verify", "stats", "checkpoint"):
        assert command in result.output
