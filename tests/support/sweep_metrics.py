"""One comparison of two `SweepMetrics` for the vectorised path's tests: every figure
within 1e-9 relative, and None exactly where the other side is None."""

import pytest

from veloz.backtest.vectorized import SweepMetrics


def assert_same_metrics(ours: SweepMetrics, theirs: SweepMetrics) -> None:
    for name in SweepMetrics.__struct_fields__:
        a, b = getattr(ours, name), getattr(theirs, name)
        if a is None or b is None:
            assert a is b, name
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-15), name
