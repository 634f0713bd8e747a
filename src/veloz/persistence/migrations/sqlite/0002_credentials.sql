-- Users, API keys and refresh tokens (the credential store). No secret is kept: a
-- password as its KDF string, a key and a token as the SHA-256 of what the client holds.
-- Times are integer nanoseconds, exactly. Users and keys also keep when they were made
-- (and a user when it last changed) as ISO-8601 UTC text for people; the other times
-- (a token's, expiry, use, revocation) are only compared by the code.

CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
    password_hash  TEXT NOT NULL,
    -- SQLite has no boolean: 0 or 1, and nothing else.
    disabled       INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    created_ns     INTEGER NOT NULL,
    updated_ns     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'trader', 'admin')),
    -- Unique: a request presents the secret, and its hash must name one key.
    key_hash      TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    created_ns    INTEGER NOT NULL,
    last_used_ns  INTEGER,
    expires_ns    INTEGER,
    -- A JSON array of CIDRs; [] allows any address.
    allowed_ips   TEXT NOT NULL,
    revoked_ns    INTEGER
);

-- Foreign keys are enforced: the store turns them on for every connection.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    issued_ns   INTEGER NOT NULL,
    expires_ns  INTEGER NOT NULL,
    revoked_ns  INTEGER
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
