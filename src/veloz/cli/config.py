"""`veloz config check`: the settings a start would use, checked without starting
anything: the same one `veloz:` line and exit 2 that `veloz engine` would give, or every
setting as it would be in force (secrets as `***`)."""

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Check the engine's settings without starting it.", no_args_is_help=True)


@app.command()
def check(
    env_file: Annotated[
        Path | None,
        typer.Option(help="Read VELOZ_* from this file too (e.g. /etc/veloz/veloz.env)"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the verdict")] = False,
) -> None:
    """Validate VELOZ_* (and the env file, the risk limits file and the security
    settings) as `veloz engine` would at start; exit 0 if it would start, 2 if not."""
    from veloz.config import SettingsError, load_settings, unknown_variables
    from veloz.runtime.engine_config import engine_config

    if env_file is not None and not env_file.is_file():
        typer.echo(f"veloz: --env-file: no file at {env_file}", err=True)
        raise typer.Exit(2)
    try:
        settings = load_settings(env_file)
        engine_config(settings)
        settings.auth_config()
        settings.redis_config()
    except SettingsError as exc:
        typer.echo(f"veloz: {exc}", err=True)
        raise typer.Exit(2) from None
    if not quiet:
        typer.echo(json.dumps(settings.public_view(), indent=2, sort_keys=True))
    for unknown in unknown_variables(env_file):
        typer.echo(f"veloz: warning: {unknown}", err=True)
    typer.echo("settings OK", err=True)
