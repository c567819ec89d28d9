-- The suppression list: one table, hash-partitioned by account (the distribution key
-- everywhere, so the same schema runs on Citus), plus the import job queue.
CREATE SCHEMA IF NOT EXISTS suppression;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- subaccount_id 0 is the primary account; list_id '' is the account-level (no list) entry.
-- The key is (account, subaccount, list, recipient, type); its columns are ordered with the
-- recipient second so that every lookup (one recipient, every list and subaccount in scope)
-- is one range scan of the primary key.
-- id: a tie-breaker for keyset pagination on updated (unique by the sequence).
CREATE SEQUENCE suppression.entry_ids;

CREATE TABLE suppression.entries (
    account_id    bigint      NOT NULL,
    recipient     text        NOT NULL,
    subaccount_id bigint      NOT NULL DEFAULT 0,
    list_id       text        NOT NULL DEFAULT '',
    type          text        NOT NULL CHECK (type IN ('transactional', 'non_transactional')),
    id            bigint      NOT NULL DEFAULT nextval('suppression.entry_ids'),
    domain        text        NOT NULL,
    source        text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, recipient, subaccount_id, list_id, type)
) PARTITION BY HASH (account_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE suppression.entries_p%s PARTITION OF suppression.entries '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;

-- One index per search filter, each ending in the sort key (updated, id) so that a filtered
-- page is an index range scan in order, and a cursor page deep in the list starts where the
-- previous one stopped.
CREATE INDEX entries_updated ON suppression.entries (account_id, updated, id);
CREATE INDEX entries_domain ON suppression.entries (account_id, domain, updated, id);
CREATE INDEX entries_source ON suppression.entries (account_id, source, updated, id);
CREATE INDEX entries_list ON suppression.entries (account_id, list_id, updated, id);
-- Substring and exact description search.
CREATE INDEX entries_description ON suppression.entries
    USING gin (description gin_trgm_ops) WHERE description <> '';

-- Import jobs: the request body is kept in chunks in PostgreSQL (any list or worker process
-- can reach it, whatever the node), then workers take queued jobs with FOR UPDATE SKIP LOCKED.
CREATE TABLE suppression.import_jobs (
    id            bigserial   PRIMARY KEY,
    account_id    bigint      NOT NULL,
    subaccount_id bigint      NOT NULL DEFAULT 0,
    format        text        NOT NULL CHECK (format IN ('csv', 'ndjson')),
    state         text        NOT NULL DEFAULT 'uploading'
                  CHECK (state IN ('uploading', 'queued', 'running', 'done', 'failed')),
    bytes_total   bigint      NOT NULL DEFAULT 0,
    bytes_read    bigint      NOT NULL DEFAULT 0,
    rows_read     bigint      NOT NULL DEFAULT 0,
    rows_written  bigint      NOT NULL DEFAULT 0,
    rows_rejected bigint      NOT NULL DEFAULT 0,
    error         text,
    attempts      int         NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    created       timestamptz NOT NULL DEFAULT now(),
    queued        timestamptz,
    started       timestamptz,
    finished      timestamptz
);
CREATE INDEX import_jobs_account ON suppression.import_jobs (account_id, id);
CREATE INDEX import_jobs_pending ON suppression.import_jobs (id)
    WHERE state IN ('queued', 'running');

CREATE TABLE suppression.import_chunks (
    job_id bigint NOT NULL REFERENCES suppression.import_jobs (id) ON DELETE CASCADE,
    seq    int    NOT NULL,
    data   bytea  NOT NULL,
    PRIMARY KEY (job_id, seq)
);
-- The body is CSV or NDJSON already: compressing it again costs more than it saves.
ALTER TABLE suppression.import_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE suppression.import_rejects (
    job_id bigint NOT NULL REFERENCES suppression.import_jobs (id) ON DELETE CASCADE,
    line   bigint NOT NULL,
    reason text   NOT NULL,
    raw    text   NOT NULL,
    PRIMARY KEY (job_id, line)
);

-- A CSV cell that a spreadsheet would run as a formula gets a leading apostrophe.
CREATE FUNCTION suppression.csv_safe(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN left(value, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
                      THEN '''' || value ELSE value END $$;
