"""P2 in instructions: what `GET /health` and `POST /api/order` each cost the engine's main
thread, counted by valgrind's callgrind. The engine is `veloz engine` as deployed (journal
with fdatasync, the projector as its child, history store and audit on) except that the
app is called as an ASGI callable by a stand-in for uvicorn: no sockets, no load generator.

Why beside `bench.http_order`: on a shared two-core machine, wall-clock runs of the same
code vary by 15 % and more, which hides a change worth a few per cent; instruction counts
of the same code repeat to within 0.5 %, so one run of each side judges a change to the
order path. It does not replace P2: uvicorn and the kernel (sockets, the journal's and the
audit spool's system calls) are left out, and instructions are not time (cache misses
are not counted). `ratio` (health / order instructions) moves with P2's ratio, not to it.

Run: `apt-get install valgrind`, then `.venv/bin/python -m bench.order_instructions`
(about 3 minutes: valgrind runs the engine 50-100 times slower).
"""

import argparse
import asyncio
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, figure, record
from tests.support.asgi import http_scope
from tests.support.processes import veloz_env

NAME = "order_instructions"
ROUTES = ("health", "order")
CONCURRENCY = 64  # requests in flight, as bench.http_order's wrk connections


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1_000, help="counted, per route")
    parser.add_argument("--warmup", type=int, default=300, help="uncounted, per route")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.requests, args.warmup)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench.order_instructions needs valgrind: apt-get install valgrind")
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        per_request = _measure(Path(directory), args.requests, args.warmup)
    figures = {
        f"{route}_instructions": figure(per_request[route], "instructions/request")
        for route in ROUTES
    }
    figures["ratio_health_to_order"] = figure(per_request["health"] / per_request["order"], "x")
    for name, value in figures.items():
        emit(NAME, name, value["value"], value["unit"])
    path = record(
        NAME,
        figures,
        notes=(
            f"callgrind instruction counts of the engine's main thread over {args.requests} "
            f"requests per route after {args.warmup} uncounted, {CONCURRENCY} in flight, "
            "the app called in process (no uvicorn, no sockets); VELOZ_WAL_SYNC=true, "
            "VELOZ_PROJECTOR=process, resting LIMIT BUYs with unique client ids."
        ),
    )
    emit(NAME, "recorded", 0, "", path=str(path))


def _measure(directory: Path, requests: int, warmup: int) -> dict[str, float]:
    env = veloz_env(
        directory / "wal",
        VELOZ_WAL_SYNC="true",
        VELOZ_SIM_BALANCES="USDT=1000000000000",
        VELOZ_MARKET_SYMBOL="BTCUSDT",
        VELOZ_SIM_TICK_INTERVAL_MS="200",
        VELOZ_API_IP_RATE_LIMIT="1000000",
        VELOZ_PROJECTOR="process",
    )
    out = directory / "callgrind"
    out.mkdir()
    command = [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        f"--callgrind-out-file={out}/cg.%p",
        sys.executable,
        "-m",
        "bench.order_instructions",
        "--child",
        f"--requests={requests}",
        f"--warmup={warmup}",
    ]
    repo = Path(__file__).resolve().parent.parent
    subprocess.run(command, env=env, cwd=repo, check=True, capture_output=True)
    totals: dict[str, float] = {}
    # Thread 1 is the main thread; each dump's description names the route it counted.
    for dump in out.glob("cg.*.*-01"):
        text = dump.read_text(errors="replace")
        route = re.search(r"^desc: Trigger: dump (\w+)$", text, re.M)
        summary = re.search(r"^summary: (\d+)$", text, re.M)
        if route and summary and route.group(1) in ROUTES:
            totals[route.group(1)] = int(summary.group(1)) / requests
    missing = set(ROUTES) - set(totals)
    if missing:
        raise RuntimeError(f"no callgrind dump for {sorted(missing)} in {out}")
    return totals


# -- the child: the engine, driven in process under valgrind ---------------------------


def _child(requests: int, warmup: int) -> None:
    from veloz.cli.main import main as veloz_main  # noqa: PLC0415
    from veloz.runtime import service  # noqa: PLC0415

    service.embedded_server = lambda app, host, port: _Driver(app, requests, warmup)  # type: ignore[assignment,return-value]
    sys.argv = ["veloz", "engine", "--port", "0", "--host", "127.0.0.1"]
    veloz_main()


class _Driver:
    """Stands in for uvicorn's server (`started`, `should_exit`, `serve`): once the engine
    is ready, sends each route its requests and has callgrind count them, then stops the
    engine as SIGTERM does."""

    def __init__(self, app: Any, requests: int, warmup: int) -> None:
        self.app, self.requests, self.warmup = app, requests, warmup
        self.started = False
        self.should_exit = False
        self.config = argparse.Namespace(backlog=128)
        self._ids = itertools.count()

    async def serve(self, sockets: list[Any]) -> None:
        self.started = True
        for listening in sockets:
            listening.close()
        # Readiness is a route to ask, not an event to await.
        while await self._call("GET", "/health/ready", b"") != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for route in ROUTES:
            await self._flood(route, self.warmup)
            _callgrind("-z")
            await self._flood(route, self.requests)
            _callgrind("-d", route)
        os.kill(os.getpid(), signal.SIGTERM)
        while not self.should_exit:  # noqa: ASYNC110  (uvicorn's own flag)
            await asyncio.sleep(0.01)

    async def _flood(self, route: str, count: int) -> None:
        left = iter(range(count))
        prefix = time.time_ns() % 10**10

        async def one_connection() -> None:
            for _ in left:
                if route == "health":
                    request = self._call("GET", "/health", b"")
                else:
                    body = (
                        b'{"side":"BUY","symbol":"BTCUSDT","qty":0.001,"price":40000,'
                        b'"client_order_id":"i%d-%d"}' % (prefix, next(self._ids))
                    )
                    request = self._call("POST", "/api/order", body)
                # A task per request, as uvicorn runs them: what a request binds to its
                # log context ends with it.
                status = await asyncio.create_task(request)
                if status != 200:
                    raise RuntimeError(f"{route} answered {status}")

        await asyncio.gather(*(one_connection() for _ in range(CONCURRENCY)))

    async def _call(self, method: str, path: str, body: bytes) -> int:
        headers = [(b"user-agent", b"bench")]
        if body:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        scope = http_scope(method, path, *headers, client=("127.0.0.1", 50000))
        sent = False
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect: the answer ends the exchange
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await self.app(scope, receive, send)
        return statuses[0]


def _callgrind(*arguments: str) -> None:
    subprocess.run(
        ["callgrind_control", *arguments, str(os.getpid())], check=True, capture_output=True
    )


if __name__ == "__main__":
    main()
