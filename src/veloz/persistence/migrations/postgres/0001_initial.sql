-- The history store's first schema. Money and quantities are NUMERIC (exact, never
-- float); every time is kept twice: as TIMESTAMPTZ for people and the runbooks' SQL
-- (`created_at > NOW() - INTERVAL '1 hour'`) and as integer nanoseconds, exactly.

CREATE TABLE projector_state (
    id          SMALLINT PRIMARY KEY CHECK (id = 1),
    last_seq    BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO projector_state (id, last_seq) VALUES (1, 0);

CREATE TABLE orders (
    client_order_id  TEXT PRIMARY KEY,
    venue_order_id   TEXT,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    type             TEXT NOT NULL,
    tif              TEXT NOT NULL,
    qty              NUMERIC NOT NULL,
    price            NUMERIC,
    status           TEXT NOT NULL,
    executed_qty     NUMERIC NOT NULL,
    cum_quote        NUMERIC NOT NULL,
    avg_price        NUMERIC,
    fee              NUMERIC NOT NULL,
    fee_asset        TEXT,
    reason           TEXT NOT NULL,
    strategy_id      TEXT,
    reference_price  NUMERIC,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    created_ns       BIGINT NOT NULL,
    updated_ns       BIGINT NOT NULL,
    journal_seq      BIGINT NOT NULL
);
CREATE INDEX orders_created ON orders (created_ns DESC, client_order_id DESC);
CREATE INDEX orders_created_at ON orders (created_at);
CREATE INDEX orders_open ON orders (status)
    WHERE status NOT IN ('FILLED', 'CANCELLED', 'REJECTED', 'EXPIRED');

CREATE TABLE fills (
    trade_id         TEXT NOT NULL,
    client_order_id  TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL,
    qty              NUMERIC NOT NULL,
    price            NUMERIC NOT NULL,
    fee              NUMERIC NOT NULL,
    fee_asset        TEXT NOT NULL,
    liquidity        TEXT NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    ts_ns            BIGINT NOT NULL,
    journal_seq      BIGINT NOT NULL,
    -- Venues number trades per symbol (Binance does): the id alone may repeat.
    PRIMARY KEY (symbol, trade_id)
);
CREATE INDEX fills_ts ON fills (ts_ns DESC, trade_id DESC);
CREATE INDEX fills_order ON fills (client_order_id);
-- The runbooks and dashboards say "trades" as often as "fills".
CREATE VIEW trades AS SELECT * FROM fills;

CREATE TABLE mode_changes (
    journal_seq  BIGINT PRIMARY KEY,
    ts           TIMESTAMPTZ NOT NULL,
    ts_ns        BIGINT NOT NULL,
    mode         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    actor        TEXT NOT NULL
);

CREATE TABLE equity (
    ts        TIMESTAMPTZ NOT NULL,
    ts_ns     BIGINT PRIMARY KEY,
    equity    NUMERIC NOT NULL,
    drawdown  NUMERIC NOT NULL
);

CREATE TABLE positions (
    ts              TIMESTAMPTZ NOT NULL,
    ts_ns           BIGINT NOT NULL,
    symbol          TEXT NOT NULL,
    qty             NUMERIC NOT NULL,
    avg_price       NUMERIC,
    mark_price      NUMERIC,
    unrealized_pnl  NUMERIC NOT NULL,
    realized_pnl    NUMERIC NOT NULL,
    fees            NUMERIC NOT NULL,
    PRIMARY KEY (ts_ns, symbol)
);

CREATE TABLE balances (
    ts      TIMESTAMPTZ NOT NULL,
    ts_ns   BIGINT NOT NULL,
    asset   TEXT NOT NULL,
    free    NUMERIC NOT NULL,
    locked  NUMERIC NOT NULL,
    PRIMARY KEY (ts_ns, asset)
);

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    ts          TIMESTAMPTZ NOT NULL,
    ts_ns       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    params      JSONB NOT NULL,
    result      TEXT NOT NULL,
    client_ip   TEXT NOT NULL,
    request_id  TEXT NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts_ns DESC);
