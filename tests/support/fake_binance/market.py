"""The fake's market for one symbol: its trading rules, a book of price levels numbered
with Binance's update ids, the public trades and the closed klines. Plain state: each
change returns the stream events it causes (stream name, payload) and the server fans
them out to the sockets subscribed to that name."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tests.support.fake_binance.wire import fmt

StreamEvent = tuple[str, dict[str, object]]  # (stream name, lowercase; payload)
Level = tuple[Decimal, Decimal]  # (price, qty)

_QUOTES = ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_ZERO = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class SymbolRules:
    """What exchangeInfo says of a symbol and what orders are checked against. The
    defaults are BTCUSDT's filters on Binance."""

    symbol: str
    base_asset: str
    quote_asset: str
    status: str = "TRADING"
    tick_size: Decimal = Decimal("0.01")
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    max_qty: Decimal = Decimal("9000")
    market_max_qty: Decimal = Decimal("100")
    min_notional: Decimal = Decimal("5")
    max_notional: Decimal = Decimal("9000000")
    max_num_orders: int = 200

    @classmethod
    def default(cls, symbol: str) -> "SymbolRules":
        for quote in _QUOTES:
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return cls(symbol=symbol, base_asset=symbol[: -len(quote)], quote_asset=quote)
        raise ValueError(f"cannot tell base from quote in {symbol!r}; pass SymbolRules")

    def exchange_info(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "status": self.status,
            "baseAsset": self.base_asset,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote_asset,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "opoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "pegInstructionsAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.min_price),
                    "maxPrice": fmt(self.max_price),
                    "tickSize": fmt(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(self.min_qty),
                    "maxQty": fmt(self.max_qty),
                    "stepSize": fmt(self.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": fmt(_ZERO),
                    "maxQty": fmt(self.market_max_qty),
                    "stepSize": fmt(_ZERO),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": fmt(self.max_notional),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE"],
        }


@dataclass(frozen=True, kw_only=True)
class PublicTrade:
    trade_id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_is_maker: bool

    def json(self) -> dict[str, object]:
        return {
            "id": self.trade_id,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.price * self.qty),
            "time": self.time_ms,
            "isBuyerMaker": self.buyer_is_maker,
            "isBestMatch": True,
        }

    def agg_json(self) -> dict[str, object]:
        # One aggregate per trade: the fake's trades never share a taker order and price.
        return {
            "a": self.trade_id,
            "p": fmt(self.price),
            "q": fmt(self.qty),
            "f": self.trade_id,
            "l": self.trade_id,
            "T": self.time_ms,
            "m": self.buyer_is_maker,
            "M": True,
        }


@dataclass
class SymbolMarket:
    rules: SymbolRules
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    update_id: int = 1000
    trades: list[PublicTrade] = field(default_factory=list)
    klines: list[list[object]] = field(default_factory=list)

    @property
    def stream(self) -> str:
        return self.rules.symbol.lower()

    # -- the book --------------------------------------------------------------------

    def sorted_bids(self) -> list[Level]:
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> list[Level]:
        return sorted(self.asks.items())

    def best_bid(self) -> Level | None:
        return max(self.bids.items()) if self.bids else None

    def best_ask(self) -> Level | None:
        return min(self.asks.items()) if self.asks else None

    def replace(
        self, bids: Iterable[Level], asks: Iterable[Level], now_ms: int
    ) -> list[StreamEvent]:
        """Set the whole book; the difference goes out as one depth diff."""
        new_bids = {Decimal(p): Decimal(q) for p, q in bids if Decimal(q) > 0}
        new_asks = {Decimal(p): Decimal(q) for p, q in asks if Decimal(q) > 0}
        bid_changes = _changes(self.bids, new_bids)
        ask_changes = _changes(self.asks, new_asks)
        return self.apply(bid_changes, ask_changes, now_ms)

    def apply(self, bids: Sequence[Level], asks: Sequence[Level], now_ms: int) -> list[StreamEvent]:
        """One diff event: each level set to its quantity (0 removes it). It takes one
        update id per level changed, as Binance's `U`..`u` ranges do."""
        if not bids and not asks:
            return []
        top = (self.best_bid(), self.best_ask())
        for side, changes in ((self.bids, bids), (self.asks, asks)):
            for price, qty in changes:
                if qty > 0:
                    side[Decimal(price)] = Decimal(qty)
                else:
                    side.pop(Decimal(price), None)
        first = self.update_id + 1
        self.update_id += len(bids) + len(asks)
        diff: dict[str, object] = {
            "e": "depthUpdate",
            "E": now_ms,
            "s": self.rules.symbol,
            "U": first,
            "u": self.update_id,
            "b": [[fmt(p), fmt(q)] for p, q in bids],
            "a": [[fmt(p), fmt(q)] for p, q in asks],
        }
        events: list[StreamEvent] = [
            (f"{self.stream}@depth", diff),
            (f"{self.stream}@depth@100ms", diff),
        ]
        if (self.best_bid(), self.best_ask()) != top:
            events.append((f"{self.stream}@bookticker", self.book_ticker(stream=True)))
        return events

    def skip(self, ids: int) -> None:
        """Updates nobody hears of: the next diff's `U` is `ids` past the last `u` + 1."""
        self.update_id += ids

    def book_ticker(self, *, stream: bool = False) -> dict[str, object]:
        bid = self.best_bid() or (_ZERO, _ZERO)
        ask = self.best_ask() or (_ZERO, _ZERO)
        if stream:
            return {
                "u": self.update_id,
                "s": self.rules.symbol,
                "b": fmt(bid[0]),
                "B": fmt(bid[1]),
                "a": fmt(ask[0]),
                "A": fmt(ask[1]),
            }
        return {
            "symbol": self.rules.symbol,
            "bidPrice": fmt(bid[0]),
            "bidQty": fmt(bid[1]),
            "askPrice": fmt(ask[0]),
            "askQty": fmt(ask[1]),
        }

    def snapshot(self, limit: int) -> dict[str, object]:
        return {
            "lastUpdateId": self.update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in self.sorted_bids()[:limit]],
            "asks": [[fmt(p), fmt(q)] for p, q in self.sorted_asks()[:limit]],
        }

    # -- trades and klines -----------------------------------------------------------

    def trade(self, trade: PublicTrade, now_ms: int) -> list[StreamEvent]:
        self.trades.append(trade)
        symbol = self.rules.symbol
        return [
            (
                f"{self.stream}@trade",
                {
                    "e": "trade",
                    "E": now_ms,
                    "s": symbol,
                    "t": trade.trade_id,
                    "p": fmt(trade.price),
                    "q": fmt(trade.qty),
                    "T": trade.time_ms,
                    "m": trade.buyer_is_maker,
                    "M": True,
                },
            ),
            (
                f"{self.stream}@aggtrade",
                {"e": "aggTrade", "E": now_ms, "s": symbol, **trade.agg_json()},
            ),
        ]

    def kline(
        self,
        *,
        open_ms: int,
        prices: tuple[Decimal, Decimal, Decimal, Decimal],
        volume: Decimal,
        trades: int,
        closed: bool,
        now_ms: int,
    ) -> list[StreamEvent]:
        """A 1m kline event; a closed one joins the REST history."""
        open_, high, low, close = prices
        close_ms = open_ms + 59_999
        quote_volume = volume * close
        if closed:
            self.klines.append(
                [
                    open_ms,
                    fmt(open_),
                    fmt(high),
                    fmt(low),
                    fmt(close),
                    fmt(volume),
                    close_ms,
                    fmt(quote_volume),
                    trades,
                    fmt(_ZERO),
                    fmt(_ZERO),
                    "0",
                ]
            )
        first = self.trades[-trades].trade_id if 0 < trades <= len(self.trades) else -1
        last = self.trades[-1].trade_id if first != -1 else -1
        body = {
            "t": open_ms,
            "T": close_ms,
            "s": self.rules.symbol,
            "i": "1m",
            "f": first,
            "L": last,
            "o": fmt(open_),
            "c": fmt(close),
            "h": fmt(high),
            "l": fmt(low),
            "v": fmt(volume),
            "n": trades,
            "x": closed,
            "q": fmt(quote_volume),
            "V": fmt(_ZERO),
            "Q": fmt(_ZERO),
            "B": "0",
        }
        event = {"e": "kline", "E": now_ms, "s": self.rules.symbol, "k": body}
        return [(f"{self.stream}@kline_1m", event)]


def _changes(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[Level]:
    removed = [(p, _ZERO) for p in old if p not in new]
    changed = [(p, q) for p, q in new.items() if old.get(p) != q]
    return sorted(removed + changed)
