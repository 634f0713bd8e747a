"""The runbooks find the engine by its process name: `pgrep veloz_engine`,
`top -p $(pgrep veloz_engine)`, `pkill -9 veloz_engine`."""

import contextlib
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import free_port, start_veloz, veloz_env

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_NAME is Linux's")


def _ignore_gone() -> contextlib.suppress:
    """A process pgrep listed may have exited since."""
    return contextlib.suppress(FileNotFoundError, ProcessLookupError)


def test_pgrep_finds_the_engine_by_name(tmp_path):
    assert shutil.which("pgrep"), "pgrep (Debian's procps) is missing"
    port = free_port()
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        veloz_env(tmp_path / "wal"),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until_serving(port, process)
        assert Path(f"/proc/{process.pid}/comm").read_text() == "veloz_engine\n"
        found = subprocess.run(
            ["pgrep", "-x", "veloz_engine"], capture_output=True, text=True, check=False
        )
        pids = found.stdout.split()
        assert pids.count(str(process.pid)) == 1, found
        # Another engine (another checkout's tests) may run beside ours; nothing else matches.
        for pid in pids:
            with _ignore_gone():
                assert b"engine" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"), pid
        # `top -p $(pgrep veloz_engine)` shows it.
        top = subprocess.run(
            ["top", "-b", "-n", "1", "-w", "200", "-p", str(process.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert top.returncode == 0 and "veloz_engine" in top.stdout, top.stdout + top.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
