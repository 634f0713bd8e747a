"""One backtest from request to summary: every check before any bar is read, the period
cut by start/end (end exclusive), and the summary every caller gets."""

import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from veloz.backtest.data import BarDataError
from veloz.backtest.run import BacktestRequest, DataRef, parse_time, prepare
from veloz.model.errors import CommandRejected

FIXTURE = Path(__file__).parents[2] / "fixtures" / "backtest" / "golden_bars.csv"
MINUTE_NS = 60 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z, the fixture's first bar


def request(**changes: object) -> BacktestRequest:
    base = BacktestRequest(
        strategy="ema_cross",
        data=[DataRef(symbol="btcusdt", source=str(FIXTURE))],
        params={"fast": 2, "slow": 3, "qty": "1"},
        account="margin",  # type: ignore[arg-type]  # converted below, as the API decodes it
        balances={"USDT": Decimal(1000)},
    )
    return msgspec.convert({**msgspec.to_builtins(base), **changes}, BacktestRequest, strict=False)


def test_the_summary_names_strategy_params_data_and_the_statistics() -> None:
    summary = prepare(request()).run().summary
    assert summary["strategy"] == "ema_cross"
    assert summary["params"] == {"fast": 2, "slow": 3, "qty": "1"}
    assert summary["data"] == [{"symbol": "BTCUSDT", "source": str(FIXTURE), "bars": 11}]
    assert (summary["bars"], summary["fills"]) == (11, 3)
    assert Decimal(summary["final_equity"]) == Decimal("978.51")  # as the CLI golden test
    assert summary["statistics"]["start_equity"] == 1000.0


def test_start_and_end_cut_the_bars_end_exclusive() -> None:
    prepared = prepare(request(start="2024-01-01T00:02:00Z", end="2024-01-01 00:07"))
    series = prepared.bars["BTCUSDT"]
    assert series.ts_ns.tolist() == [T0 + i * MINUTE_NS for i in range(2, 7)]
    assert prepared.run().summary["bars"] == 5
    # A date alone is midnight UTC; an offset is honoured.
    assert parse_time("2024-01-01", "start") == T0
    assert parse_time("2024-01-01T01:00:00+01:00", "start") == T0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "yesterday"}, "start must be an ISO 8601 date or time"),
        ({"start": "2024-01-02", "end": "2024-01-01"}, "must be before end"),
        ({"fee_bps": "-1"}, "fee_bps must be a finite number of at least 0"),
        ({"slippage_bps": "NaN"}, "slippage_bps must be a finite number"),
        ({"balances": {}}, "balances needs at least one"),
        ({"balances": {"USDT": "-5"}}, "balance of USDT must be at least 0"),
        ({"strategy": "momentum"}, "unknown strategy 'momentum'"),
        ({"params": {"fast": 5, "slow": 3}}, "fast (5) must be shorter than slow (3)"),
    ],
)
def test_bad_requests_are_refused_before_any_bar_is_read(
    changes: dict[str, object], message: str
) -> None:
    # The data file does not exist: reaching it would be a BarDataError, not this.
    missing = [{"symbol": "BTCUSDT", "source": "/nonexistent/bars.csv"}]
    with pytest.raises(CommandRejected, match=re.escape(message)):
        prepare(request(data=missing, **changes))


def test_a_symbol_given_twice_is_refused_before_reading() -> None:
    twice = [
        {"symbol": "BTCUSDT", "source": "/nonexistent/a.csv"},
        {"symbol": "btcusdt", "source": "/nonexistent/b.csv"},
    ]
    expected = re.escape("BTCUSDT is given twice: /nonexistent/a.csv and")
    with pytest.raises(CommandRejected, match=expected):
        prepare(request(data=twice))


def test_a_period_without_bars_names_the_period_the_data_covers() -> None:
    with pytest.raises(BarDataError) as caught:
        prepare(request(start="2025-01-01"))
    assert "no bars between 2025-01-01 and the end" in str(caught.value)
    assert "2024-01-01T00:00:00Z .. 2024-01-01T00:10:00Z" in str(caught.value)


def test_a_second_symbol_is_read_and_cut_too(tmp_path: Path) -> None:
    other = tmp_path / "eth.csv"
    other.write_text(FIXTURE.read_text())
    prepared = prepare(
        request(
            data=[
                {"symbol": "BTCUSDT", "source": str(FIXTURE)},
                {"symbol": "ETHUSDT", "source": str(other)},
            ],
            end="2024-01-01T00:05:00Z",
        )
    )
    assert {s: len(b) for s, b in prepared.bars.items()} == {"BTCUSDT": 5, "ETHUSDT": 5}
    assert [d["symbol"] for d in prepared.run().summary["data"]] == ["BTCUSDT", "ETHUSDT"]


def test_the_request_refuses_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `colour`"):
        msgspec.convert(
            {"strategy": "ema_cross", "data": [{"symbol": "X", "source": "y"}], "colour": 1},
            BacktestRequest,
        )
