"""The bar loop's reference for `bench.backtest`: `ema_cross`'s arithmetic on every bar,
without ever sending an order."""

from decimal import Decimal

from veloz.strategy.builtin.ema_cross import EmaCross


class Silent(EmaCross):
    name = "silent"

    def _target(self, target: Decimal) -> None:
        pass
