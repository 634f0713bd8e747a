"""An open-loop HTTP load generator, run in its own process by bench.http_order.

`--rate` orders per second are spread over `--connections` keep-alive connections, each
request sent at its scheduled time. Latency is measured from the scheduled time, not the
actual send, so a slow server cannot hide its queueing by delaying the next request
(coordinated omission). Prints one JSON object: achieved rate, latency percentiles, status
counts.
"""

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import uvloop

from bench.common import percentile


@dataclass(frozen=True)
class Schedule:
    """Each of `connections` sends every `interval` seconds from `start` to `until`."""

    start: float
    until: float
    interval: float
    connections: int


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


def order_request(number: int, tag: str = "lg", price: int = 40000) -> bytes:
    """`POST /api/order` of a limit BUY with its own client order id, `<tag>-<number>`."""
    body = (
        f'{{"side":"BUY","symbol":"BTCUSDT","qty":0.001,"price":{price},'
        f'"client_order_id":"{tag}-{number}"}}'
    ).encode()
    head = (
        "POST /api/order HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def connection(host: str, port: int, index: int, schedule: Schedule, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    numbers = count(index, schedule.connections)
    scheduled = schedule.start + index * schedule.interval / schedule.connections
    while scheduled < schedule.until:
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        writer.write(order_request(next(numbers)))
        status = await read_status(reader)
        tally.latencies.append(time.perf_counter() - scheduled)
        tally.statuses[status] += 1
        scheduled += schedule.interval
    writer.close()


async def generate(
    host: str, port: int, rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    start = time.perf_counter() + 0.1
    schedule = Schedule(start, start + seconds, connections / rate, connections)
    tally = Tally()
    await asyncio.gather(*(connection(host, port, n, schedule, tally) for n in range(connections)))
    elapsed = time.perf_counter() - start
    latencies = sorted(tally.latencies)
    return {
        "requests": len(latencies),
        "achieved_rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": latencies[-1] * 1000 if latencies else None,
        "statuses": {str(code): n for code, n in tally.statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(
            generate(args.host, args.port, args.rate, args.seconds, args.connections)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
