"""NautilusTrader's public BTC 1-minute bars, used in place from shared/ beside the
repository: required in CI, skipped with the reason on a machine without them."""

import os
from pathlib import Path

import pytest

SAMPLE = "btc-perp-20211231-20220201_1m.csv"


def sample_path() -> Path:
    """The sample in shared/ beside the repository (the work tree here, a clone in CI)."""
    repository = Path(__file__).resolve().parents[2]
    candidates = [
        repository.parent / "shared" / "data" / SAMPLE,
        Path("/work/shared/data") / SAMPLE,
    ]
    for path in candidates:
        if path.is_file():
            return path
    reason = f"the sample bars are not at {' or '.join(map(str, candidates))}"
    if os.environ.get("CI"):
        pytest.fail(f"the sample is required in CI: {reason}")
    pytest.skip(reason)
