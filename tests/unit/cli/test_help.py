"""`veloz … --help` for every command, as the installed `veloz` runs it: no `<bool>`-style
type tags, and each command's first sentence whole on one line (a docstring's line break
used to read as a cut), in its own help and in its group's command list. And `veloz wal
inspect` prints every payload whole, however wide it is."""

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from tests.support.engine import engine_config, quote
from veloz.cli.main import app
from veloz.model.commands import SubmitOrder
from veloz.model.enums import OrderSide
from veloz.runtime.live import LiveEngine

TAG = re.compile(r"<(bool|int|float|str|path|text|integer)>", re.IGNORECASE)
WIDE = {"COLUMNS": "1000", "NO_COLOR": "1"}  # wide enough for any first sentence


# Any: typer builds its commands on the click it bundles, not on the `click` package.
def _tree(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _tree(sub, (*path, name))


# Every command; its docstring's first sentence is compared with whitespace collapsed.
COMMANDS = list(_tree(typer.main.get_command(app)))


def first_sentence(help_text: str) -> str:
    """As shown: the help is Rich text with its brackets escaped."""
    flat = " ".join(Text.from_markup(help_text).plain.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


def test_every_command_is_covered():
    names = {" ".join(path) for path, _ in COMMANDS}
    expected = {"engine", "wal", "wal checkpoint", "wal inspect", "wal verify", "db", "keys"}
    expected |= {"users", "backtest", "strategy", "config", "validate-deployment"}
    assert expected <= names


@pytest.mark.parametrize(
    ("path", "source"), COMMANDS, ids=[" ".join(p) or "veloz" for p, _ in COMMANDS]
)
def test_help_has_no_type_tags_and_the_whole_first_sentence(path, source):
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert not TAG.search(result.output), result.output
    sentence = first_sentence(source.help or "")
    assert sentence and any(sentence in line for line in result.output.splitlines()), (
        f"{sentence!r} is not whole on one line of:\n{result.output}"
    )
    for name, sub in getattr(source, "commands", {}).items():
        listed = [line for line in result.output.splitlines() if f" {name} " in line]
        assert any(first_sentence(sub.help or "") in line for line in listed), (
            f"{name}: {first_sentence(sub.help or '')!r} is cut in:\n{result.output}"
        )


def test_a_flag_shows_no_value_and_an_option_names_its_value():
    result = CliRunner().invoke(app, ["engine", "--help"], env=WIDE)
    lines = {
        line.split()[1]: line.split()[2:]
        for line in result.output.splitlines()
        if line.strip().startswith("│ --")
    }
    assert lines["--stdio"][0] == "Commands" and lines["--help"][0] == "Show"
    assert lines["--port"][0] == "PORT" and lines["--env-file"][0] == "ENV_FILE"


async def test_wal_inspect_prints_every_payload_whole(wal_dir):
    engine = LiveEngine(engine_config(wal_dir))
    await engine.start()
    engine.market.on_data(quote())
    ids = [f"inspect-{'x' * 20}-{i}" for i in range(3)]
    for client_order_id in ids:
        await engine.submit(
            SubmitOrder(
                client_order_id=client_order_id,
                symbol="BTCUSDT",
                side=OrderSide.BUY,
                qty=Decimal("0.01"),
                price=Decimal("40000"),
                strategy_id="a-strategy-with-a-long-name",
            )
        )
    await engine.stop()
    for env in ({"COLUMNS": "80"}, WIDE):
        result = CliRunner().invoke(app, ["wal", "inspect", "--dir", str(wal_dir)], env=env)
        assert result.exit_code == 0, result.output
        assert "…" not in result.output
        for client_order_id in ids:  # piped: each row on one line, the payload whole
            rows = [line for line in result.output.splitlines() if client_order_id in line]
            assert any('"strategy_id":"a-strategy-with-a-long-name"' in row for row in rows)
