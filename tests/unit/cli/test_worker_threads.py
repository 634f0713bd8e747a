"""VELOZ_WORKER_THREADS: the engine's blocking work shares a pool of exactly that many
threads, and a value that is not a positive count stops the start naming the variable."""

import asyncio
import os
import threading
import time

import pytest

from veloz.cli.main import _run
from veloz.config import SettingsError, load_settings


async def _most_threads_at_once(tasks: int) -> int:
    running, most, lock = 0, 0, threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    await asyncio.gather(*(asyncio.to_thread(work) for _ in range(tasks)))
    return most


def test_blocking_work_runs_on_exactly_the_configured_threads():
    assert _run(_most_threads_at_once(8), worker_threads=3) == 3
    assert _run(_most_threads_at_once(8), worker_threads=1) == 1


@pytest.mark.parametrize("value", ["abc", "0", "-2", "257"])
def test_a_bad_worker_thread_count_is_refused_naming_the_variable(monkeypatch, value):
    for name in list(os.environ):
        if name.startswith("VELOZ_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VELOZ_WORKER_THREADS", value)
    with pytest.raises(SettingsError, match=r"^VELOZ_WORKER_THREADS: "):
        load_settings()
