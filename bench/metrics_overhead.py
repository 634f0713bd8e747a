"""What metrics cost: P1 intake and P2 HTTP order entry with metrics on and off, in the
same run (target: at most 10 % slower with them on).

- P1: the closed loop of bench.intake (256 submitters, fsync on) on an engine that times
  orders and risk decisions, and on one that does not (`record_latency`).
- P2: bench.http_order's wrk load on `POST /api/order` against `veloz engine` with
  `VELOZ_METRICS=true` and `false` (the HTTP middleware and the engine's timing).
The rest of `/metrics` is read at scrape time and costs nothing per order.
"""

import argparse
import tempfile
from pathlib import Path

import msgspec

from bench.common import Target, emit, figure, median, record, run
from bench.http_order import ORDER_LUA, service, wrk
from bench.intake import closed_loop, engine_config, isolate, the_quote, warm_up
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine

NAME = "metrics_overhead"
TARGETS = (
    Target("intake_ratio_metrics_on", ">=", 0.9),
    Target("http_ratio_metrics_on", ">=", 0.9),
)


async def intake(record_latency: bool, orders: int) -> float:
    with tempfile.TemporaryDirectory(prefix="veloz-metrics-") as directory:
        config = msgspec.structs.replace(
            engine_config(Path(directory)), record_latency=record_latency
        )
        engine = LiveEngine(config)
        await engine.start()
        try:
            engine.market.on_data(the_quote())
            client = LocalEngineClient(engine)
            await warm_up(client, 2_000, 256)
            isolate()
            result = await closed_loop(client, orders, 256)
            return result.orders / result.seconds
        finally:
            await engine.stop()


def http(metrics: bool, seconds: float, script: Path) -> float:
    env_flag = {"VELOZ_METRICS": "true" if metrics else "false"}
    with service(Path(__file__).resolve().parent.parent, **env_flag) as port:
        base = f"http://127.0.0.1:{port}"
        wrk(base + "/api/order", 1, 64, script)  # warm-up
        return wrk(base + "/api/order", seconds, 64, script)["rps"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)
    rows: dict[str, list[float]] = {
        k: [] for k in ("intake_off", "intake_on", "http_off", "http_on")
    }
    with tempfile.TemporaryDirectory() as scripts:
        script = Path(scripts) / "order.lua"
        script.write_text(ORDER_LUA)
        for _ in range(args.runs):
            rows["intake_off"].append(run(lambda: intake(False, args.orders)))
            rows["intake_on"].append(run(lambda: intake(True, args.orders)))
            rows["http_off"].append(http(False, args.seconds, script))
            rows["http_on"].append(http(True, args.seconds, script))
    ratios = {
        "intake_ratio_metrics_on": [
            on / off for on, off in zip(rows["intake_on"], rows["intake_off"], strict=True)
        ],
        "http_ratio_metrics_on": [
            on / off for on, off in zip(rows["http_on"], rows["http_off"], strict=True)
        ],
    }
    figures = {
        key: figure(median(values), "orders/s" if "intake" in key else "req/s", values)
        for key, values in rows.items()
    }
    figures |= {key: figure(median(values), "x", values) for key, values in ratios.items()}
    for key, value in figures.items():
        emit(NAME, key, value["value"], value["unit"])
    path = record(NAME, figures, targets=TARGETS, notes=__doc__ or "")
    emit(NAME, "recorded", 0, "", path=str(path))


if __name__ == "__main__":
    main()
