"""VELOZ_MEMORY_POOL_SIZE from the outside: an engine started with a small pool takes
many orders and shows in /metrics that its buffers stay within the limit (the replay
ring and the retained final orders shrink to their shares, the oldest leaving first); a
value that is not a whole number of bytes of at least 1 MiB refuses the start with one
`veloz:` line naming the variable, exit 2."""

import asyncio
import re
import signal
import subprocess
import sys

import httpx
import pytest

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import free_port, start_veloz, veloz_env

pytestmark = pytest.mark.slow

POOL = 1 << 20  # the smallest allowed
SAMPLE = re.compile(r"^(veloz_memory_pool\w*)\{([^}]*)\} (\S+)$", re.MULTILINE)


def pool_figures(metrics: str) -> dict[tuple[str, str], float]:
    """{(metric, labels): value} for the memory pool's series."""
    return {(m.group(1), m.group(2)): float(m.group(3)) for m in SAMPLE.finditer(metrics)}


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "1048575", "1GB"])
def test_a_bad_pool_size_refuses_the_start_with_one_line(tmp_path, value):
    env = veloz_env(tmp_path / "wal", VELOZ_MEMORY_POOL_SIZE=value)
    done = subprocess.run(
        [sys.executable, "-m", "veloz", "engine", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("veloz: VELOZ_MEMORY_POOL_SIZE: "), line
    assert not (tmp_path / "wal").exists()  # refused before anything was touched


async def test_a_small_pool_bounds_the_buffers_and_metrics_show_it(tmp_path):
    env = veloz_env(tmp_path / "wal", VELOZ_MEMORY_POOL_SIZE=str(POOL))
    port = free_port()
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(port, process)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            before = pool_figures((await api.get("/metrics")).text)
            assert before[("veloz_memory_pool_bytes", 'kind="limit"')] == POOL

            async def place(n: int) -> None:
                order = {"side": "BUY", "symbol": "BTCUSDT", "qty": "0.01", "price": 30000 + n}
                answer = await api.post("/api/order", json=order | {"client_order_id": f"m-{n}"})
                assert answer.status_code == 200, answer.text

            for batch in range(10):
                await asyncio.gather(*(place(batch * 100 + n) for n in range(100)))
            cancelled = await api.post("/api/cancel_all", json={})
            assert cancelled.status_code == 200, cancelled.text

            async def still_open() -> int:
                return int(
                    (await api.get("/api/orders_state", params={"status": "open"})).json()["count"]
                )

            # From outside there is no event to await: ask until every cancel is answered.
            while await still_open():  # noqa: ASYNC110
                await asyncio.sleep(0.05)

            figures = pool_figures((await api.get("/metrics")).text)
            events = (await api.get("/api/orders", params={"limit": 10_000})).json()["items"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0

    def buffer(name: str, kind: str) -> float:
        return figures[("veloz_memory_pool_buffer_bytes", f'buffer="{name}",kind="{kind}"')]

    used = figures[("veloz_memory_pool_bytes", 'kind="used"')]
    assert 0 < used <= POOL
    for name in ("replay", "orders"):
        assert 0 < buffer(name, "used") <= buffer(name, "share") * 1.1, name
    # 1,000 orders made 3,000 order events and 1,000 final orders; a fraction stayed,
    # the newest.
    assert 0 < len(events) < 1_000
    assert events[0]["client_order_id"].startswith("m-")
