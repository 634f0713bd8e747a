"""Wiring the history service to a live engine: the journal it follows, the portfolio it
samples, and its place among the journal's readers."""

from pathlib import Path

import msgspec

from veloz.persistence.service import HistoryConfig, HistoryService
from veloz.persistence.store import BalanceSnapshot, PortfolioSnapshot, PositionSnapshot
from veloz.runtime.live import LiveEngine


def attach_history(config: HistoryConfig, engine: LiveEngine) -> HistoryService:
    """A history service following `engine`'s journal. Call it before the engine starts:
    registered as a journal reader then, retention never outruns the projector."""

    def durable_seq() -> int:
        journal = engine.journal
        return journal.durable_seq if journal is not None else 0

    def sample() -> PortfolioSnapshot | None:
        return portfolio_snapshot(engine) if engine.ready else None

    history = HistoryService(config, Path(engine.config.journal.directory), durable_seq, sample)
    engine.journal_readers.append(history.next_needed_seq)
    return history


def portfolio_snapshot(engine: LiveEngine) -> PortfolioSnapshot:
    portfolio = engine.portfolio
    return PortfolioSnapshot(
        ts_ns=engine.clock.time_ns(),
        equity=portfolio.equity(),
        drawdown=portfolio.drawdown(),
        # The snapshots keep a subset of the views' fields, by the same names.
        positions=[
            msgspec.convert(p, PositionSnapshot, from_attributes=True)
            for p in portfolio.positions()
        ],
        balances=[
            msgspec.convert(b, BalanceSnapshot, from_attributes=True) for b in portfolio.balances()
        ],
    )
