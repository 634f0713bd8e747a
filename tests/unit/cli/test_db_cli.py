"""`veloz db migrate|status|rebuild` through typer's CliRunner: on a journal a real engine
wrote, with the failures an operator can meet (engine running, bad URL, no database)."""

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.engine import engine_config, quote, wait_for_status
from veloz.cli.main import app
from veloz.journal.segments import DirectoryLock
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide, OrderStatus, OrderType, TimeInForce
from veloz.runtime.live import LiveEngine


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Three filled market orders, then a clean stop."""

    async def trade() -> None:
        engine = LiveEngine(engine_config(tmp_path / "wal"))
        await engine.start()
        engine.market.on_data(quote())
        for n in range(3):
            await engine.submit(
                SubmitOrder(
                    symbol="BTCUSDT",
                    side=OrderSide.BUY,
                    qty=Decimal("0.01"),
                    order_type=OrderType.MARKET,
                    time_in_force=TimeInForce.IOC,
                    client_order_id=f"m{n}",
                )
            )
            await wait_for_status(engine, f"m{n}", OrderStatus.FILLED)
        await engine.stop()

    asyncio.run(trade())
    return tmp_path / "wal"


def test_migrate_then_status_then_rebuild(runner, journal, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    first = runner.invoke(app, ["db", "migrate", "--url", url])
    assert first.exit_code == 0 and "applied 0001_initial" in first.output
    again = runner.invoke(app, ["db", "migrate", "--url", url])
    assert again.exit_code == 0 and "nothing to apply" in again.output

    rebuilt = runner.invoke(app, ["db", "rebuild", "--url", url, "--dir", str(journal)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "3 orders, 3 fills, 0 mode_changes" in rebuilt.output
    status = runner.invoke(app, ["db", "status", "--url", url])
    assert status.exit_code == 0, status.output
    assert "0001_initial" in status.output and "projected through journal sequence" in status.output
    with sqlite3.connect(tmp_path / "h.db") as conn:
        rows = conn.execute("SELECT client_order_id, status, executed_qty FROM orders ORDER BY 1")
        assert rows.fetchall() == [(f"m{n}", "FILLED", "0.01") for n in range(3)]


def test_the_url_defaults_to_veloz_database_url(runner, clean_env, tmp_path):
    clean_env.setenv("VELOZ_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert runner.invoke(app, ["db", "migrate"]).exit_code == 0
    assert (tmp_path / "env.db").exists()


def test_status_of_an_unmigrated_store_says_what_to_do(runner, tmp_path):
    status = runner.invoke(app, ["db", "status", "--url", f"sqlite:///{tmp_path / 'new.db'}"])
    assert status.exit_code == 1 and "veloz db migrate" in status.output


def test_rebuild_refuses_while_the_engine_holds_the_journal(runner, journal, tmp_path):
    held = DirectoryLock(journal)
    held.acquire()
    try:
        refused = runner.invoke(
            app, ["db", "rebuild", "--url", f"sqlite:///{tmp_path / 'h.db'}", "--dir", str(journal)]
        )
    finally:
        held.release()
    assert refused.exit_code == 3 and "stop the engine" in refused.output
    assert not (tmp_path / "h.db").exists()  # nothing was touched


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("mysql://veloz:s3cret@db/veloz", 2, "expected sqlite"),
        ("none", 2, "no history store"),
        ("postgresql://veloz:s3cret@127.0.0.1:1/veloz", 1, "history store unavailable"),
    ],
)
def test_bad_or_unreachable_stores_exit_with_a_clear_line(runner, url, code, said):
    result = runner.invoke(app, ["db", "status", "--url", url])
    assert result.exit_code == code and said in result.output
    assert "s3cret" not in result.output
