-- Users, API keys and refresh tokens (the credential store). No secret is kept: a
-- password as its KDF string, a key and a token as the SHA-256 of what the client holds.
-- Times are integer nanoseconds, exactly. Users and keys also keep when they were made
-- (and a user when it last changed) as TIMESTAMPTZ for people; the other times
-- (a token's, expiry, use, revocation) are only compared by the code.

CREATE TABLE users (
    -- Byte order, as SQLite sorts: the users come back in the same order on both,
    -- whatever the database's default collation.
    user_id        TEXT COLLATE "C" PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    created_ns     BIGINT NOT NULL,
    updated_ns     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    -- Byte order, as for user ids: it breaks ties between keys created together.
    key_id        TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
    -- Unique: a request presents the secret, and its hash must name one key.
    key_hash      TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    created_ns    BIGINT NOT NULL,
    last_used_ns  BIGINT,
    expires_ns    BIGINT,
    -- A JSON array of CIDRs, as text (the same in both dialects); [] allows any address.
    allowed_ips   TEXT NOT NULL,
    revoked_ns    BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    issued_ns   BIGINT NOT NULL,
    expires_ns  BIGINT NOT NULL,
    revoked_ns  BIGINT
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
