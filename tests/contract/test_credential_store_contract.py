"""The credential store contract: users, API keys and refresh tokens behave the same in
SQLite and PostgreSQL.

In CI the PostgreSQL half must run: a missing server fails it (tests/support/postgres.py).
"""

import asyncio

import msgspec
import pytest

from veloz.persistence.store import (
    ApiKeyRecord,
    RefreshTokenRecord,
    Store,
    StoreUnavailable,
    UserRecord,
)

T0 = 1_790_000_000_000_000_000


def user(user_id: str, role: str = "trader", **changes: object) -> UserRecord:
    made = UserRecord(
        user_id=user_id,
        role=role,
        password_hash=f"$argon2id$v=19$m=65536,t=3,p=4${user_id}",
        created_ns=T0,
        updated_ns=T0,
    )
    return msgspec.structs.replace(made, **changes)


def api_key(key_id: str, created_ns: int = T0, **changes: object) -> ApiKeyRecord:
    made = ApiKeyRecord(
        key_id=key_id,
        name=f"bot {key_id}",
        role="trader",
        key_hash=f"sha256-of-{key_id}",
        created_ns=created_ns,
    )
    return msgspec.structs.replace(made, **changes)


def token(token_hash: str, user_id: str = "alice", **changes: object) -> RefreshTokenRecord:
    made = RefreshTokenRecord(
        token_hash=token_hash, user_id=user_id, issued_ns=T0, expires_ns=T0 + 3600 * 10**9
    )
    return msgspec.structs.replace(made, **changes)


async def test_the_credentials_migration_is_applied_and_listed(store: Store):
    assert await store.migrate() == []  # the fixture applied both already
    listed = await store.migrations()
    assert [(m.version, m.name) for m in listed] == [(1, "initial"), (2, "credentials")]
    assert all(m.applied_ns is not None for m in listed)


async def test_users_round_trip_and_an_upsert_replaces_every_field(store: Store):
    alice = user("alice", created_ns=T0 + 123_456_789)  # nanoseconds a datetime would lose
    await store.save_user(alice)
    assert await store.user("alice") == alice
    changed = UserRecord(
        user_id="alice",
        role="admin",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$other",
        disabled=True,
        created_ns=T0 + 1,
        updated_ns=T0 + 2,
    )
    await store.save_user(changed)
    assert await store.user("alice") == changed
    await store.save_user(msgspec.structs.replace(changed, disabled=False))
    stored = await store.user("alice")
    assert stored is not None and stored.disabled is False
    assert await store.user("nobody") is None
    assert await store.user("ALICE") is None  # ids are exact, not case-folded


async def test_users_are_listed_by_user_id_in_byte_order(store: Store):
    # Byte order in both dialects, whatever the PostgreSQL database's collation: upper
    # case before "_" before lower case.
    for user_id in ["carol", "a1", "_ops", "Bob"]:
        await store.save_user(user(user_id))
    assert [u.user_id for u in await store.users()] == ["Bob", "_ops", "a1", "carol"]
    assert all(u == user(u.user_id) for u in await store.users())


async def test_api_keys_round_trip_oldest_first(store: Store):
    restricted = api_key(
        "k2",
        T0 + 1,
        role="viewer",
        expires_ns=T0 + 10**12,
        allowed_ips=["10.0.0.0/8", "2001:db8::/32"],
    )
    await store.add_api_key(restricted)
    await store.add_api_key(api_key("k1", T0 + 1))  # created together: by key id
    await store.add_api_key(api_key("k3", T0))
    keys = await store.api_keys()
    assert keys == [api_key("k3", T0), api_key("k1", T0 + 1), restricted]
    assert keys[2].allowed_ips == ["10.0.0.0/8", "2001:db8::/32"]
    assert keys[0].allowed_ips == []


async def test_a_key_name_with_a_nul_is_kept_alike_in_both_dialects(store: Store):
    # PostgreSQL TEXT refuses NUL; SQLite would keep it. Both keep U+FFFD instead.
    await store.add_api_key(api_key("k1", name="bot\x00one"))
    [stored] = await store.api_keys()
    assert stored.name == "bot\ufffdone"


async def test_a_key_is_revoked_once(store: Store):
    await store.add_api_key(api_key("k1"))
    await store.add_api_key(api_key("k2"))
    assert await store.revoke_api_key("k1", T0 + 5) is True
    assert await store.revoke_api_key("k1", T0 + 9) is False
    assert await store.revoke_api_key("nope", T0 + 9) is False
    revoked = {k.key_id: k.revoked_ns for k in await store.api_keys()}
    assert revoked == {"k1": T0 + 5, "k2": None}  # the first revocation's time stays


async def test_touching_keys_never_moves_their_last_use_backwards(store: Store):
    for key_id in ("k1", "k2", "k3"):
        await store.add_api_key(api_key(key_id))
    await store.touch_api_keys({"k1": T0 + 50, "k2": T0 + 10, "unknown": T0 + 99})
    await store.touch_api_keys({"k1": T0 + 40, "k2": T0 + 60})
    await store.touch_api_keys({})
    used = {k.key_id: k.last_used_ns for k in await store.api_keys()}
    assert used == {"k1": T0 + 50, "k2": T0 + 60, "k3": None}


async def test_a_duplicate_key_id_or_hash_is_refused(store: Store):
    await store.add_api_key(api_key("k1"))
    with pytest.raises(StoreUnavailable):
        await store.add_api_key(api_key("k1", key_hash="another hash"))
    with pytest.raises(StoreUnavailable):
        await store.add_api_key(api_key("k2", key_hash=api_key("k1").key_hash))
    assert await store.api_keys() == [api_key("k1")]  # and the store still answers


async def test_a_role_outside_viewer_trader_admin_is_refused(store: Store):
    with pytest.raises(StoreUnavailable):
        await store.save_user(user("mallory", role="root"))
    with pytest.raises(StoreUnavailable):
        await store.add_api_key(api_key("k1", role="superuser"))
    assert await store.users() == []
    assert await store.api_keys() == []
    for role in ("viewer", "trader", "admin"):
        await store.save_user(user(role, role=role))
    assert [u.role for u in await store.users()] == ["admin", "trader", "viewer"]


async def test_refresh_tokens_round_trip_and_are_revoked_once(store: Store):
    await store.save_user(user("alice"))
    issued = token("h1", expires_ns=T0 + 7)
    await store.add_refresh_token(issued)
    assert await store.refresh_token("h1") == issued
    assert await store.refresh_token("h2") is None
    assert await store.revoke_refresh_token("h1", T0 + 5) is True
    assert await store.revoke_refresh_token("h1", T0 + 6) is False
    assert await store.revoke_refresh_token("h2", T0 + 6) is False
    assert await store.refresh_token("h1") == msgspec.structs.replace(issued, revoked_ns=T0 + 5)


async def test_of_concurrent_revocations_of_one_token_exactly_one_wins(store: Store):
    await store.save_user(user("alice"))
    await store.add_refresh_token(token("h1"))
    won = await asyncio.gather(*(store.revoke_refresh_token("h1", T0 + n) for n in range(8)))
    assert won.count(True) == 1


async def test_revoking_a_users_tokens_counts_only_their_live_ones(store: Store):
    await store.save_user(user("alice"))
    await store.save_user(user("bob"))
    for token_hash in ("a1", "a2", "a3"):
        await store.add_refresh_token(token(token_hash))
    await store.add_refresh_token(token("b1", "bob"))
    await store.revoke_refresh_token("a3", T0 + 1)
    assert await store.revoke_refresh_tokens_of("alice", T0 + 2) == 2
    assert await store.revoke_refresh_tokens_of("alice", T0 + 3) == 0
    assert await store.revoke_refresh_tokens_of("nobody", T0 + 3) == 0
    revoked = {h: (await store.refresh_token(h)) for h in ("a1", "a2", "a3", "b1")}
    assert {h: t.revoked_ns if t else "missing" for h, t in revoked.items()} == {
        "a1": T0 + 2,
        "a2": T0 + 2,
        "a3": T0 + 1,
        "b1": None,
    }


async def test_a_refresh_token_of_an_unknown_user_is_refused(store: Store):
    with pytest.raises(StoreUnavailable):
        await store.add_refresh_token(token("h1", "ghost"))
    assert await store.refresh_token("h1") is None


async def test_a_projection_reset_keeps_the_credentials(store: Store):
    await store.save_user(user("alice"))
    await store.add_api_key(api_key("k1"))
    await store.add_refresh_token(token("h1"))
    await store.reset_projection()
    assert await store.users() == [user("alice")]
    assert await store.api_keys() == [api_key("k1")]
    assert await store.refresh_token("h1") == token("h1")


async def test_adding_a_user_never_overwrites_one(store: Store):
    assert await store.add_user(user("carol", role="viewer"))
    assert not await store.add_user(user("carol", role="admin", password_hash="other"))
    kept = await store.user("carol")
    assert kept is not None and kept.role == "viewer" and kept.password_hash != "other"


async def test_expired_and_revoked_refresh_tokens_are_purged(store: Store):
    await store.save_user(user("alice"))
    hour = 3600 * 10**9
    await store.add_refresh_token(token("expired", expires_ns=T0 + 10))
    await store.add_refresh_token(token("revoked"))
    await store.add_refresh_token(token("live", expires_ns=T0 + 2 * hour))
    assert await store.revoke_refresh_token("revoked", T0 + 20)
    assert await store.purge_refresh_tokens(T0 + hour) == 2
    assert await store.refresh_token("expired") is None
    assert await store.refresh_token("revoked") is None
    assert await store.refresh_token("live") is not None
    assert await store.purge_refresh_tokens(T0 + hour) == 0
