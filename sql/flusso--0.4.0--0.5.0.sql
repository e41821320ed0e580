-- flusso 0.4.0 -> 0.5.0: which search engine answers.  The worker reads
-- GET / and shows the engine (opensearch, elasticsearch) and its version;
-- an engine flusso does not support is refused, shown as "unsupported".

\echo Use "ALTER EXTENSION flusso UPDATE TO '0.5.0'" to load this file. \quit

-- status: search_engine and search_version, after 0.4.0's columns
DROP VIEW @extschema@.status;
DROP FUNCTION @extschema@._status();
CREATE FUNCTION @extschema@._status(
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
    OUT opensearch_tls_verify boolean,
    OUT lag_seconds double precision,
    OUT lag_warning boolean,
    OUT healthy boolean,
    OUT search_engine text,
    OUT search_version text)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_status';
CREATE VIEW @extschema@.status AS SELECT * FROM @extschema@._status();
COMMENT ON VIEW @extschema@.status IS
    'flusso sync workers: phase, counters, lag, last error, the search engine (which, what version, reachable or refused), whether all is well';
REVOKE ALL ON FUNCTION @extschema@._status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._status() TO pg_monitor;
REVOKE ALL ON @extschema@.status FROM PUBLIC;
GRANT SELECT ON @extschema@.status TO pg_monitor;
COMMENT ON COLUMN @extschema@.status.search_engine IS
    'the engine that answered GET /: opensearch or elasticsearch (NULL until one answered)';
COMMENT ON COLUMN @extschema@.status.search_version IS
    'its version.number; column opensearch says "unsupported" when flusso refuses it';
