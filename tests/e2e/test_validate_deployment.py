"""`scripts/validate_deployment.sh`, as the deployment runbook runs it after a release:
against a running `veloz engine` every step passes and the exit is 0; against one that is
not ready the first failing step is named and the exit is 1; a target it cannot resolve
is exit 2."""

import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_service_mode import wait_until_serving
from tests.support.processes import SHIPPED_RISK_LIMITS, free_port, start_veloz, veloz_env

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_deployment.sh"

pytestmark = pytest.mark.slow


def validate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


@pytest.fixture
def engine(tmp_path: Path, request: pytest.FixtureRequest):
    port = free_port()
    extra = getattr(request, "param", {})
    process = start_veloz(
        ["engine", "--port", str(port), "--host", "127.0.0.1"],
        veloz_env(tmp_path / "wal", **extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_serving(port, process)
    yield port
    process.terminate()
    process.wait(20)


# With the shipped limits the test order must sit inside their 10 % price band.
@pytest.mark.parametrize(
    "engine",
    # A small account, so that the sim market's moves stay under the breaker's loss limit.
    [
        {},
        {
            "VELOZ_RISK_LIMITS_FILE": str(SHIPPED_RISK_LIMITS),
            "VELOZ_SIM_BALANCES": "USDT=100000,BTC=1",
        },
    ],
    ids=["open-limits", "shipped-limits"],
    indirect=True,
)
def test_every_step_passes_against_a_running_engine(engine):
    done = validate(f"http://127.0.0.1:{engine}", "--symbol", "BTCUSDT")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    steps = [line.split()[1] for line in lines if line.startswith("ok ")]
    assert steps == ["health", "ready", "startup", "metrics", "market", "order", "sse", "websocket"]
    assert "then CANCELLED" in done.stdout and lines[-1] == "all checks passed"


def test_an_environment_name_reads_its_url_and_a_failure_is_named(engine):
    maintenance = urllib.request.Request(
        f"http://127.0.0.1:{engine}/api/admin/maintenance", method="POST"
    )
    urllib.request.urlopen(maintenance, timeout=5).close()
    env = veloz_env(Path("/nonexistent"), VELOZ_STAGING_URL=f"http://127.0.0.1:{engine}")
    done = validate("staging", env=env)
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines()[-1].startswith("FAIL ready: GET /health/ready answered 503")
    assert "step 'ready'" in done.stderr


def test_a_target_it_cannot_resolve_is_exit_2():
    done = validate("nowhere", env=veloz_env(Path("/nonexistent")))
    assert done.returncode == 2 and "VELOZ_NOWHERE_URL is not set" in done.stderr
