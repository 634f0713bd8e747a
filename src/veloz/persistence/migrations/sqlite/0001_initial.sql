-- The history store's first schema. Money and quantities are TEXT holding the exact
-- decimal (SQLite has no exact decimal type; REAL would round). Every time is kept twice:
-- as ISO-8601 UTC text for people and as integer nanoseconds, exactly.

CREATE TABLE projector_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq    INTEGER NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO projector_state (id, last_seq) VALUES (1, 0);

CREATE TABLE orders (
    client_order_id  TEXT PRIMARY KEY,
    venue_order_id   TEXT,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    type             TEXT NOT NULL,
    tif              TEXT NOT NULL,
    qty              TEXT NOT NULL,
    price            TEXT,
    status           TEXT NOT NULL,
    executed_qty     TEXT NOT NULL,
    cum_quote        TEXT NOT NULL,
    avg_price        TEXT,
    fee              TEXT NOT NULL,
    fee_asset        TEXT,
    reason           TEXT NOT NULL,
    strategy_id      TEXT,
    reference_price  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    created_ns       INTEGER NOT NULL,
    updated_ns       INTEGER NOT NULL,
    journal_seq      INTEGER NOT NULL
);
CREATE INDEX orders_created ON orders (created_ns DESC, client_order_id DESC);
CREATE INDEX orders_status ON orders (status);

CREATE TABLE fills (
    trade_id         TEXT NOT NULL,
    client_order_id  TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    qty              TEXT NOT NULL,
    price            TEXT NOT NULL,
    fee              TEXT NOT NULL,
    fee_asset        TEXT NOT NULL,
    liquidity        TEXT NOT NULL,
    ts               TEXT NOT NULL,
    ts_ns            INTEGER NOT NULL,
    journal_seq      INTEGER NOT NULL,
    -- Venues number trades per symbol (Binance does): the id alone may repeat.
    PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX fills_ts ON fills (ts_ns DESC, trade_id DESC);
CREATE INDEX fills_order ON fills (client_order_id);
CREATE VIEW trades AS SELECT * FROM fills;

CREATE TABLE mode_changes (
    journal_seq  INTEGER PRIMARY KEY,
    ts           TEXT NOT NULL,
    ts_ns        INTEGER NOT NULL,
    mode         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL
);

CREATE TABLE equity (
    ts        TEXT NOT NULL,
    ts_ns     INTEGER PRIMARY KEY,
    equity    TEXT NOT NULL,
    drawdown  TEXT NOT NULL
);

CREATE TABLE positions (
    ts              TEXT NOT NULL,
    ts_ns           INTEGER NOT NULL,
    symbol          TEXT NOT NULL,
    qty             TEXT NOT NULL,
    avg_price       TEXT,
    mark_price      TEXT,
    unrealized_pnl  TEXT NOT NULL,
    realized_pnl    TEXT NOT NULL,
    fees            TEXT NOT NULL,
    PRIMARY KEY (ts_ns, symbol)
);

CREATE TABLE balances (
    ts      TEXT NOT NULL,
    ts_ns   INTEGER NOT NULL,
    asset   TEXT NOT NULL,
    free    TEXT NOT NULL,
    locked  TEXT NOT NULL,
    PRIMARY KEY (ts_ns, asset)
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          TEXT NOT NULL,
    ts_ns       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    params      TEXT NOT NULL,
    result      TEXT NOT NULL,
    client_ip   TEXT NOT NULL,
    request_id  TEXT NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts_ns DESC);
