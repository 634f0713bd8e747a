"""Average-cost positions, hand-computed: fees in quote and in base, partial closes, flips."""

from decimal import Decimal

from tests.unit.portfolio.portfolio_builders import BTCUSDT, fill_event
from veloz.model.enums import OrderSide
from veloz.portfolio.positions import Position, fill_flows

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL


def trade(position: Position, *fills: tuple[OrderSide, str, str, str, str]) -> Position:
    for side, qty, price, fee, fee_asset in fills:
        position.apply_fill(BTCUSDT, fill_event(side, qty, price, fee, fee_asset))
    return position


def test_flows_net_of_fee_in_either_asset() -> None:
    assert fill_flows(BTCUSDT, fill_event(BUY, "2", "100", "0.2", "USDT")) == (D(2), D("-200.2"))
    assert fill_flows(BTCUSDT, fill_event(BUY, "1", "100", "0.001", "BTC")) == (
        D("0.999"),
        D(-100),
    )
    assert fill_flows(BTCUSDT, fill_event(SELL, "1", "100", "0.1", "USDT")) == (D(-1), D("99.9"))
    # A third-asset fee is paid from that asset's balance, not from this symbol's flows.
    assert fill_flows(BTCUSDT, fill_event(SELL, "1", "100", "0.05", "BNB")) == (D(-1), D(100))


def test_flat_position_has_no_average_price() -> None:
    position = Position(symbol="BTCUSDT")
    assert position.avg_price is None
    assert position.unrealized_pnl(D(100)) == 0
    assert position.notional(D(100)) == 0


def test_buy_then_sell_at_a_profit_with_quote_fees() -> None:
    position = trade(Position(symbol="BTCUSDT"), (BUY, "2", "100", "0.2", "USDT"))
    assert (position.qty, position.cost, position.avg_price) == (D(2), D("200.2"), D("100.1"))
    assert position.unrealized_pnl(D(110)) == D("19.8")
    assert position.notional(D(110)) == D(220)

    trade(position, (SELL, "2", "110", "0.22", "USDT"))
    # 20 gross, minus 0.2 + 0.22 in fees.
    assert position.realized_pnl == D("19.58")
    assert position.fees == D("0.42")
    assert (position.qty, position.cost, position.avg_price) == (D(0), D(0), None)


def test_fee_in_base_on_a_buy() -> None:
    position = trade(Position(symbol="BTCUSDT"), (BUY, "1", "50000", "0.001", "BTC"))
    # We hold what we received; the basis is the whole quote we paid.
    assert position.qty == D("0.999")
    assert position.cost == D(50000)
    assert position.avg_price == D(50000) / D("0.999")
    assert position.fees == D(50)
    assert position.unrealized_pnl(D(50000)) == D(-50)


def test_fee_in_base_on_a_sell_closes_the_fee_too() -> None:
    position = trade(
        Position(symbol="BTCUSDT"),
        (BUY, "2", "100", "0", "USDT"),
        (SELL, "1", "110", "0.001", "BTC"),
    )
    # 1.001 BTC left the position for 110 USDT; its basis was 100.1.
    assert position.realized_pnl == D("9.9")
    assert (position.qty, position.cost) == (D("0.999"), D("99.9"))
    assert position.fees == D("0.11")


def test_partial_closes_keep_the_average_price() -> None:
    position = trade(Position(symbol="BTCUSDT"), (BUY, "4", "10", "0", "USDT"))
    trade(position, (SELL, "1", "13", "0", "USDT"))
    assert (position.qty, position.cost, position.realized_pnl) == (D(3), D(30), D(3))
    trade(position, (SELL, "2", "7", "0", "USDT"))
    assert (position.qty, position.cost, position.realized_pnl) == (D(1), D(10), D(-3))
    assert position.avg_price == D(10)
    trade(position, (SELL, "1", "12", "0.1", "USDT"))
    assert (position.qty, position.cost, position.realized_pnl) == (D(0), D(0), D("-1.1"))


def test_inexact_average_is_settled_exactly_by_the_full_close() -> None:
    position = trade(Position(symbol="BTCUSDT"), (BUY, "3", "10", "1", "USDT"))
    trade(position, (SELL, "1", "12", "0", "USDT"))
    # 31/3 does not divide evenly: realised and cost carry the rounding between them ...
    assert position.realized_pnl == D(12) - D(31) / D(3)
    assert position.realized_pnl - position.cost == D(12) - D(31)
    trade(position, (SELL, "2", "12", "0", "USDT"))
    # ... and the full close books exactly what the cash says: 36 in, 31 out.
    assert (position.qty, position.cost, position.realized_pnl) == (D(0), D(0), D(5))


def test_adding_to_a_long_averages_in() -> None:
    position = trade(
        Position(symbol="BTCUSDT"),
        (BUY, "1", "100", "0", "USDT"),
        (BUY, "3", "120", "0", "USDT"),
    )
    assert (position.qty, position.cost, position.avg_price) == (D(4), D(460), D(115))
    assert position.realized_pnl == 0


def test_flip_long_to_short_and_back_to_flat() -> None:
    position = trade(Position(symbol="BTCUSDT"), (BUY, "2", "100", "0", "USDT"))
    trade(position, (SELL, "5", "110", "0.55", "USDT"))
    # The 549.45 net proceeds split 2:3 between the close and the new short.
    assert position.realized_pnl == D("19.78")
    assert (position.qty, position.cost, position.avg_price) == (D(-3), D("-329.67"), D("109.89"))
    assert position.unrealized_pnl(D(100)) == D("29.67")
    assert position.notional(D(100)) == D(-300)

    trade(position, (BUY, "3", "100", "0", "USDT"))
    assert position.realized_pnl == D("49.45")  # -200 + 549.45 - 300
    assert (position.qty, position.cost) == (D(0), D(0))


def test_short_profits_when_price_falls_and_flips_long() -> None:
    position = trade(Position(symbol="BTCUSDT"), (SELL, "2", "100", "0", "USDT"))
    assert (position.qty, position.cost, position.avg_price) == (D(-2), D(-200), D(100))
    trade(position, (BUY, "1", "80", "0", "USDT"))
    assert (position.qty, position.cost, position.realized_pnl) == (D(-1), D(-100), D(20))
    trade(position, (BUY, "3", "90", "0", "USDT"))
    assert position.realized_pnl == D(30)
    assert (position.qty, position.cost, position.avg_price) == (D(2), D(180), D(90))


def test_fill_eaten_by_its_base_fee_is_realised() -> None:
    position = trade(Position(symbol="BTCUSDT"), (BUY, "1", "100", "1", "BTC"))
    assert (position.qty, position.cost) == (D(0), D(0))
    assert position.realized_pnl == D(-100)
    assert position.fees == D(100)
