"""Supervising `veloz projector` as the engine's child (VELOZ_PROJECTOR=process).

Started before the engine serves and stopped after it has stopped: the child then projects
the journal to its last durable entry and imports the audit spool before it exits. If the
child dies, it is started again after a backoff (0.5 s doubling to 30 s, back to 0.5 s
after a minute of running). If the engine dies, the kernel sends the child SIGTERM
(`--parent-pid` makes it ask for that), so it drains and exits rather than outliving it.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

logger = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0


class ProjectorSupervisor:
    def __init__(self, env_file: Path | None = None, stop_timeout_s: float = 30.0) -> None:
        self._env_file = env_file
        self._stop_timeout_s = stop_timeout_s
        self._stopping = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "veloz", "projector", "--parent-pid", str(os.getpid())]
        if self._env_file is not None:
            command += ["--env-file", str(self._env_file)]
        return command

    async def start(self) -> None:
        await self._spawn()
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name="veloz-projector-supervisor"
        )

    async def _spawn(self) -> None:
        # Its logs go to stderr; stdout may carry the engine's stdio events.
        self._process = await asyncio.create_subprocess_exec(
            *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        logger.info("projector process started (pid %d)", self._process.pid)

    async def _supervise(self) -> None:
        delay = BACKOFF_INITIAL_S
        while True:
            process = self._process
            assert process is not None
            started = time.monotonic()
            code = await process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                delay = BACKOFF_INITIAL_S
            logger.error(
                "projector process %d exited with %s; starting it again in %.1fs",
                process.pid,
                code,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            delay = min(delay * 2, BACKOFF_MAX_S)
            self.restarts += 1
            try:
                await self._spawn()
            except OSError as exc:
                logger.error("projector process could not start: %s", exc)
                self._process = None
                return

    async def stop(self) -> None:
        """SIGTERM the child and wait while it drains (SIGKILL after the timeout)."""
        self._stopping.set()
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await self._wait(process)
            if process.returncode == -signal.SIGTERM:
                # It died of the signal before it could handle it (still starting up), so
                # it did not drain: a short-lived one does, to the journal's last entry.
                self._process = await asyncio.create_subprocess_exec(
                    *self.command(),
                    "--drain",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                )
                await self._wait(self._process)
        if self._task is not None:
            await self._task

    async def _wait(self, process: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout_s)
        except TimeoutError:
            logger.error("projector process did not exit; killing it")
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def supervised_projector(
    mode: str | None, env_file: Path | None = None
) -> AsyncIterator[ProjectorSupervisor | None]:
    """The projector child around the engine's life when `mode` is "process"."""
    if mode != "process":
        yield None
        return
    supervisor = ProjectorSupervisor(env_file)
    await supervisor.start()
    try:
        yield supervisor
    finally:
        await supervisor.stop()
