"""SimExchange on its own: synchronous, on a simulated clock, no event loop. Requests are
handled at clock time, reports wait in the outbox in order, ids follow the clock and the
seed, and no sequence of requests and quotes can overdraw or strand the account."""

from collections.abc import Callable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.clock import SimulatedClock
from veloz.execution.venue import VenueOrder
from veloz.execution.venues.sim_config import SimVenueConfig
from veloz.execution.venues.sim_exchange import SimExchange
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.model.events import OrderAccepted, OrderFilled, OrderReport
from veloz.model.instruments import default_instrument
from veloz.model.market import QuoteTick

BUY, SELL = OrderSide.BUY, OrderSide.SELL
D = Decimal
SYMBOL = "BTCUSDT"
START_NS = 1_700_000_000_000_000_000


class Market:
    """The quotes an exchange reads, and the exchange, on one simulated clock."""

    def __init__(
        self, *, seed: int = 7, start_ns: int = START_NS, config: SimVenueConfig | None = None
    ) -> None:
        self.clock = SimulatedClock(start_ns)
        self.quotes: dict[str, QuoteTick] = {}
        self.exchange = SimExchange(
            config or SimVenueConfig(starting_balances={"USDT": D("100000"), "BTC": D("10")}),
            self.clock,
            {SYMBOL: default_instrument(SYMBOL, D("50000"))},
            self.quotes.get,
            id_seed=seed,
        )

    def quote(self, bid: str, ask: str, size: str = "1") -> None:
        tick = QuoteTick(
            symbol=SYMBOL,
            bid=D(bid),
            ask=D(ask),
            bid_size=D(size),
            ask_size=D(size),
            ts_ns=self.clock.time_ns(),
        )
        self.quotes[SYMBOL] = tick
        self.exchange.on_quote(tick)


def order(
    client_order_id: str,
    side: OrderSide,
    qty: str,
    price: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
) -> VenueOrder:
    return VenueOrder(
        client_order_id=client_order_id,
        symbol=SYMBOL,
        side=side,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        time_in_force=tif,
        qty=D(qty),
        price=None if price is None else D(price),
    )


def session(market: Market) -> list[OrderReport]:
    """A morning of trading: resting orders, takers, a partial fill, cancels, rejects."""
    exchange, clock = market.exchange, market.clock
    market.quote("49990", "50000", size="0.5")
    exchange.submit(order("a", BUY, "1", "49900"))
    clock.advance(1_000_000)
    exchange.submit(order("b", BUY, "0.8", "50000"))
    exchange.submit(order("c", SELL, "0.2"))
    exchange.submit(order("d", SELL, "0.1", "51000", TimeInForce.FOK))
    clock.advance(250_000_000)
    market.quote("49850", "49890", size="2")
    exchange.cancel("a", SYMBOL)
    exchange.cancel("zz", SYMBOL)
    exchange.submit(order("e", BUY, "1000", "49000"))
    clock.advance(3_000)
    exchange.cancel("b", SYMBOL)
    return exchange.drain()


# -- handled now, reported in order --------------------------------------------------


def test_requests_are_handled_at_clock_time_and_wait_in_the_outbox():
    market = Market()
    market.quote("49990", "50000")
    market.clock.advance(5)
    market.exchange.submit(order("a", BUY, "0.1"))

    assert market.exchange.pending_reports == 2
    accepted, filled = market.exchange.drain()
    assert isinstance(accepted, OrderAccepted)
    assert isinstance(filled, OrderFilled)
    assert accepted.ts_ns == filled.ts_ns == START_NS + 5
    assert market.exchange.pending_reports == 0
    assert market.exchange.drain() == []


def test_drain_hands_over_reports_made_since_the_last_one():
    market = Market()
    market.quote("49990", "50000")
    market.exchange.submit(order("a", BUY, "0.1", "49000"))
    first = market.exchange.drain()
    market.exchange.cancel("a", SYMBOL)
    second = market.exchange.drain()

    assert [type(r).__name__ for r in first] == ["OrderAccepted"]
    assert [type(r).__name__ for r in second] == ["OrderCancelled"]


def test_has_resting_says_whether_a_quote_could_trade_anything():
    market = Market()
    market.quote("49990", "50000")
    assert not market.exchange.has_resting(SYMBOL)
    market.exchange.submit(order("a", BUY, "0.1", "49000"))
    assert market.exchange.has_resting(SYMBOL)
    market.quote("48990", "49000")
    assert not market.exchange.has_resting(SYMBOL)
    state = market.exchange.query("a", SYMBOL)
    assert state is not None
    assert state.status is OrderStatus.FILLED


def test_the_account_is_the_starting_balances_until_restored():
    market = Market()
    assert market.exchange.balances() == {"BTC": D("10"), "USDT": D("100000")}
    market.exchange.restore([], [])
    assert market.exchange.balances() == {}


# -- ids ---------------------------------------------------------------------------------


def test_the_same_clock_and_seed_give_the_same_reports_and_ids():
    first, second = session(Market(seed=7)), session(Market(seed=7))

    assert first == second
    assert len(first) > 10
    ids = [r.venue_order_id for r in first if isinstance(r, OrderAccepted)]
    ids += [r.trade_id for r in first if isinstance(r, OrderFilled)]
    assert len(set(ids)) == len(ids)


def test_a_different_seed_or_start_gives_different_ids():
    def venue_ids(market: Market) -> list[str]:
        return [r.venue_order_id for r in session(market) if isinstance(r, OrderAccepted)]

    base = venue_ids(Market(seed=7))
    other_seed = venue_ids(Market(seed=8))
    other_start = venue_ids(Market(start_ns=START_NS + 1))
    assert all(a != b for a, b in zip(base, other_seed, strict=True))
    assert all(a != b for a, b in zip(base, other_start, strict=True))


# -- the account under any sequence of requests ------------------------------------------

PRICES = st.integers(9_800, 10_200).map(lambda cents: D(cents) / 100)  # 98.00 .. 102.00
LOTS = st.integers(1, 80).map(lambda n: D(n) / 10)

QUOTES = st.tuples(st.just("quote"), PRICES, st.integers(1, 50), LOTS, LOTS)
SUBMITS = st.tuples(
    st.just("submit"),
    st.sampled_from(OrderSide),
    st.sampled_from(OrderType),
    st.sampled_from(TimeInForce),
    LOTS,
    PRICES,
)
CANCELS = st.tuples(st.just("cancel"), st.integers(0, 40))
CONFIGS = st.builds(
    SimVenueConfig,
    maker_fee_bps=st.sampled_from([D(0), D(2), D("7.5"), D(25)]),
    taker_fee_bps=st.sampled_from([D(0), D("7.5"), D(10), D(40)]),
    slippage_bps=st.sampled_from([D(0), D(5), D(30)]),
    fee_asset=st.sampled_from(["received", "quote"]),
    starting_balances=st.just({"USDT": D("1500"), "BTC": D("8")}),
)


@settings(max_examples=200, deadline=None)
@given(
    config=CONFIGS,
    first=QUOTES,
    steps=st.lists(st.one_of(QUOTES, SUBMITS, CANCELS), min_size=10, max_size=80),
)
def test_no_sequence_overdraws_the_account_or_leaves_funds_locked(config, first, steps):
    market = Market(config=config)
    exchange = market.exchange
    submitted: list[str] = []

    def check(invariant: Callable[[Decimal, Decimal], bool]) -> None:
        for balance in exchange.balance_snapshot():
            assert invariant(balance.free, balance.locked), balance

    for n, step in enumerate([first, *steps]):
        market.clock.advance(1_000)
        if step[0] == "quote":
            _, bid, spread_cents, bid_size, ask_size = step
            tick = QuoteTick(
                symbol=SYMBOL,
                bid=bid,
                ask=bid + D(spread_cents) / 100,
                bid_size=bid_size,
                ask_size=ask_size,
                ts_ns=market.clock.time_ns(),
            )
            market.quotes[SYMBOL] = tick
            exchange.on_quote(tick)
        elif step[0] == "submit":
            _, side, order_type, tif, qty, price = step
            client_order_id = f"o-{n}"
            submitted.append(client_order_id)
            exchange.submit(
                VenueOrder(
                    client_order_id=client_order_id,
                    symbol=SYMBOL,
                    side=side,
                    order_type=order_type,
                    time_in_force=tif,
                    qty=qty,
                    price=price,
                )
            )
        elif submitted:
            exchange.cancel(submitted[step[1] % len(submitted)], SYMBOL)
        exchange.drain()
        check(lambda free, locked: free >= 0 and locked >= 0)

    for client_order_id in submitted:
        state = exchange.query(client_order_id, SYMBOL)
        if state is not None and not state.status.is_final:
            exchange.cancel(client_order_id, SYMBOL)
    exchange.drain()
    assert not exchange.has_resting(SYMBOL)
    check(lambda free, locked: free >= 0 and locked == 0)


def test_a_quote_fee_rounded_up_never_overdraws_the_account():
    # 0.00007 x 50000.1 x 7.5 bps = 0.00262500525, charged as 0.00262501: the reserve for
    # it is rounded up to the same 8 places, so an account holding only the unrounded fee
    # is refused, and one holding the charged fee ends at exactly zero.
    qty, price, bps = D("0.00007"), D("50000.1"), D("7.5")
    notional = qty * price
    for funds, outcome, left in (
        (notional * (1 + bps / 10_000), ["OrderRejected"], None),
        (notional + D("0.00262501"), ["OrderAccepted", "OrderFilled"], D(0)),
    ):
        config = SimVenueConfig(
            fee_asset="quote",
            maker_fee_bps=bps,
            taker_fee_bps=bps,
            starting_balances={"USDT": funds},
        )
        market = Market(config=config)
        market.quote("49990", str(price))
        market.exchange.submit(order("a", BUY, str(qty), str(price)))
        reports = market.exchange.drain()
        assert [type(r).__name__ for r in reports] == outcome
        [*_, usdt] = market.exchange.balance_snapshot()
        assert usdt.free >= 0 and usdt.locked == 0
        if left is not None:
            assert usdt.free == left
        else:
            assert reports[0].reason == "insufficient_balance"  # type: ignore[union-attr]
