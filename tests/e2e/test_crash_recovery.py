"""Crash recovery end to end: `veloz engine --stdio` takes orders from several concurrent
writers, is killed with SIGKILL at a random moment, and restarted; repeated. Afterwards
every acknowledged order must exist in a consistent state, no journal sequence may repeat,
positions must equal the sum of the fills in the journal, and the history store, written
behind across the kills, must equal a rebuild of it from the journal."""

import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import start_veloz, veloz_env
from veloz.codec import decode_event
from veloz.journal.framing import EntryType
from veloz.journal.verify import iterate_records
from veloz.model.enums import OrderSide
from veloz.model.events import OrderFilled

pytestmark = pytest.mark.slow

WRITERS = 4
ORDERS_PER_WRITER = 80
ROUNDS = 3


class Round:
    """One engine process: writers feeding stdin, a reader collecting acks, a killer."""

    def __init__(self, wal_dir: Path, round_no: int, rng: random.Random) -> None:
        self.process = start_veloz(["engine", "--stdio"], veloz_env(wal_dir))
        self.acked: set[str] = set()
        # Three lines in four are orders; kill well before the last of them is acked.
        self.kill_after = rng.randint(20, WRITERS * ORDERS_PER_WRITER * 3 // 4 - 60)
        self.killed = threading.Event()
        # The engine's child processes when it was killed (its journal's sync helper).
        self.children: list[int] = []
        self._write_lock = threading.Lock()
        self._round = round_no
        self._rng = random.Random(rng.random())

    def run(self) -> None:
        reader = threading.Thread(target=self._read)
        writers = [threading.Thread(target=self._write, args=(w,)) for w in range(WRITERS)]
        reader.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        if not self.killed.is_set():  # every line written and still alive: end it cleanly
            with self._write_lock, contextlib.suppress(BrokenPipeError):
                assert self.process.stdin is not None
                self.process.stdin.close()
        reader.join(timeout=60)
        self.process.wait(timeout=30)

    def _line_for(self, writer: int, n: int) -> str:
        coid = f"r{self._round}w{writer}n{n}"
        kind = n % 4
        if kind == 0:  # marketable: fills at once as taker
            return f"ORDER BUY BTCUSDT 0.01 60000 {coid}"
        if kind == 1:  # rests below the market, may fill as the sim market moves
            return f"ORDER BUY BTCUSDT 0.02 {49800 + n} {coid}"
        if kind == 2:  # sells into the bid
            return f"ORDER SELL ETHUSDT 0.5 2000 {coid}"
        return f"CANCEL r{self._round}w{writer}n{n - 2}"

    def _write(self, writer: int) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        for n in range(ORDERS_PER_WRITER):
            if self.killed.is_set():
                return
            line = self._line_for(writer, n) + "\n"
            try:
                with self._write_lock:
                    stdin.write(line.encode())
                    stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            if self._rng.random() < 0.3:
                self.killed.wait(0.001)

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                # SIGKILL may cut the engine's last line in half; anything else is a bug.
                assert self.killed.is_set() and not stdout.read(), raw
                return
            if event["type"] == "order_update" and event.get("event") == "OrderSubmitted":
                self.acked.add(event["client_order_id"])
                if len(self.acked) >= self.kill_after and not self.killed.is_set():
                    self.killed.set()
                    self.children = _children(self.process.pid)
                    self.process.kill()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _assert_exit(pids: list[int], message: str) -> None:
    """Each of `pids` (no longer our children: init reaps them) is gone within 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _running(pid)]
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"{message}: {alive}")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _final_state(wal_dir: Path, acked: set[str]) -> tuple[dict[str, Any], dict[str, Any], int]:
    process = start_veloz(["engine", "--stdio"], veloz_env(wal_dir))
    commands = "".join(f"QUERY {coid}\n" for coid in sorted(acked)) + "STATUS\n"
    out, err = process.communicate(commands.encode(), timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    events = [json.loads(line) for line in out.splitlines()]
    states = {e["client_order_id"]: e for e in events if e["type"] == "order_state"}
    errors = [e for e in events if e["type"] == "error"]
    assert not errors, errors[:5]
    (status,) = [e for e in events if e["type"] == "account" and "positions" in e]
    return states, status, process.returncode


def _journal_fills(wal_dir: Path) -> tuple[list[int], list[OrderFilled]]:
    seqs: list[int] = []
    fills: list[OrderFilled] = []
    for _, record in iterate_records(wal_dir):
        seqs.append(record.seq)
        if record.entry_type == EntryType.OrderFill:
            event = decode_event(record.entry_type, record.payload)
            assert isinstance(event, OrderFilled)
            fills.append(event)
    return seqs, fills


def _store_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {
            "orders": conn.execute("SELECT * FROM orders ORDER BY client_order_id").fetchall(),
            "fills": conn.execute("SELECT * FROM fills ORDER BY trade_id").fetchall(),
            "modes": conn.execute("SELECT * FROM mode_changes ORDER BY journal_seq").fetchall(),
            "high_water": conn.execute("SELECT last_seq FROM projector_state").fetchall(),
        }
    finally:
        conn.close()


def _rebuilt_rows(wal_dir: Path, db: Path) -> dict[str, list[tuple[Any, ...]]]:
    rebuilt = subprocess.run(
        [
            sys.executable,
            "-m",
            "veloz",
            "db",
            "rebuild",
            "--url",
            f"sqlite:///{db}",
            "--dir",
            str(wal_dir),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr.decode()[-2000:]
    return _store_rows(db)


def test_every_acknowledged_order_survives_kill_9(tmp_path: Path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    wal_dir = tmp_path / "wal"
    acked: set[str] = set()
    for round_no in range(ROUNDS):
        crash = Round(wal_dir, round_no, rng)
        crash.run()
        assert crash.killed.is_set(), f"seed {seed}: round {round_no} ended before the kill"
        assert crash.process.returncode == -9
        assert crash.children, "the engine had no sync helper"
        _assert_exit(crash.children, f"seed {seed}: a child outlived the killed engine")
        acked |= crash.acked

    states, status, exit_code = _final_state(wal_dir, acked)
    assert exit_code == 0, f"seed {seed}"
    missing = acked - set(states)
    assert not missing, f"seed {seed}: acknowledged orders lost: {sorted(missing)[:10]}"
    for coid, order in states.items():
        executed, qty = Decimal(str(order["executed_qty"])), Decimal(str(order["order_qty"]))
        assert 0 <= executed <= qty, f"seed {seed}: {coid} executed {executed} of {qty}"
        assert (order["status"] == "FILLED") == (executed == qty), f"seed {seed}: {order}"
        assert order["status"] not in ("PENDING_NEW", "PENDING_CANCEL"), (
            f"seed {seed}: {coid} left in flight after reconciliation"
        )

    seqs, fills = _journal_fills(wal_dir)
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs), f"seed {seed}: sequence reused"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"seed {seed}: sequence gap"
    trade_ids = [f.trade_id for f in fills]
    assert len(trade_ids) == len(set(trade_ids)), f"seed {seed}: a fill was journaled twice"
    held: dict[str, Decimal] = defaultdict(Decimal)
    for fill in fills:
        base = fill.symbol.removesuffix("USDT")
        delta = fill.qty if fill.side is OrderSide.BUY else -fill.qty
        held[fill.symbol] += delta - (fill.fee if fill.fee_asset == base else 0)
    positions = {p["symbol"]: Decimal(str(p["qty"])) for p in status["positions"]}
    assert {s: q for s, q in held.items() if q} == {s: q for s, q in positions.items() if q}, (
        f"seed {seed}"
    )

    # veloz_env puts the store beside the journal; the last clean stop projected the end.
    store = _store_rows(tmp_path / "veloz.db")
    stored_ids = {row[0] for row in store["orders"]}
    assert acked <= stored_ids, f"seed {seed}: acknowledged orders missing from the store"
    assert store == _rebuilt_rows(wal_dir, tmp_path / "rebuilt.db"), f"seed {seed}"
