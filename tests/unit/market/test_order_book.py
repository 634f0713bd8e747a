"""The local order book: Binance's snapshot + diff rules (buffer, drop old, straddle, gap),
level arithmetic, the touch and top-N, and a property test against a sender's book."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veloz.market.order_book import DepthDiff, DiffResult, Level, OrderBook, SnapshotResult


def d(value: str | int) -> Decimal:
    return Decimal(str(value))


def levels(*pairs: tuple[str | int, str | int]) -> list[Level]:
    return [(d(price), d(qty)) for price, qty in pairs]


def diff(first: int, last: int, bids=(), asks=()) -> DepthDiff:
    return DepthDiff(first, last, levels(*bids), levels(*asks))


def synced_book(update_id: int = 100) -> OrderBook:
    book = OrderBook("BTCUSDT")
    result = book.apply_snapshot(
        update_id,
        levels(("100.00", "1"), ("99.50", "2"), ("99.00", "3")),
        levels(("100.50", "1"), ("101.00", "2"), ("102.00", "3")),
    )
    assert result is SnapshotResult.SYNCED
    return book


# -- the snapshot and the touch ----------------------------------------------------------


def test_a_new_book_is_not_synced_and_empty() -> None:
    book = OrderBook("BTCUSDT")
    assert not book.synced and book.update_id is None
    assert book.best_bid() is None and book.best_ask() is None
    assert book.bids() == [] and book.asks() == []


def test_snapshot_sets_levels_sorted_best_first() -> None:
    book = synced_book()
    assert book.synced and book.update_id == 100
    assert book.best_bid() == (d("100.00"), d(1))
    assert book.best_ask() == (d("100.50"), d(1))
    assert book.bids() == levels(("100.00", 1), ("99.50", 2), ("99.00", 3))
    assert book.asks() == levels(("100.50", 1), ("101.00", 2), ("102.00", 3))
    assert book.depth() == (3, 3)


def test_top_n_levels() -> None:
    book = synced_book()
    assert book.bids(2) == levels(("100.00", 1), ("99.50", 2))
    assert book.asks(1) == levels(("100.50", 1))
    assert book.bids(0) == [] and book.asks(0) == []
    assert book.bids(10) == book.bids()


def test_snapshot_levels_of_zero_quantity_are_not_kept() -> None:
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(5, levels(("1", "0"), ("2", "1")), [])
    assert book.bids() == levels(("2", "1"))


# -- applying diffs ----------------------------------------------------------------------


def test_diff_inserts_updates_and_removes_levels() -> None:
    book = synced_book()
    result = book.on_diff(
        diff(
            101,
            103,
            bids=[("100.25", "4"), ("99.50", "7"), ("100.00", "0")],
            asks=[("101.00", "0.000")],
        )
    )
    assert result is DiffResult.APPLIED and book.update_id == 103
    assert book.bids() == levels(("100.25", 4), ("99.50", 7), ("99.00", 3))
    assert book.asks() == levels(("100.50", 1), ("102.00", 3))


def test_removing_an_absent_level_is_harmless() -> None:
    book = synced_book()
    book.on_diff(diff(101, 101, bids=[("42", "0")]))
    assert book.depth() == (3, 3)


def test_prices_equal_in_value_are_one_level() -> None:
    book = synced_book()
    book.on_diff(diff(101, 101, bids=[("100.0000", "5")]))
    assert book.best_bid() == (d("100"), d(5)) and book.depth() == (3, 3)
    book.on_diff(diff(102, 102, bids=[("100", "0")]))
    assert book.best_bid() == (d("99.50"), d(2))


def test_old_diffs_are_ignored() -> None:
    book = synced_book(100)
    assert book.on_diff(diff(90, 100, bids=[("1", "1")])) is DiffResult.OLD
    assert book.on_diff(diff(95, 99, bids=[("1", "1")])) is DiffResult.OLD
    assert book.update_id == 100 and book.depth() == (3, 3)


def test_a_diff_that_straddles_the_update_id_is_applied() -> None:
    book = synced_book(100)
    assert book.on_diff(diff(98, 104, asks=[("100.50", "9")])) is DiffResult.APPLIED
    assert book.update_id == 104 and book.best_ask() == (d("100.50"), d(9))


def test_each_next_diff_must_follow_on() -> None:
    book = synced_book(100)
    assert book.on_diff(diff(101, 105)) is DiffResult.APPLIED
    assert book.on_diff(diff(106, 106)) is DiffResult.APPLIED
    assert book.on_diff(diff(108, 110, bids=[("1", "1")])) is DiffResult.GAP
    assert not book.synced and book.bids() == [] and book.asks() == []
    assert book.buffered == 1  # the diff after the hole is kept for the next snapshot


# -- buffering until a snapshot ----------------------------------------------------------


def test_diffs_before_the_snapshot_are_buffered_then_applied() -> None:
    book = OrderBook("BTCUSDT")
    assert book.on_diff(diff(95, 99, bids=[("5", "1")])) is DiffResult.BUFFERED
    assert book.on_diff(diff(100, 102, bids=[("6", "1")])) is DiffResult.BUFFERED
    assert book.on_diff(diff(103, 103, bids=[("7", "1")])) is DiffResult.BUFFERED
    assert book.buffered == 3 and not book.synced
    # The snapshot at 101 includes the first diff and half of the second.
    result = book.apply_snapshot(101, levels(("5", "1"), ("4", "1")), levels(("9", "1")))
    assert result is SnapshotResult.SYNCED
    assert book.update_id == 103 and book.buffered == 0
    assert [price for price, _ in book.bids()] == [d(7), d(6), d(5), d(4)]


def test_a_snapshot_older_than_the_first_buffered_diff_is_refused() -> None:
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(110, 112))
    assert book.apply_snapshot(100, levels(("1", "1")), []) is SnapshotResult.TOO_OLD
    assert not book.synced and book.buffered == 1
    # One that ends right before the first diff is just in time.
    assert book.apply_snapshot(109, levels(("1", "1")), []) is SnapshotResult.SYNCED
    assert book.update_id == 112


def test_a_hole_between_buffered_diffs_needs_another_snapshot() -> None:
    book = OrderBook("BTCUSDT")
    for first, last in ((101, 102), (103, 104), (107, 108), (109, 110)):
        book.on_diff(diff(first, last, bids=[(str(first), "1")]))
    assert book.apply_snapshot(100, [], []) is SnapshotResult.GAP
    assert not book.synced and book.buffered == 2  # from the diff after the hole
    assert book.apply_snapshot(106, [], []) is SnapshotResult.SYNCED
    assert book.update_id == 110
    assert [price for price, _ in book.bids()] == [d(109), d(107)]


def test_buffer_is_bounded() -> None:
    book = OrderBook("BTCUSDT", max_buffered=2)
    for update_id in range(1, 5):
        book.on_diff(diff(update_id, update_id))
    assert book.buffered == 2
    assert book.apply_snapshot(1, [], []) is SnapshotResult.TOO_OLD


def test_reset_forgets_book_and_buffer() -> None:
    book = synced_book()
    book.reset()
    assert not book.synced and book.buffered == 0 and book.depth() == (0, 0)
    book.on_diff(diff(1, 1))
    book.reset()
    assert book.buffered == 0


# -- property: the receiver ends with the sender's book ---------------------------------

PRICES = st.integers(min_value=1, max_value=40).map(lambda tick: Decimal(tick) / 4)
QUANTITIES = st.one_of(st.just(Decimal(0)), st.integers(1, 50).map(lambda n: Decimal(n) / 10))
UPDATES = st.lists(st.tuples(st.booleans(), PRICES, QUANTITIES), min_size=1, max_size=60)


class Sender:
    """Binance's side: the book after every update id, and diff events over ranges of ids."""

    def __init__(self, updates: list[tuple[bool, Decimal, Decimal]]) -> None:
        self.states: list[tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = [({}, {})]
        for is_bid, price, qty in updates:
            bids, asks = (dict(side) for side in self.states[-1])
            side = bids if is_bid else asks
            if qty:
                side[price] = qty
            else:
                side.pop(price, None)
            self.states.append((bids, asks))
        self.updates = updates

    def snapshot(self, update_id: int) -> tuple[list[Level], list[Level]]:
        bids, asks = self.states[update_id]
        return sorted(bids.items()), sorted(asks.items())

    def events(self, sizes: list[int]) -> list[DepthDiff]:
        """Updates 1..n cut into consecutive events; each level's last value in the event."""
        events, first = [], 1
        sizes = [*sizes, len(self.updates)]
        for size in sizes:
            if first > len(self.updates):
                break
            last = min(len(self.updates), first + max(size, 1) - 1)
            bids: dict[Decimal, Decimal] = {}
            asks: dict[Decimal, Decimal] = {}
            for is_bid, price, qty in self.updates[first - 1 : last]:
                (bids if is_bid else asks)[price] = qty
            events.append(DepthDiff(first, last, list(bids.items()), list(asks.items())))
            first = last + 1
        return events


def as_dicts(book: OrderBook) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    return dict(book.bids()), dict(book.asks())


@settings(max_examples=300, deadline=None)
@given(
    updates=UPDATES,
    sizes=st.lists(st.integers(1, 6), max_size=30),
    data=st.data(),
)
def test_snapshot_then_diffs_equals_the_senders_book(updates, sizes, data) -> None:
    sender = Sender(updates)
    events = sender.events(sizes)
    snapshot_id = data.draw(st.integers(0, len(updates)), label="snapshot_id")
    # The stream was opened before the snapshot was taken: it starts at an event that
    # begins at or before snapshot_id + 1, and everything before it is buffered.
    usable = [i for i, event in enumerate(events) if event.first_id <= snapshot_id + 1]
    start = data.draw(st.sampled_from(usable), label="stream_start")
    split = data.draw(st.integers(start, len(events)), label="snapshot_arrives_after")
    book = OrderBook("BTCUSDT")
    for event in events[start:split]:
        assert book.on_diff(event) is DiffResult.BUFFERED
    assert book.apply_snapshot(snapshot_id, *sender.snapshot(snapshot_id)) is SnapshotResult.SYNCED
    for event in events[split:]:
        assert book.on_diff(event) in (DiffResult.APPLIED, DiffResult.OLD)
    assert book.update_id == max(len(updates), snapshot_id)
    assert as_dicts(book) == sender.states[-1]
    # The touch is the sender's too.
    bids, asks = sender.states[-1]
    assert book.best_bid() == (max(bids.items()) if bids else None)
    assert book.best_ask() == (min(asks.items()) if asks else None)


@settings(max_examples=300, deadline=None)
@given(updates=UPDATES, sizes=st.lists(st.integers(1, 4), max_size=30), data=st.data())
def test_a_lost_diff_is_a_gap_never_a_wrong_book(updates, sizes, data) -> None:
    sender = Sender(updates)
    events = sender.events(sizes)
    lost = data.draw(st.integers(0, len(events) - 1), label="lost")
    book = OrderBook("BTCUSDT")
    book.apply_snapshot(0, [], [])
    results = [book.on_diff(event) for index, event in enumerate(events) if index != lost]
    if lost == len(events) - 1:
        # Nothing follows the lost diff, so nothing shows the hole yet: the book is the
        # sender's as of the diff before it.
        assert results.count(DiffResult.GAP) == 0
        assert as_dicts(book) == sender.states[events[lost].first_id - 1]
    else:
        assert results.count(DiffResult.GAP) == 1
        assert not book.synced


@pytest.mark.parametrize("n", [1, 5, 100])
def test_top_n_matches_a_sort(n: int) -> None:
    book = OrderBook("BTCUSDT")
    prices = [Decimal(p) / 8 for p in range(1, 60, 3)]
    book.apply_snapshot(
        1, [(p, Decimal(1)) for p in prices], [(p + 10, Decimal(2)) for p in prices]
    )
    assert [p for p, _ in book.bids(n)] == sorted(prices, reverse=True)[:n]
    assert [p for p, _ in book.asks(n)] == sorted(p + 10 for p in prices)[:n]
