"""P2: HTTP order entry (`POST /api/order`) against the same app's trivial JSON route.

Runs `veloz engine --port` as a subprocess, exactly as deployed (uvloop, uvicorn in the
engine's loop, `VELOZ_WAL_SYNC=true`, journal on the same disk as /work), and loads it from
separate processes on loopback:

- closed loop with `wrk` (Debian's package): `GET /health` (the trivial route) and
  `POST /api/order` with a Lua script giving every order its own client order id, same
  connections, threads and duration; the ratio orders/trivial is the target (>= 70 %);
- open loop at 2,000 orders/s with `bench.loadgen` (latency from the scheduled send time):
  p99 <= 10 ms.

Every order is durable before its answer, so the order route pays a journal sync per
batch that the trivial route does not.

Both places of the history projector are measured in the same run, interleaved:
`VELOZ_PROJECTOR=process` (the default, `veloz projector` as the engine's child: the
recorded figures and the targets) and `inline` (projector and audit writer in the engine's
process, as before: the `inline_*` figures).
"""

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import Target, emit, figure, filesystem_of, median, record
from tests.support.processes import free_port, veloz_env

NAME = "http_order"
TARGETS = (Target("ratio_order_to_trivial", ">=", 0.70), Target("paced_p99_ms", "<=", 10))
MODES = ("process", "inline")
ORDER_LUA = """
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local body = '{"side":"BUY","symbol":"BTCUSDT","qty":0.001,"price":40000,' ..
    '"client_order_id":"wrk' .. prefix .. '-' .. counter .. '"}'
  return wrk.format("POST", "/api/order", {["Content-Type"] = "application/json"}, body)
end
"""


@contextmanager
def service(journal_parent: Path, **extra_env: str) -> Iterator[int]:
    port = free_port()
    with tempfile.TemporaryDirectory(dir=journal_parent) as directory:
        env = veloz_env(
            Path(directory) / "wal",
            VELOZ_WAL_SYNC="true",
            VELOZ_SIM_BALANCES="USDT=1000000000000",
            VELOZ_MARKET_SYMBOL="BTCUSDT",
            VELOZ_SIM_TICK_INTERVAL_MS="200",
            # The engine is measured, not the API's per-address request limit.
            VELOZ_API_IP_RATE_LIMIT="1000000",
            **extra_env,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "veloz", "engine", "--port", str(port), "--host", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(port)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/startup", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the engine did not start")


def wrk(url: str, seconds: float, connections: int, script: Path | None) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output: {output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _latency(output, "50%"),
        "p99_ms": _latency(output, "99%"),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def _latency(output: str, quantile: str) -> float:
    match = re.search(rf"^\s+{re.escape(quantile)}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if match is None:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def paced(port: int, rate: float, seconds: float) -> dict[str, Any]:
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(port),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output)  # type: ignore[no-any-return]


def _measure(args: argparse.Namespace, script: Path, mode: str, into: dict[str, list[Any]]) -> None:
    # The paced phase gets a fresh engine: after the closed-loop flood the book holds tens
    # of thousands of resting orders, which is a different (noted) situation.
    with service(args.dir, VELOZ_PROJECTOR=mode) as port:
        paced(port, args.rate / 4, 1.0)  # warm-up: first-use costs are not latency
        into["paced"].append(paced(port, args.rate, args.seconds))
    with service(args.dir, VELOZ_PROJECTOR=mode) as port:
        base = f"http://127.0.0.1:{port}"
        wrk(base + "/health", 1, args.connections, None)  # warm-up
        into["trivial"].append(wrk(base + "/health", args.seconds, args.connections, None))
        into["orders"].append(wrk(base + "/api/order", args.seconds, args.connections, script))
        into["ratios"].append(into["orders"][-1]["rps"] / into["trivial"][-1]["rps"])


def _figures(measured: dict[str, list[Any]]) -> dict[str, Any]:
    trivial, orders, ratios, paced_runs = (
        measured["trivial"],
        measured["orders"],
        measured["ratios"],
        measured["paced"],
    )
    return {
        "trivial_rps": figure(
            median(r["rps"] for r in trivial), "req/s", [r["rps"] for r in trivial]
        ),
        "order_rps": figure(median(r["rps"] for r in orders), "req/s", [r["rps"] for r in orders]),
        "order_p99_ms_closed_loop": figure(median(r["p99_ms"] for r in orders), "ms"),
        "order_non_2xx": figure(sum(r["non_2xx"] for r in orders), "responses"),
        "ratio_order_to_trivial": figure(median(ratios), "x", ratios),
        "paced_rate": figure(median(p["achieved_rate"] for p in paced_runs), "req/s"),
        "paced_p50_ms": figure(median(p["p50_ms"] for p in paced_runs), "ms"),
        "paced_p99_ms": figure(
            median(p["p99_ms"] for p in paced_runs), "ms", [p["p99_ms"] for p in paced_runs]
        ),
        "paced_statuses": paced_runs[-1]["statuses"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("bench.http_order needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as scripts:
        script = Path(scripts) / "order.lua"
        script.write_text(ORDER_LUA)
        results: dict[str, dict[str, list[Any]]] = {
            mode: {"trivial": [], "orders": [], "ratios": [], "paced": []} for mode in MODES
        }
        for run in range(args.runs):
            for mode in MODES:
                measured = results[mode]
                _measure(args, script, mode, measured)
                label_prefix = "" if mode == "process" else f"{mode}_"
                for label, result in (
                    ("trivial", measured["trivial"][-1]),
                    ("order", measured["orders"][-1]),
                ):
                    for key, value in result.items():
                        emit(NAME, f"{label_prefix}{label}_{key}", value, "", run=run)
                emit(
                    NAME,
                    f"{label_prefix}paced_p99_ms",
                    measured["paced"][-1]["p99_ms"],
                    "ms",
                    run=run,
                )
    figures = _figures(results["process"])
    figures |= {f"inline_{k}": v for k, v in _figures(results["inline"]).items()}
    for name, value in figures.items():
        if isinstance(value, dict) and "value" in value:
            emit(NAME, f"median_{name}", value["value"], value["unit"])
    path = record(
        NAME,
        figures,
        notes=(
            f"wrk -t1 -c{args.connections} -d{args.seconds}s on loopback, a fresh engine per run "
            f"(journal under {args.dir}, fdatasync on); trivial route GET /health; orders are "
            f"resting LIMIT BUYs with unique client ids. Open loop: bench.loadgen at "
            f"{args.rate:g}/s over 32 keep-alive connections on a fresh engine, latency from "
            "the scheduled send. "
            "2 cores: the server and the load generator share them. Figures without a prefix: "
            "VELOZ_PROJECTOR=process (projector and audit import in `veloz projector`, the "
            "engine's child); inline_*: VELOZ_PROJECTOR=inline (both in the engine's process, "
            "as before), measured interleaved in the same run."
        ),
        targets=TARGETS,
        extra={"journal_disk": filesystem_of(args.dir)},
    )
    emit(NAME, "recorded", 0, "", path=str(path))


if __name__ == "__main__":
    main()
