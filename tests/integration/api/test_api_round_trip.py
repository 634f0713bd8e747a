"""The README's example order can be sold back: buy 0.001 BTC at about 50,000, then sell
the whole free BTC balance (the fee was taken in BTC, so it is a little less than what
was bought, and off the size grid: the sell is rounded down to the step, leaving dust).
The runbooks' 0.0001 BTC could not: what is left after the fee, rounded down to the
step, is 0.00009 BTC, 4.5 USDT, under BTCUSDT's 5 USDT minimum notional."""

from decimal import Decimal

from tests.support.engine import wait_for_status
from veloz.model.enums import OrderStatus

D = Decimal


async def order(api, client_order_id: str, side: str, qty: str, price: str):
    body = {"side": side, "symbol": "BTCUSDT", "qty": qty, "price": price}
    return await api.post("/api/order", json=body | {"client_order_id": client_order_id})


async def free_btc(api) -> str:
    """The free BTC balance exactly as the API shows it, to send back as is."""
    balances = (await api.get("/api/account")).json()["balances"]
    return next((str(b["free"]) for b in balances if b["asset"] == "BTC"), "0")


async def test_buy_then_sell_the_whole_free_balance_back(api, engine):
    assert D(await free_btc(api)) == 0  # the sim starts with USDT only
    bought = await order(api, "readme-buy", "BUY", "0.001", "50001")  # at the ask
    assert bought.status_code == 200, bought.text
    await wait_for_status(engine, "readme-buy", OrderStatus.FILLED)
    free = await free_btc(api)
    assert D(free) == D("0.000999")  # 0.001 less the 0.1 % fee, charged in BTC

    sold = await order(api, "readme-sell", "SELL", free, "50000")  # at the bid
    assert sold.status_code == 200, sold.text
    assert D(str(sold.json()["order_qty"])) == D("0.00099")  # rounded down to the step
    await wait_for_status(engine, "readme-sell", OrderStatus.FILLED)
    assert D(await free_btc(api)) < D("0.00001")  # only dust under one step is left


async def test_the_old_example_of_0_0001_btc_cannot_be_sold_back(api, engine):
    bought = await order(api, "old-buy", "BUY", "0.0001", "50001")
    assert bought.status_code == 200, bought.text
    await wait_for_status(engine, "old-buy", OrderStatus.FILLED)
    free = await free_btc(api)
    assert D(free) == D("0.0000999")
    refused = await order(api, "old-sell", "SELL", free, "50000")
    assert refused.status_code in (400, 422), refused.text
    assert "notional" in refused.text.lower()
