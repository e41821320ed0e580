-- flusso 0.1.0: keep OpenSearch indexes in sync with PostgreSQL tables.

\echo Use "CREATE EXTENSION flusso" to load this file. \quit

-- Every object below says who may use it; the schema itself is open.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

------------------------------------------------------------------------
-- Status: set-returning functions over shared memory, behind views.
------------------------------------------------------------------------

CREATE FUNCTION _status(
    OUT database text,
    OUT phase text,
    OUT activity text,
    OUT started_at timestamptz,
    OUT uptime interval,
    OUT changes_captured bigint,
    OUT changes_committed bigint,
    OUT changes_in_flight bigint,
    OUT documents_built bigint,
    OUT batches bigint,
    OUT slot_lag_bytes bigint,
    OUT errors bigint,
    OUT last_error text,
    OUT last_error_at timestamptz,
    OUT worker_pid integer,
    OUT synced_lsn pg_lsn,
    OUT bulk_latency_ms double precision,
    OUT opensearch text,
    OUT opensearch_version text,
    OUT opensearch_error text,
    OUT opensearch_checked_at timestamptz,
    OUT opensearch_tls_verify boolean)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_status';

CREATE FUNCTION _index_status(
    OUT database text,
    OUT name text,
    OUT state text,
    OUT generation integer,
    OUT building_generation integer,
    OUT documents_upserted bigint,
    OUT documents_deleted bigint,
    OUT errors bigint,
    OUT backfill_rows_done bigint,
    OUT backfill_rows_total bigint,
    OUT backfill_percent double precision,
    OUT last_error text,
    OUT last_error_at timestamptz)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_index_status';

CREATE VIEW status AS SELECT * FROM _status();
COMMENT ON VIEW status IS 'flusso sync workers: phase, counters, lag, last error, OpenSearch reachability';

CREATE VIEW index_status AS SELECT * FROM _index_status();
COMMENT ON VIEW index_status IS 'flusso indexes: state, documents written, errors, backfill progress';

REVOKE ALL ON FUNCTION _status(), _index_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _status(), _index_status() TO pg_monitor;
REVOKE ALL ON status, index_status FROM PUBLIC;
GRANT SELECT ON status, index_status TO pg_monitor;

------------------------------------------------------------------------
-- Settings
------------------------------------------------------------------------

CREATE FUNCTION check_setting(name text, value text)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_check_setting';
COMMENT ON FUNCTION check_setting(text, text) IS
    'validate a value for a flusso.* setting as a reload would, without applying it';
REVOKE ALL ON FUNCTION check_setting(text, text) FROM PUBLIC;

------------------------------------------------------------------------
-- Index definitions
------------------------------------------------------------------------

CREATE TABLE definitions (
    name text PRIMARY KEY,
    definition jsonb NOT NULL,
    root_table text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE definitions IS 'flusso index definitions (kept by pg_dump)';
SELECT pg_catalog.pg_extension_config_dump('definitions', '');

-- Requests to the sync worker (drop, reindex, ...), handled in order and
-- then deleted by it.
CREATE TABLE requests (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    action text NOT NULL CHECK (action IN ('drop', 'drop_remote', 'reindex', 'pause',
                                           'resume', 'retry_dead_letters')),
    requested_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE requests IS 'requests to the flusso sync worker, deleted once handled';

-- The sync worker's durable progress per index (not dumped: a restored
-- database starts its indexes afresh).
CREATE TABLE index_state (
    name text PRIMARY KEY,
    live_definition jsonb,
    live_generation integer NOT NULL DEFAULT 0,
    build_generation integer NOT NULL DEFAULT 0,
    build_version pg_lsn,
    build_cursor text[],
    build_done bigint NOT NULL DEFAULT 0,
    build_total bigint NOT NULL DEFAULT 0,
    paused boolean NOT NULL DEFAULT false,
    stopped boolean NOT NULL DEFAULT false,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE index_state IS 'flusso sync worker progress per index';

-- Documents OpenSearch rejected under the dead_letter failure policy.
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    index_name text NOT NULL,
    document_id text NOT NULL,
    generation integer,
    error text NOT NULL,
    body text,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON dead_letters (index_name);
COMMENT ON TABLE dead_letters IS 'documents OpenSearch rejected, kept under the dead_letter policy';

CREATE VIEW indexes AS
    SELECT name, root_table, definition, created_at, updated_at
      FROM definitions;
COMMENT ON VIEW indexes IS 'flusso indexes: name, root table, definition';

CREATE FUNCTION create_index(name text, definition jsonb)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'flusso_create_index';
COMMENT ON FUNCTION create_index(text, jsonb) IS 'validate and store an index definition; the worker backfills it';

CREATE FUNCTION alter_index(name text, definition jsonb)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'flusso_alter_index';
COMMENT ON FUNCTION alter_index(text, jsonb) IS 'replace an index definition';

CREATE FUNCTION drop_index(name text, drop_remote boolean DEFAULT false)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'flusso_drop_index';
COMMENT ON FUNCTION drop_index(text, boolean) IS 'stop syncing an index; drop it in OpenSearch too when drop_remote';

CREATE FUNCTION preview(name text, id text)
RETURNS json
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'flusso_preview';
COMMENT ON FUNCTION preview(text, text) IS 'the document that would be sent for one root key (its _id), or NULL';

CREATE FUNCTION explain(name text)
RETURNS text
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'flusso_explain';
COMMENT ON FUNCTION explain(text) IS 'the SQL flusso generates for an index';

CREATE FUNCTION index_body(name text)
RETURNS jsonb
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'flusso_index_body_sql';
COMMENT ON FUNCTION index_body(text) IS 'the settings and mappings a new OpenSearch index of this definition gets';

CREATE FUNCTION document_ids(name text)
RETURNS SETOF text
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'flusso_document_ids';
COMMENT ON FUNCTION document_ids(text) IS 'the _id of every document the index should hold';

CREATE FUNCTION affected_documents(name text, tbl regclass, old_row jsonb, new_row jsonb)
RETURNS SETOF text
LANGUAGE C STABLE
AS 'MODULE_PATHNAME', 'flusso_affected_documents';
COMMENT ON FUNCTION affected_documents(text, regclass, jsonb, jsonb) IS
    'the _id of every document a change to a row of tbl affects, given its old and new image';

------------------------------------------------------------------------
-- Syncing
------------------------------------------------------------------------

CREATE FUNCTION wait_synced(timeout interval DEFAULT '30 s')
RETURNS boolean
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'flusso_wait_synced';
COMMENT ON FUNCTION wait_synced(interval) IS
    'wait until everything committed before the call is acknowledged by OpenSearch; false on timeout';

CREATE FUNCTION reindex(name text)
RETURNS void
LANGUAGE sql VOLATILE STRICT
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT FROM @extschema@.definitions d WHERE d.name = $1)
                THEN @extschema@._no_such_index($1) END;
    INSERT INTO @extschema@.requests (name, action) VALUES ($1, 'reindex');
$$;
COMMENT ON FUNCTION reindex(text) IS 'rebuild an index into a new generation and swap its alias';

CREATE FUNCTION retry_dead_letters(name text)
RETURNS bigint
LANGUAGE sql VOLATILE STRICT
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT FROM @extschema@.definitions d WHERE d.name = $1)
                THEN @extschema@._no_such_index($1) END;
    INSERT INTO @extschema@.requests (name, action) VALUES ($1, 'retry_dead_letters');
    SELECT count(*) FROM @extschema@.dead_letters WHERE index_name = $1;
$$;
COMMENT ON FUNCTION retry_dead_letters(text) IS
    'rebuild and send again the documents kept in dead_letters for an index';

CREATE FUNCTION _no_such_index(name text)
RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'flusso_no_such_index';

CREATE FUNCTION documents(name text, OUT id text, OUT document json)
RETURNS SETOF record
LANGUAGE C STABLE STRICT
AS 'MODULE_PATHNAME', 'flusso_documents';
COMMENT ON FUNCTION documents(text) IS 'every document of the index as the backfill builds it, in key order';
