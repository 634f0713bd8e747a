"""The strategy library's indicators against hand-computed values, its parameters
(defaults, bounds, every refusal naming the parameter through the registry) and its
place in the catalogue `/api/strategies/catalog` serves."""

import asyncio
import math
import random
from decimal import Decimal
from typing import Any, cast

import msgspec
import pytest

from veloz.model.errors import CommandRejected
from veloz.runtime.client import LocalEngineClient
from veloz.runtime.live import LiveEngine
from veloz.strategy.builtin.bollinger_reversion import (
    BollingerReversion,
    BollingerReversionParams,
    RollingBands,
)
from veloz.strategy.builtin.dca import Dca, DcaParams, RollingMean
from veloz.strategy.builtin.donchian_breakout import (
    DonchianBreakout,
    DonchianBreakoutParams,
    RollingExtreme,
)
from veloz.strategy.builtin.market_making import MarketMaking, MarketMakingParams
from veloz.strategy.builtin.rsi_reversion import RsiReversion, RsiReversionParams, WilderRsi
from veloz.strategy.registry import BUILTIN, parse_params, strategy_class

LIBRARY = {
    "rsi_reversion": RsiReversion,
    "bollinger_reversion": BollingerReversion,
    "donchian_breakout": DonchianBreakout,
    "market_making": MarketMaking,
    "dca": Dca,
}

# -- indicators ----------------------------------------------------------------------------


def test_wilder_rsi_by_hand() -> None:
    """Period 2: the first averages are the means of the first two changes (+2, +2), then
    avg = (avg * 1 + change) / 2. RSI = 100 - 100 / (1 + gain / loss).

        close  change  gain     loss      RS            RSI
        102    +2
        104    +2      2        0         -             100
        101    -3      1        1.5       2/3           40
         98    -3      0.5      2.25      2/9           200/11
         97    -1      0.25     1.625     2/13          40/3
        100    +3      1.625    0.8125    2             200/3
        103    +3      2.3125   0.40625   74/13         7400/87
    """
    rsi = WilderRsi(2)
    got = [rsi.update(c) for c in [100, 102, 104, 101, 98, 97, 100, 103]]
    assert got[:2] == [None, None]
    assert got[2:] == pytest.approx([100, 40, 200 / 11, 40 / 3, 200 / 3, 7400 / 87])
    assert rsi.value == pytest.approx(7400 / 87)


def test_wilder_rsi_flat_and_one_way() -> None:
    flat, up, down = WilderRsi(3), WilderRsi(3), WilderRsi(3)
    for i in range(10):
        flat.update(50.0)
        up.update(50.0 + i)
        down.update(50.0 - i)
    assert (flat.value, up.value, down.value) == (50.0, 100.0, 0.0)


def test_wilder_rsi_seed_is_a_simple_mean() -> None:
    """Period 3 on changes +3, -1, +1 (seed: gain 4/3, loss 1/3, RSI 80), then -2:
    gain (4/3 * 2 + 0) / 3 = 8/9, loss (1/3 * 2 + 2) / 3 = 8/9: RSI 50."""
    rsi = WilderRsi(3)
    got = [rsi.update(c) for c in [10, 13, 12, 13, 11]]
    assert got[:3] == [None, None, None]
    assert got[3:] == pytest.approx([80, 50])


def test_rolling_bands_by_hand() -> None:
    """Period 3, population std: [100, 100, 97] has mean 99 and deviations 1, 1, -2, so a
    variance of 6/3 = 2; [100, 97, 99]: mean 296/3, variance (16 + 25 + 1) / 27 = 14/9."""
    bands = RollingBands(3)
    got = [bands.update(c) for c in [100, 100, 100, 97, 99]]
    assert got[:2] == [None, None]
    assert got[2] == (100.0, 0.0)
    assert got[3] == pytest.approx((99, math.sqrt(2)))
    assert got[4] == pytest.approx((296 / 3, math.sqrt(14 / 9)))


def test_rolling_bands_stay_exact_over_a_long_run() -> None:
    """O(1) running sums must not drift: compared with a fresh mean and std of the window
    at BTC-like prices (the numbers differ by rounding only)."""
    rng = random.Random(7)
    values = [46_000 + rng.gauss(0, 300) for _ in range(5_000)]
    bands = RollingBands(20)
    for i, value in enumerate(values):
        got = bands.update(value)
        if i >= 19:
            window = values[i - 19 : i + 1]
            mean = sum(window) / 20
            std = math.sqrt(sum((v - mean) ** 2 for v in window) / 20)
            assert got == pytest.approx((mean, std), rel=1e-9, abs=1e-6)


def test_rolling_extremes_by_hand() -> None:
    highs, lows = RollingExtreme(3, maximum=True), RollingExtreme(2, maximum=False)
    got_high, got_low = [], []
    for value in [1.0, 3.0, 2.0, 5.0, 4.0, 1.0, 0.0, 0.0]:
        highs.push(value)
        lows.push(value)
        got_high.append(highs.value)
        got_low.append(lows.value)
    # windows of 3: [1 3 2] [3 2 5] [2 5 4] [5 4 1] [4 1 0] [1 0 0]
    assert got_high == [None, None, 3, 5, 5, 5, 4, 1]
    # windows of 2: [1 3] [3 2] [2 5] [5 4] [4 1] [1 0] [0 0]
    assert got_low == [None, 1, 2, 2, 4, 1, 0, 0]


def test_rolling_extremes_match_a_plain_scan() -> None:
    rng = random.Random(3)
    values = [rng.choice([1.0, 2.0, 3.0, rng.random()]) for _ in range(2_000)]
    for period in (1, 2, 7, 50):
        high, low = RollingExtreme(period, True), RollingExtreme(period, False)
        for i, value in enumerate(values):
            high.push(value)
            low.push(value)
            if i + 1 >= period:
                window = values[i + 1 - period : i + 1]
                assert (high.value, low.value) == (max(window), min(window))


def test_rolling_mean_by_hand() -> None:
    mean = RollingMean(3)
    got = [mean.update(c) for c in [100, 98, 94, 96, 90, 85]]
    assert got[:2] == [None, None]
    assert got[2:] == pytest.approx([292 / 3, 96, 280 / 3, 271 / 3])


@pytest.mark.parametrize("make", [WilderRsi, RollingBands, RollingMean])
def test_indicator_periods_are_checked(make: Any) -> None:
    with pytest.raises(ValueError, match="period"):
        make(0)


# -- parameters ----------------------------------------------------------------------------


def test_the_library_is_built_in() -> None:
    for name, cls in LIBRARY.items():
        assert strategy_class(name) is cls and BUILTIN[name] is cls and cls.description


def test_defaults() -> None:
    assert parse_params(RsiReversion, {}) == RsiReversionParams(
        period=14, oversold=30.0, overbought=70.0, qty=Decimal("0.001")
    )
    assert parse_params(BollingerReversion, {}) == BollingerReversionParams(
        period=20, width=2.0, exit="middle", qty=Decimal("0.001")
    )
    assert parse_params(DonchianBreakout, {}) == DonchianBreakoutParams(
        entry=20, exit=10, qty=Decimal("0.001")
    )
    assert parse_params(MarketMaking, {}) == MarketMakingParams(
        spread_bps=20.0,
        qty=Decimal("0.001"),
        max_position=Decimal("0.01"),
        skew_bps=10.0,
        refresh_bps=5.0,
        max_age_s=300,
        short=False,
    )
    assert parse_params(Dca, {}) == DcaParams(
        quote_amount=Decimal(100),
        every_bars=1_440,
        every_s=0,
        dip_pct=0.0,
        dip_ref="last_buy",
        sma_period=200,
        dip_multiplier=1.0,
    )


def test_text_values_are_typed() -> None:
    params = parse_params(Dca, {"quote_amount": "25.5", "every_bars": "0", "every_s": "3600"})
    assert params == DcaParams(quote_amount=Decimal("25.5"), every_bars=0, every_s=3_600)
    made = parse_params(MarketMaking, {"short": "true", "max_age_s": "0"})
    assert isinstance(made, MarketMakingParams) and made.short and made.max_age_s == 0


@pytest.mark.parametrize(
    ("name", "raw", "named"),
    [
        ("rsi_reversion", {"period": "1"}, "parameter period of rsi_reversion"),
        ("rsi_reversion", {"period": "1001"}, "parameter period"),
        ("rsi_reversion", {"oversold": "0"}, "parameter oversold"),
        ("rsi_reversion", {"overbought": "100"}, "parameter overbought"),
        ("rsi_reversion", {"oversold": "70", "overbought": "30"}, "oversold (70) must be below"),
        ("rsi_reversion", {"qty": "0"}, "qty must be a finite number greater than 0"),
        ("rsi_reversion", {"qty": "nan"}, "qty"),
        ("rsi_reversion", {"rsi": "14"}, "unknown parameter rsi for rsi_reversion"),
        ("bollinger_reversion", {"period": "1"}, "parameter period of bollinger_reversion"),
        ("bollinger_reversion", {"width": "0"}, "parameter width"),
        ("bollinger_reversion", {"width": "11"}, "parameter width"),
        ("bollinger_reversion", {"exit": "lower"}, "parameter exit"),
        ("bollinger_reversion", {"qty": "-1"}, "qty"),
        ("donchian_breakout", {"entry": "0"}, "parameter entry of donchian_breakout"),
        ("donchian_breakout", {"exit": "10001"}, "parameter exit"),
        ("donchian_breakout", {"qty": "x"}, "parameter qty"),
        ("market_making", {"spread_bps": "0"}, "parameter spread_bps of market_making"),
        ("market_making", {"spread_bps": "5001"}, "parameter spread_bps"),
        ("market_making", {"skew_bps": "-1"}, "parameter skew_bps"),
        ("market_making", {"refresh_bps": "-0.5"}, "parameter refresh_bps"),
        ("market_making", {"max_age_s": "86401"}, "parameter max_age_s"),
        ("market_making", {"short": "maybe"}, "parameter short"),
        ("market_making", {"max_position": "0"}, "max_position must be a finite number"),
        ("market_making", {"qty": "2", "max_position": "1"}, "qty (2) must not exceed"),
        ("dca", {"quote_amount": "0"}, "quote_amount must be a finite number"),
        ("dca", {"every_bars": "-1"}, "parameter every_bars of dca"),
        ("dca", {"every_bars": "0"}, "exactly one of every_bars (0) and every_s (0)"),
        ("dca", {"every_s": "60"}, "exactly one of every_bars (1440) and every_s (60)"),
        ("dca", {"dip_pct": "100"}, "parameter dip_pct"),
        ("dca", {"dip_ref": "ema"}, "parameter dip_ref"),
        ("dca", {"sma_period": "0"}, "parameter sma_period"),
        ("dca", {"dip_multiplier": "0"}, "parameter dip_multiplier"),
    ],
)
def test_bad_parameters_are_refused_by_name(name: str, raw: dict[str, str], named: str) -> None:
    with pytest.raises(CommandRejected) as refused:
        parse_params(strategy_class(name), raw)
    assert refused.value.code == "bad_params"
    assert named in refused.value.message


# -- the catalogue -------------------------------------------------------------------------


def test_the_catalogue_lists_the_library_with_bounds() -> None:
    """`GET /api/strategies/catalog` answers `LocalEngineClient.strategy_catalog()`, built
    from BUILTIN; it needs nothing of the engine."""
    client = LocalEngineClient(cast(LiveEngine, None))
    catalog = msgspec.to_builtins(asyncio.run(client.strategy_catalog()))
    kinds = {k["name"]: k for k in catalog["strategies"]}
    assert set(LIBRARY) | {"ema_cross", "grid"} == set(kinds)
    for name, cls in LIBRARY.items():
        assert kinds[name]["description"] == cls.description
        schema = kinds[name]["params_schema"]
        fields = schema["$defs"][cls.Params.__name__]["properties"]
        assert set(fields) == {f.name for f in msgspec.structs.fields(cls.Params)}
        assert all(field.get("description") for field in fields.values()), name
    rsi = kinds["rsi_reversion"]["params_schema"]["$defs"]["RsiReversionParams"]["properties"]
    assert (rsi["period"]["minimum"], rsi["period"]["maximum"], rsi["period"]["default"]) == (
        2,
        1_000,
        14,
    )
    assert rsi["qty"]["exclusiveMinimum"] == 0
    bollinger = kinds["bollinger_reversion"]["params_schema"]["$defs"]
    assert bollinger["BollingerReversionParams"]["properties"]["exit"]["enum"] == [
        "middle",
        "upper",
    ]
    mm = kinds["market_making"]["params_schema"]["$defs"]["MarketMakingParams"]["properties"]
    assert mm["max_position"]["exclusiveMinimum"] == 0 and mm["short"]["type"] == "boolean"
