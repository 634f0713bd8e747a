"""`veloz engine --stdio` as a subprocess: NDJSON only on stdout, one error per bad line,
EOF drains and exits 0, and a real disk-full (RLIMIT_FSIZE) refuses orders cleanly."""

import json
import resource
import signal
from pathlib import Path
from typing import Any

from tests.support.processes import start_veloz, veloz_env

Events = list[dict[str, Any]]


def run_stdio(wal_dir: Path, lines: list[str], **popen: object) -> tuple[Events, str, int]:
    process = start_veloz(
        ["engine", "--stdio"], veloz_env(wal_dir, VELOZ_LOG_LEVEL="info"), **popen
    )
    out, err = process.communicate(("\n".join(lines) + "\n").encode(), timeout=60)
    events = [json.loads(line) for line in out.splitlines()]  # every line must be JSON
    return events, err.decode(), process.returncode


def test_bad_lines_give_one_error_each_and_the_engine_carries_on(tmp_path):
    bad = [
        "foo",
        "{not json",
        "ORDER BUY",
        "ORDER HOLD BTCUSDT 1 1 x1",
        "ORDER BUY BTCUSDT -1 50000 x2",
        "ORDER BUY BTCUSDT 0.01 50000 " + "y" * 40,
        '{"cmd": "order", "side": "BUY", "symbol": "BTCUSDT", "qty": true, "price": 1}',
        "CANCEL nobody",
        "QUERY nobody",
    ]
    events, stderr, code = run_stdio(
        tmp_path / "wal", [*bad, "ORDER BUY BTCUSDT 0.01 40000 ok-1", "STATUS"]
    )
    assert code == 0
    errors = [e for e in events if e["type"] == "error"]
    assert [e["line"] for e in errors] == bad
    assert {e["code"] for e in errors} >= {"bad_command", "bad_json", "bad_params", "not_found"}
    assert any(e["type"] == "order_update" and e["client_order_id"] == "ok-1" for e in events)
    assert all("ts_ns" in e for e in events)
    assert "engine ready" in stderr  # logs go to stderr, never stdout


def test_eof_drains_and_the_next_start_sees_every_order(tmp_path):
    wal_dir = tmp_path / "wal"
    lines = [f"ORDER BUY BTCUSDT 0.01 {40000 + i} eof-{i}" for i in range(50)]
    events, _, code = run_stdio(wal_dir, lines)
    assert code == 0
    acked = {e["client_order_id"] for e in events if e.get("event") == "OrderSubmitted"}
    assert len(acked) == 50
    events, _, code = run_stdio(wal_dir, [f"QUERY eof-{i}" for i in range(50)])
    states = [e for e in events if e["type"] == "order_state"]
    assert code == 0 and {s["client_order_id"] for s in states} == acked
    assert {s["status"] for s in states} == {"ACCEPTED"}


def _limit_file_size() -> None:
    # The journal may grow to ~12 KB; past that the kernel refuses writes with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))


def test_disk_full_refuses_orders_and_acknowledges_only_what_is_durable(tmp_path):
    wal_dir = tmp_path / "wal"
    lines = [f"ORDER BUY BTCUSDT 0.01 {40000 + i} full-{i}" for i in range(200)]
    events, _, _ = run_stdio(wal_dir, lines, preexec_fn=_limit_file_size)
    acked = {e["client_order_id"] for e in events if e.get("event") == "OrderSubmitted"}
    refused = [e for e in events if e["type"] == "error"]
    assert acked and refused, "the limit must be hit part-way"
    assert {e["code"] for e in refused} == {"journal_unavailable"}
    assert "File too large" in refused[0]["message"]
    assert len(acked) + len(refused) == 200

    events, _, code = run_stdio(wal_dir, [f"QUERY full-{i}" for i in range(200)])
    states = {e["client_order_id"]: e for e in events if e["type"] == "order_state"}
    assert code == 0 and acked <= set(states)
    for coid, state in states.items():
        if coid not in acked:  # written in the failed batch but never acknowledged nor sent
            assert state["status"] == "REJECTED" and state["reason"] == "not_at_venue"


def test_sigterm_with_stdin_open_drains_checkpoints_and_exits_0(tmp_path):
    wal_dir = tmp_path / "wal"
    process = start_veloz(["engine", "--stdio"], veloz_env(wal_dir))
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"".join(b"ORDER BUY BTCUSDT 0.01 40000 term-%d\n" % i for i in range(5)))
    process.stdin.flush()
    acked: set[str] = set()
    for raw in process.stdout:
        event = json.loads(raw)
        if event.get("event") == "OrderSubmitted":
            acked.add(event["client_order_id"])
        if len(acked) == 5:
            break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    events, _, code = run_stdio(wal_dir, [f"QUERY term-{i}" for i in range(5)])
    assert (
        code == 0 and {e["client_order_id"] for e in events if e["type"] == "order_state"} == acked
    )
