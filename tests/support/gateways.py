"""One engine and gateway replicas as real `veloz` processes on loopback, over a private
Redis; SSE readers in threads; a load of orders placed through the gateways."""

import contextlib
import itertools
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import eventually, free_port, start_veloz, veloz_env
from tests.support.redis import RedisServer


def get(base: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(base + path, headers=headers or {}, timeout=10)


def post(
    base: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(base + path, json=body, headers=headers or {}, timeout=10)


def order_body(coid: str) -> dict[str, Any]:
    # Far below the sim market (~50,000): it rests, and the open limits allow it.
    return {
        "side": "BUY",
        "symbol": "BTCUSDT",
        "qty": 0.01,
        "price": 30000,
        "client_order_id": coid,
    }


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log_path = args, env, log
        self.port = int(args[args.index("--port") + 1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str = "/health/ready") -> None:
        with self.log_path.open("ab") as log:
            self.process = start_veloz(
                self.args, self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        eventually(self._answers(ready_path), 60, f"{self.args[0]} on {self.port} is ready")

    def _answers(self, path: str) -> Any:
        def check() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                f"{self.args[0]} exited: {self.log_path.read_text()[-2000:]}"
            )
            try:
                return get(self.base, path).status_code == 200
            except httpx.HTTPError:
                return False

        return check

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        self.process = None


@dataclass
class Cluster:
    tmp_path: Path
    redis: RedisServer
    engine: Process
    gateways: list[Process] = field(default_factory=list)

    @property
    def bases(self) -> list[str]:
        return [g.base for g in self.gateways]


@contextlib.contextmanager
def cluster(
    tmp_path: Path,
    redis: RedisServer,
    *,
    gateways: int = 3,
    engine_env: dict[str, str] | None = None,
    gateway_env: dict[str, str] | None = None,
    before_gateways: Any = None,
) -> Iterator[Cluster]:
    """An engine publishing to `redis` and trusting loopback as its gateways' address,
    then `gateways` replicas (after `before_gateways(engine)` if given, which may answer
    extra gateway settings)."""
    env = veloz_env(
        tmp_path / "wal",
        VELOZ_REDIS_URL=redis.url,
        VELOZ_TRUSTED_PROXIES="127.0.0.1",
        VELOZ_LOG_LEVEL="info",
        **(engine_env or {}),
    )
    engine = Process(
        ["engine", "--port", str(free_port()), "--host", "127.0.0.1"], env, tmp_path / "engine.log"
    )
    made = Cluster(tmp_path, redis, engine)
    try:
        engine.start()
        extra = dict(gateway_env or {})
        if before_gateways is not None:
            extra.update(before_gateways(engine))
        for n in range(gateways):
            gateway_settings = env | {"VELOZ_ENGINE_URL": engine.base} | extra
            gateway_settings["VELOZ_GATEWAY_NAME"] = f"gw-{n}"
            # Each its own audit spool (one gateway per directory).
            gateway_settings["VELOZ_GATEWAY_AUDIT_DIR"] = str(tmp_path / f"gateway-{n}-audit")
            replica = Process(
                ["gateway", "--port", str(free_port()), "--host", "127.0.0.1"],
                gateway_settings,
                tmp_path / f"gateway-{n}.log",
            )
            made.gateways.append(replica)
            replica.start()
        yield made
    finally:
        for replica in made.gateways:
            replica.stop()
        engine.stop()


class SseReader:
    """`GET /api/stream` in a thread: every frame as (id, event, data), resumable on
    another base with the last id seen."""

    def __init__(self, base: str, types: str, headers: dict[str, str] | None = None) -> None:
        self.types = types
        self.headers = headers or {}
        self.frames: list[tuple[int | None, str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.error: BaseException | None = None
        self._client: httpx.Client | None = None
        self.follow(base)

    @property
    def last_id(self) -> int | None:
        ids = [i for i, _, _ in self.frames if i is not None]
        return ids[-1] if ids else None

    def follow(self, base: str) -> None:
        """Read from `base`, resuming after the last id seen (if any)."""
        self.close()
        self.base = base
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.error = None  # the old connection's end (its gateway killed) is not news
        headers = dict(self.headers)
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        self._thread = threading.Thread(target=self._read, args=(base, headers), daemon=True)
        self._thread.start()
        assert self.connected.wait(30) and self.error is None, (
            f"no stream from {base}: {self.error}"
        )

    def _read(self, base: str, headers: dict[str, str]) -> None:
        # No read timeout: a quiet stream (an engine restarting) is not a broken one;
        # `close` ends the read by closing the connection under it.
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with httpx.Client(timeout=timeout) as client:
                self._client = client
                url = f"{base}/api/stream?types={self.types}"
                with client.stream("GET", url, headers=headers) as response:
                    assert response.status_code == 200, response.read()
                    self.connected.set()
                    frame: dict[str, str] = {}
                    for line in response.iter_lines():
                        if line == "":
                            if "event" in frame:
                                seq = int(frame["id"]) if "id" in frame else None
                                data = json.loads(frame["data"])
                                self.frames.append((seq, frame["event"], data))
                            frame = {}
                        elif not line.startswith(":"):
                            name, _, value = line.partition(":")
                            frame[name] = value.removeprefix(" ")
        except httpx.HTTPError as exc:
            if not self._stop.is_set():
                self.error = exc
        except BaseException as exc:
            self.error = exc
        finally:
            self.connected.set()

    def resume_if_ended(self) -> None:
        """What a browser's EventSource does when the server ends a stream (a client
        that fell a mailbox behind is detached, `api/stream_hub.py`): connect again with
        the last id seen, to be served the rest from the replay ring."""
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            self.follow(self.base)

    def close(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._client = None

    def order_updates(self) -> list[tuple[int, str, str]]:
        """(id, client order id, event) of every order_update read, in order."""
        return [
            (seq, data["client_order_id"], data["event"])
            for seq, kind, data in self.frames
            if kind == "order_update" and seq is not None
        ]


class Load:
    """Orders placed round-robin through `bases` from a thread until stopped: which were
    acknowledged (200) and which failed."""

    def __init__(self, bases: list[str], prefix: str, headers: dict[str, str] | None = None):
        self.bases = bases
        self.prefix = prefix
        self.headers = headers or {}
        self.acknowledged: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            coid = f"{self.prefix}-{n}"
            base = self.bases[n % len(self.bases)]
            try:
                answer = post(base, "/api/order", order_body(coid), self.headers)
            except httpx.HTTPError as exc:
                self.failed.append((coid, str(exc)))
            else:
                if answer.status_code == 200:
                    self.acknowledged.append(coid)
                else:
                    self.failed.append((coid, answer.text))
            time.sleep(0.01)

    def wait_for(self, count: int, within_s: float = 30) -> None:
        eventually(lambda: len(self.acknowledged) >= count, within_s, f"{count} orders placed")
