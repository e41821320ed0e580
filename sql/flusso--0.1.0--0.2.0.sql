-- flusso 0.1.0 -> 0.2.0: reindex that can wait for the swap, pause and
-- resume, Prometheus metrics, lag in seconds, build progress and estimates.

\echo Use "ALTER EXTENSION flusso UPDATE TO '0.2.0'" to load this file. \quit

-- the definition a running build uses (a definition changed mid-build
-- restarts the build)
ALTER TABLE @extschema@.index_state ADD COLUMN build_definition jsonb;

-- status: lag in seconds, and the max_lag_bytes warning
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
    OUT lag_warning boolean)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_status';
CREATE VIEW @extschema@.status AS SELECT * FROM @extschema@._status();
COMMENT ON VIEW @extschema@.status IS 'flusso sync workers: phase, counters, lag, last error, OpenSearch reachability';

-- index_status: lag in seconds, estimated time left for a build
DROP VIEW @extschema@.index_status;
DROP FUNCTION @extschema@._index_status();
CREATE FUNCTION @extschema@._index_status(
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
    OUT last_error_at timestamptz,
    OUT lag_seconds double precision,
    OUT backfill_eta interval)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_index_status';
CREATE VIEW @extschema@.index_status AS SELECT * FROM @extschema@._index_status();
COMMENT ON VIEW @extschema@.index_status IS 'flusso indexes: state, generations, documents written, errors, build progress, lag';

REVOKE ALL ON FUNCTION @extschema@._status(), @extschema@._index_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._status(), @extschema@._index_status() TO pg_monitor;
REVOKE ALL ON @extschema@.status, @extschema@.index_status FROM PUBLIC;
GRANT SELECT ON @extschema@.status, @extschema@.index_status TO pg_monitor;

-- metrics for Prometheus (through any SQL exporter)
CREATE FUNCTION @extschema@.metrics()
RETURNS text
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_metrics';
COMMENT ON FUNCTION @extschema@.metrics() IS 'every status figure in the Prometheus text exposition format';
REVOKE ALL ON FUNCTION @extschema@.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.metrics() TO pg_monitor;

-- reindex that can wait for the alias swap
DROP FUNCTION @extschema@.reindex(text);
CREATE FUNCTION @extschema@.reindex(name text, wait boolean DEFAULT false)
RETURNS void
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'flusso_reindex';
COMMENT ON FUNCTION @extschema@.reindex(text, boolean) IS
    'rebuild an index into a new generation and swap its alias; with wait, return after the swap';

-- pause and resume: paused changes are applied on resume (by a rebuild)
CREATE FUNCTION @extschema@.pause(name text)
RETURNS void
LANGUAGE sql VOLATILE STRICT
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT FROM @extschema@.definitions d WHERE d.name = $1)
                THEN @extschema@._no_such_index($1) END;
    INSERT INTO @extschema@.requests (name, action) VALUES ($1, 'pause');
$$;
COMMENT ON FUNCTION @extschema@.pause(text) IS 'stop sending changes of an index; resume applies them';

CREATE FUNCTION @extschema@.resume(name text)
RETURNS void
LANGUAGE sql VOLATILE STRICT
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT FROM @extschema@.definitions d WHERE d.name = $1)
                THEN @extschema@._no_such_index($1) END;
    INSERT INTO @extschema@.requests (name, action) VALUES ($1, 'resume');
$$;
COMMENT ON FUNCTION @extschema@.resume(text) IS 'resume a paused or stopped index: it is rebuilt with no downtime';

-- Privileges.  Changing what is synced, and reading definitions, documents
-- and dead letters, is for superusers and the extension owner unless
-- granted (the README shows the GRANTs).  Status and metrics are for
-- pg_monitor; wait_synced is for everybody.
REVOKE ALL ON FUNCTION
    @extschema@.create_index(text, jsonb),
    @extschema@.alter_index(text, jsonb),
    @extschema@.drop_index(text, boolean),
    @extschema@.reindex(text, boolean),
    @extschema@.pause(text),
    @extschema@.resume(text),
    @extschema@.retry_dead_letters(text),
    @extschema@.preview(text, text),
    @extschema@.explain(text),
    @extschema@.index_body(text),
    @extschema@.document_ids(text),
    @extschema@.documents(text),
    @extschema@.affected_documents(text, regclass, jsonb, jsonb)
FROM PUBLIC;
ALTER FUNCTION @extschema@.pause(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.resume(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.retry_dead_letters(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON @extschema@.definitions, @extschema@.indexes, @extschema@.dead_letters,
    @extschema@.index_state, @extschema@.requests FROM PUBLIC;
