"""`veloz engine` with VELOZ_REDIS_URL: orders placed over HTTP are in the Redis stream,
with their journal sequences as ids, published by the projector child (not the engine's
process), the Redis password shown nowhere; `/health/ready` and `/metrics` report the
publisher."""

import json
import signal
import subprocess
from pathlib import Path

from tests.e2e.test_history_store import metric, place
from tests.e2e.test_runbooks import call
from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import eventually, free_port, start_veloz, veloz_env
from tests.support.redis import private_redis

PASSWORD = "e2e-r3dis-secret"


def test_orders_placed_over_http_are_in_the_stream(tmp_path):
    with private_redis(tmp_path / "redis", password=PASSWORD) as server:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = veloz_env(
            tmp_path / "wal",
            VELOZ_REDIS_URL=server.url,
            VELOZ_REDIS_STREAM="e2e:events",
            VELOZ_LOG_LEVEL="info",
        )
        log = tmp_path / "engine.log"
        with log.open("wb") as output:
            process = start_veloz(
                ["engine", "--port", str(port), "--host", "127.0.0.1"],
                env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_until_serving(port, process)
                for n in range(10):
                    place(base, f"http-{n}")
                eventually(lambda: metric(base, "veloz_redis_lag_entries") == 0, 10, "published")
                assert metric(base, "veloz_redis_connected") == 1
                assert metric(base, "veloz_redis_published_events_total") > 10

                stream = server.entries("e2e:events")  # checks every id is <seq>-0
                updates = [
                    json.loads(fields["order_update"])
                    for _, fields in stream
                    if "order_update" in fields
                ]
                placed = {u["client_order_id"] for u in updates}
                assert placed == {f"http-{n}" for n in range(10)}
                for seq, fields in stream:
                    assert fields["seq"] == str(seq).encode()

                # The publisher runs in the projector child, not in the engine's process.
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
                projector = int(children.read_text().split()[0])
                names = [c["name"] for c in server.client().client_list()]
                assert f"veloz-publisher-{projector}" in names, names
                assert f"veloz-publisher-{process.pid}" not in names

                status, body = call(base, "/health/ready")
                cache = json.loads(body)["components"]["cache"]
                assert (status, cache["status"], cache["ok"]) == (200, "ok", True)
                assert PASSWORD not in body.decode()
                config = call(base, "/api/config")[1].decode()
                assert "redis://:***@127.0.0.1" in config
                assert PASSWORD not in config
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=20) == 0
        assert PASSWORD not in log.read_text()
        assert "e2e:events" in log.read_text()  # the start says where it publishes
