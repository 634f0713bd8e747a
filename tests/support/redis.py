"""Redis for tests: a private `redis-server` on a free port that a test may stop, kill and
start again (never the shared one on 6379), and a Sentinel watching it.

Outside CI a missing `redis-server` skips the test; in CI (`CI=true`) it fails: the CI
machine has Redis, and a skip there would hide a broken publisher."""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.support.processes import free_port


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(reason)


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        unavailable("no redis-server on PATH")
    assert found is not None
    return found


class RedisServer:
    """`redis-server` in `directory` on its own port, without persistence unless
    `appendonly` (then every write is fsynced, so a restart keeps the stream)."""

    def __init__(self, directory: Path, *, appendonly: bool = False, password: str = "") -> None:
        self.binary = redis_binary()
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> "redis.Redis":
        return redis.Redis(port=self.port, password=self.password or None, socket_timeout=5)

    def entries(self, key: str) -> list[tuple[int, dict[str, bytes]]]:
        """The stream's entries as (sequence, fields); every id must be `<seq>-0`."""
        raw = cast(list[tuple[bytes, dict[bytes, bytes]]], self.client().xrange(key))
        found = []
        for entry_id, fields in raw:
            seq, _, sub = entry_id.decode().partition("-")
            assert sub == "0", entry_id
            found.append((int(seq), {k.decode(): v for k, v in fields.items()}))
        return found

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A process we started, not an event we can await: poll until it answers.
        give_up = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > give_up or self.process.poll() is not None:
                    raise
                time.sleep(0.01)

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        self.process.wait(10)
        self.process = None


@contextlib.contextmanager
def private_redis(
    directory: Path, *, started: bool = True, **options: object
) -> Iterator[RedisServer]:
    server = RedisServer(directory, **options)  # type: ignore[arg-type]
    try:
        if started:
            server.start()
        yield server
    finally:
        server.stop()


class Sentinel:
    """`redis-server --sentinel` watching `master` as `name` (quorum 1)."""

    def __init__(self, directory: Path, master: RedisServer, name: str = "veloz") -> None:
        self.port = free_port()
        config = directory / f"sentinel-{self.port}.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {master.port} 1\n"
        )
        self.process = subprocess.Popen(
            [master.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=5)
        give_up = time.monotonic() + 10
        while True:
            try:
                client.sentinel_get_master_addr_by_name(name)
                break
            except redis.ConnectionError:
                if time.monotonic() > give_up or self.process.poll() is not None:
                    raise
                time.sleep(0.01)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)
