"""`veloz keys create|list|revoke` and `veloz users create|passwd|disable|enable`: API keys
and users, straight in the history store (the engine picks changes up within
VELOZ_AUTH reload time, 10 s). Migrations are applied first, as the engine would."""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from veloz.cli.db import UrlOption, when, with_store

if TYPE_CHECKING:
    from veloz.auth.service import AuthService
    from veloz.persistence.store import Store

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Create users, set passwords, disable.", no_args_is_help=True)

_T = TypeVar("_T")


def _with_auth(url: str | None, work: Callable[["AuthService"], Awaitable[_T]]) -> _T:
    import time

    from veloz.auth.service import AuthConfig, AuthService

    async def run(store: "Store") -> _T:
        await store.migrate()
        return await work(AuthService(AuthConfig(), store, time.time_ns))

    try:
        return with_store(url, run)
    except (ValueError, LookupError) as exc:
        typer.echo(f"veloz: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(2) from None


def _role(value: str) -> "str":
    from veloz.auth.roles import parse_role

    try:
        return parse_role(value).value
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="What the key is for")],
    role: Annotated[str, typer.Option(help="viewer, trader or admin", callback=_role)],
    expires_days: Annotated[float | None, typer.Option(help="Days until it expires")] = None,
    allow_ip: Annotated[
        list[str] | None, typer.Option(help="An address or CIDR it may be used from (repeat)")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Create a key and print it: this is the only time it is shown."""
    import time

    from veloz.auth.roles import Role

    expires_ns = None
    if expires_days is not None:
        if expires_days <= 0:
            raise typer.BadParameter("--expires-days must be positive")
        expires_ns = time.time_ns() + int(expires_days * 86_400 * 1e9)
    created = _with_auth(
        url, lambda auth: auth.create_key(name, Role(role), expires_ns, list(allow_ip or []))
    )
    typer.echo(f"key id {created.key_id} ({created.role}), expires {when(created.expires_ns)}")
    typer.echo(created.key)
    typer.echo("store it now: it is not kept and cannot be shown again", err=True)


@keys_app.command("list")
def list_keys(url: UrlOption = None) -> None:
    """Every key with its role, use and state (never the key itself)."""
    found = _with_auth(url, lambda auth: auth.list_keys())
    table = Table()
    for column in ("key id", "name", "role", "created", "last used", "expires", "ips", "state"):
        table.add_column(column)
    for key in found:
        state = "revoked" if key.revoked_ns else "live"
        table.add_row(
            key.key_id,
            key.name,
            key.role,
            when(key.created_ns),
            when(key.last_used_ns),
            when(key.expires_ns),
            ",".join(key.allowed_ips) or "any",
            state,
        )
    Console().print(table)


@keys_app.command("revoke")
def revoke_key(key_id: str, url: UrlOption = None) -> None:
    """Revoke a key (the engine stops accepting it within 10 s)."""
    if not _with_auth(url, lambda auth: auth.revoke_key(key_id)):
        typer.echo(f"veloz: no live API key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


PasswordFile = Annotated[
    Path | None,
    typer.Option(help="Read the password from this file instead of asking (e.g. a secret)"),
]


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text().rstrip("\r\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@users_app.command("create")
def create_user(
    user_id: str,
    role: Annotated[str, typer.Option(help="viewer, trader or admin", callback=_role)],
    password_file: PasswordFile = None,
    url: UrlOption = None,
) -> None:
    """Create a user (the password is asked for twice unless --password-file)."""
    from veloz.auth.roles import Role

    password = _password(password_file)
    _with_auth(url, lambda auth: auth.create_user(user_id, Role(role), password))
    typer.echo(f"created {user_id} ({role})")


@users_app.command("passwd")
def set_password(user_id: str, password_file: PasswordFile = None, url: UrlOption = None) -> None:
    """Set a user's password; their refresh tokens are revoked."""
    password = _password(password_file)
    _with_auth(url, lambda auth: auth.set_password(user_id, password))
    typer.echo(f"password of {user_id} set")


@users_app.command("disable")
def disable_user(user_id: str, url: UrlOption = None) -> None:
    """Disable a user: logins and their tokens stop working."""
    _with_auth(url, lambda auth: auth.set_disabled(user_id, True))
    typer.echo(f"disabled {user_id}")


@users_app.command("enable")
def enable_user(user_id: str, url: UrlOption = None) -> None:
    """Enable a disabled user."""
    _with_auth(url, lambda auth: auth.set_disabled(user_id, False))
    typer.echo(f"enabled {user_id}")
