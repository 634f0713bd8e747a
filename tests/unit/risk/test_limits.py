"""risk_limits.yaml: overrides, exact decimals, and errors that name the line and field."""

from decimal import Decimal
from pathlib import Path

import pytest

from veloz.risk.limits import RiskLimits, RiskLimitsError, load_limits, parse_limits

GOOD = """\
defaults:
  max_qty: 10
  price_band_pct: 2.5
max_open_orders: 100
symbols:
  BTCUSDT:
    max_position_qty: 0.3
    max_qty: 1
"""


def test_symbol_overrides_replace_only_the_fields_they_set():
    limits = parse_limits(GOOD)
    btc = limits.for_symbol("BTCUSDT")
    assert btc.max_qty == Decimal(1) and btc.max_position_qty == Decimal("0.3")
    assert btc.price_band_pct == Decimal("2.5")  # inherited, and exact (not a float)
    eth = limits.for_symbol("ETHUSDT")
    assert eth.max_qty == Decimal(10) and eth.max_position_qty is None
    assert limits.max_open_orders == 100


def test_an_empty_file_means_the_builtin_limits():
    assert parse_limits("") == RiskLimits()
    assert RiskLimits().for_symbol("X").price_band_pct == Decimal(10)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("defaults:\n  max_qty: abc\n", 2, "defaults.max_qty"),
        ("max_open_orders: 5\nsymbols:\n  BTCUSDT:\n    max_qtty: 1\n", 4, "max_qtty"),
        ("symbols:\n  ETHUSDT:\n    max_position_qty: .nan\n", 3, "max_position_qty"),
        ("defaults:\n  max_qty: -1\n", 2, "defaults.max_qty"),
        ("defaults:\n  min_qty: 5\n  max_qty: 1\n", 2, "defaults.min_qty"),
        ("max_open_orders: lots\n", 1, "max_open_orders"),
        ("defaults:\n  max_qty: [1\n", 3, "not valid YAML"),
    ],
)
def test_errors_name_the_line_and_the_field(text, line, field):
    with pytest.raises(RiskLimitsError) as raised:
        parse_limits(text)
    assert f"line {line}:" in str(raised.value) and field in str(raised.value)


def test_loading_a_file_records_its_source_and_hash(tmp_path):
    path = tmp_path / "risk_limits.yaml"
    path.write_text(GOOD)
    loaded = load_limits(path)
    assert loaded.source == str(path) and len(loaded.sha256 or "") == 64
    assert loaded.limits == parse_limits(GOOD)
    with pytest.raises(RiskLimitsError, match="cannot read"):
        load_limits(tmp_path / "missing.yaml")


def test_the_shipped_example_is_valid():
    example = Path(__file__).resolve().parents[3] / "config" / "risk_limits.yaml"
    assert load_limits(example).limits.for_symbol("BTCUSDT").max_position_qty is not None
