"""`veloz strategy list|add|start|stop|pause|resume|remove|catalog`: manage the strategies of
a running engine through its HTTP API (`--url`, default `http://127.0.0.1:$VELOZ_PORT`),
so the engine stays the one writer of its journal.

With authentication on, pass a trader's API key in `VELOZ_API_KEY` (never on the command
line, where `ps` shows it). Exit codes: 0 done, 2 refused (a wrong strategy, parameter or
id; the engine's message is printed), 1 the engine could not be reached or failed.
"""

import json
import os
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

app = typer.Typer(help="Manage the strategies of a running engine.", no_args_is_help=True)

UrlOption = Annotated[
    str | None,
    typer.Option(help="The engine's API (default http://127.0.0.1:$VELOZ_PORT, port 8080)"),
]


def _call(url: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    base = url or f"http://127.0.0.1:{os.environ.get('VELOZ_PORT', '8080')}"
    headers = {"content-type": "application/json"}
    key = os.environ.get("VELOZ_API_KEY")
    if key:
        headers["x-api-key"] = key
    request = urllib.request.Request(
        base.rstrip("/") + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = _message(error.read())
        typer.echo(f"veloz: {detail}", err=True)
        raise typer.Exit(2 if 400 <= error.code < 500 else 1) from None
    except OSError as error:
        typer.echo(f"veloz: cannot reach the engine at {base}: {error}", err=True)
        raise typer.Exit(1) from None


def _message(raw: bytes) -> str:
    try:
        answer = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")[:200]
    return str(answer.get("message") or answer.get("error") or answer)


def _show(strategies: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "strategy", "symbol", "state", "position", "realized", "orders", "error")
    for s in strategies:
        table.add_row(
            s["strategy_id"],
            s["strategy"],
            s["symbol"],
            s["state"],
            str(s["position"]),
            str(s["realized_pnl"]),
            str(s["orders"]),
            s["error"] or "",
        )
    Console().print(table)


@app.command("list")
def list_strategies(url: UrlOption = None) -> None:
    """Every strategy with its state, position and PnL."""
    _show(_call(url, "GET", "/api/strategies")["strategies"])


@app.command()
def catalog(url: UrlOption = None) -> None:
    """The strategies that can be added, with their parameters."""
    for kind in _call(url, "GET", "/api/strategies/catalog")["strategies"]:
        typer.echo(f"{kind['name']}: {kind['description']}")
        definitions = kind["params_schema"].get("$defs", {})
        for properties in (d.get("properties", {}) for d in definitions.values()):
            for name, field in properties.items():
                default = field.get("default")
                typer.echo(f"  {name} (default {default}): {field.get('description', '')}")


@app.command()
def add(
    strategy_id: Annotated[str, typer.Argument(help="A name for this instance")],
    *,
    strategy: Annotated[
        str, typer.Option(help="A built-in (`veloz strategy catalog`) or module:Class")
    ],
    symbol: Annotated[str, typer.Option(help="The symbol it trades")],
    param: Annotated[
        list[str] | None, typer.Option(help="A parameter NAME=VALUE (repeatable)")
    ] = None,
    start: Annotated[bool, typer.Option(help="Start it at once")] = True,
    url: UrlOption = None,
) -> None:
    """Add a strategy to the running engine (and start it)."""
    from veloz.model.errors import CommandRejected
    from veloz.strategy.registry import parse_assignments

    try:
        params = parse_assignments(param or ())
    except CommandRejected as exc:
        typer.echo(f"veloz: {exc.message}", err=True)
        raise typer.Exit(2) from None
    body = {
        "strategy_id": strategy_id,
        "strategy": strategy,
        "symbol": symbol,
        "params": params,
        "start": start,
    }
    _show([_call(url, "POST", "/api/strategies", body)])


def _change(action: str, method: str = "POST") -> Any:
    def command(
        strategy_id: Annotated[str, typer.Argument(help="The strategy's id")],
        url: UrlOption = None,
    ) -> None:
        path = f"/api/strategies/{strategy_id}" + ("" if method == "DELETE" else f"/{action}")
        _show([_call(url, method, path)])

    command.__doc__ = f"{action.capitalize()} a strategy."
    return command


app.command("start")(_change("start"))
app.command("stop")(_change("stop"))
app.command("pause")(_change("pause"))
app.command("resume")(_change("resume"))
app.command("remove")(_change("remove", "DELETE"))
