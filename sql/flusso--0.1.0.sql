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
