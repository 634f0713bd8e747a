"""`veloz keys ...` and `veloz users ...` through typer's CliRunner on a SQLite store, read
back through the AuthService the engine uses."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from veloz.auth.roles import Role
from veloz.auth.service import AuthConfig, AuthError, AuthService, Principal
from veloz.cli.main import app
from veloz.persistence.sqlite import SqliteStore

PASSWORD = "a-long-enough-password"
T = TypeVar("T")


def read_back(url: str, check: Callable[[AuthService], Awaitable[T]]) -> T:
    """Run `check` against an AuthService on the store, as the engine would see it."""

    async def run() -> T:
        store = SqliteStore(url.removeprefix("sqlite:///"), time.time_ns)
        await store.connect()
        try:
            auth = AuthService(
                AuthConfig(enabled=True, jwt_secret="k" * 16 + "0123456789abcdef"),
                store,
                time.time_ns,
            )
            await auth.reload()
            return await check(auth)
        finally:
            await store.close()

    return asyncio.run(run())


def test_keys_create_list_revoke(runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--name",
            "bot",
            "--role",
            "trader",
            "--allow-ip",
            "10.0.0.0/8",
            "--url",
            url,
        ],
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]

    async def who(auth: AuthService) -> Principal | None:
        return auth.authenticate(
            authorization=None, api_key=key, query_token=None, client_ip="10.1.1.1"
        )

    principal = read_back(url, who)
    assert principal is not None
    assert principal.role is Role.TRADER
    key_id = principal.name
    listed = runner.invoke(app, ["keys", "list", "--url", url])
    assert key_id in listed.output and "10.0.0.0/8" in listed.output and key not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key_id, "--url", url]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id, "--url", url])
    assert again.exit_code == 1 and "no live API key" in again.output

    with pytest.raises(AuthError):
        read_back(url, who)
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--role", "root", "--url", url])
    assert bad.exit_code == 2 and "role must be one of" in bad.output


def test_users_create_passwd_disable(runner, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    made = runner.invoke(
        app,
        ["users", "create", "ana", "--role", "viewer", "--url", url],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert made.exit_code == 0, made.output
    assert PASSWORD not in made.output
    assert read_back(url, lambda auth: auth.login("ana", PASSWORD)).access_token
    short = runner.invoke(app, ["users", "passwd", "ana", "--url", url], input="short\nshort\n")
    assert short.exit_code == 2 and "at least 12" in short.output
    new_password = tmp_path / "pw"
    new_password.write_text("another-long-password\n")
    changed = runner.invoke(
        app, ["users", "passwd", "ana", "--password-file", str(new_password), "--url", url]
    )
    assert changed.exit_code == 0
    assert read_back(url, lambda auth: auth.login("ana", "another-long-password")).access_token
    assert runner.invoke(app, ["users", "disable", "ana", "--url", url]).exit_code == 0

    async def disabled_login(auth: AuthService) -> str:
        try:
            await auth.login("ana", "another-long-password")
        except AuthError as exc:
            return exc.code
        return "ok"

    assert read_back(url, disabled_login) == "unauthorized"
    missing = runner.invoke(app, ["users", "disable", "nobody", "--url", url])
    assert missing.exit_code == 2 and "no user" in missing.output
