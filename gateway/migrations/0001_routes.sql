-- The route registry. One row per route; the spec is the validated route with its defaults
-- filled in, exactly as GET /table serves it.
CREATE SCHEMA IF NOT EXISTS gateway;

CREATE TABLE gateway.routes (
    name       text        PRIMARY KEY,
    spec       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The table's version: one row, raised in the same transaction as every change. Writers lock
-- this row first (SELECT ... FOR UPDATE), which serialises them, so the conflict checks each
-- one makes see every change committed before it.
CREATE TABLE gateway.table_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO gateway.table_version (singleton, version) VALUES (true, 0);

-- One row per change: who, when, what, and the route before and after.
CREATE TABLE gateway.route_audit (
    id      bigserial   PRIMARY KEY,
    version bigint      NOT NULL,
    route   text        NOT NULL,
    action  text        NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    actor   text        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now(),
    before  jsonb,
    after   jsonb
);
CREATE INDEX route_audit_route ON gateway.route_audit (route, id);
