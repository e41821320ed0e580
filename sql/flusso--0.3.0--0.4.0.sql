-- flusso 0.3.0 -> 0.4.0: every index has an owner, with whose rights its
-- statements run; definitions are stored with every name resolved; each
-- role sees only the definitions and dead letters of its own indexes.

\echo Use "ALTER EXTENSION flusso UPDATE TO '0.4.0'" to load this file. \quit

------------------------------------------------------------------------
-- Owners.  Existing indexes go to the extension's owner; a WARNING names
-- each, with the command that hands it to its real owner.
------------------------------------------------------------------------

ALTER TABLE @extschema@.definitions ADD COLUMN owner regrole;
UPDATE @extschema@.definitions
   SET owner = (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'flusso')::pg_catalog.regrole;
ALTER TABLE @extschema@.definitions ALTER COLUMN owner SET NOT NULL;
COMMENT ON COLUMN @extschema@.definitions.owner IS
    'the role whose rights the index''s statements run with; only it, its members and superusers manage the index';

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT d.name, d.owner FROM @extschema@.definitions d ORDER BY d.name LOOP
        RAISE WARNING 'flusso index "%" now belongs to role "%", the extension''s owner', r.name, r.owner
            USING DETAIL = 'From flusso 0.4.0 on every index has an owner, and its filters and expressions run with the owner''s rights.',
                  HINT = pg_catalog.format('To hand it to the role it belongs to, a superuser runs: SELECT flusso.alter_index_owner(%L, ''the_role'');', r.name);
    END LOOP;
END
$$;

CREATE FUNCTION @extschema@.alter_index_owner(name text, new_owner regrole)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_alter_index_owner';
COMMENT ON FUNCTION @extschema@.alter_index_owner(text, regrole) IS
    'hand an index to another role (superusers only); its statements then run with that role''s rights';
REVOKE ALL ON FUNCTION @extschema@.alter_index_owner(text, regrole) FROM PUBLIC;

-- Each role sees the indexes it may manage (superusers see all).
CREATE OR REPLACE VIEW @extschema@.indexes WITH (security_barrier) AS
    SELECT d.name, d.root_table, d.definition, d.created_at, d.updated_at, d.owner
      FROM @extschema@.definitions d
     WHERE pg_catalog.pg_has_role(d.owner, 'USAGE');
COMMENT ON VIEW @extschema@.indexes IS
    'flusso indexes the current role may manage: name, root table, definition, owner';

-- Dead letters carry the owner of their index; each role reads its own.
ALTER TABLE @extschema@.dead_letters ADD COLUMN owner regrole;
UPDATE @extschema@.dead_letters l
   SET owner = COALESCE((SELECT d.owner FROM @extschema@.definitions d WHERE d.name = l.index_name),
                        (SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'flusso')::pg_catalog.regrole);
ALTER TABLE @extschema@.dead_letters ALTER COLUMN owner SET NOT NULL;
ALTER TABLE @extschema@.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON @extschema@.dead_letters FOR SELECT
    USING (pg_catalog.pg_has_role(owner, 'USAGE'));

------------------------------------------------------------------------
-- The management functions check ownership themselves (C), instead of
-- running as their definer.  CREATE OR REPLACE keeps existing grants.
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.pause(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_pause';

CREATE OR REPLACE FUNCTION @extschema@.resume(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_resume';

CREATE OR REPLACE FUNCTION @extschema@.retry_dead_letters(name text)
RETURNS bigint
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_retry_dead_letters';

------------------------------------------------------------------------
-- Status: the owner of each index, and what a waiting index waits for.
------------------------------------------------------------------------

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
    OUT backfill_eta interval,
    OUT owner name,
    OUT waiting_for text,
    OUT waiting_since timestamptz,
    OUT error_active boolean)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_index_status';
CREATE VIEW @extschema@.index_status AS SELECT * FROM @extschema@._index_status();
COMMENT ON VIEW @extschema@.index_status IS
    'flusso indexes: state, generations, documents written, errors, build progress, lag, owner, what a waiting index waits for, whether its last error still applies';
REVOKE ALL ON FUNCTION @extschema@._index_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._index_status() TO pg_monitor;
REVOKE ALL ON @extschema@.index_status FROM PUBLIC;
GRANT SELECT ON @extschema@.index_status TO pg_monitor;

-- status: one word for "all is well"
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
    OUT healthy boolean)
RETURNS SETOF record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_status';
CREATE VIEW @extschema@.status AS SELECT * FROM @extschema@._status();
COMMENT ON VIEW @extschema@.status IS
    'flusso sync workers: phase, counters, lag, last error, OpenSearch reachability, whether all is well';
REVOKE ALL ON FUNCTION @extschema@._status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._status() TO pg_monitor;
REVOKE ALL ON @extschema@.status FROM PUBLIC;
GRANT SELECT ON @extschema@.status TO pg_monitor;

------------------------------------------------------------------------
-- Definitions are stored with every name resolved: tables schema-
-- qualified, expressions as PostgreSQL deparses them.  Those stored by
-- earlier versions were read under the sync worker's search_path, so they
-- are resolved under the server's default one.
------------------------------------------------------------------------

CREATE FUNCTION @extschema@._resolve_stored_definitions()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_resolve_stored_definitions';
REVOKE ALL ON FUNCTION @extschema@._resolve_stored_definitions() FROM PUBLIC;
SELECT @extschema@._resolve_stored_definitions();

------------------------------------------------------------------------
-- Say at once what would keep flusso from syncing this database
-- (wal_level, shared_preload_libraries, flusso.database).
------------------------------------------------------------------------

CREATE FUNCTION @extschema@._check_environment()
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'flusso_check_environment';
REVOKE ALL ON FUNCTION @extschema@._check_environment() FROM PUBLIC;
SELECT @extschema@._check_environment();

------------------------------------------------------------------------
-- wait_synced(refresh => true): and searchable, not only acknowledged.
------------------------------------------------------------------------

DROP FUNCTION @extschema@.wait_synced(interval);
CREATE FUNCTION @extschema@.wait_synced(timeout interval DEFAULT '30 s', refresh boolean DEFAULT false)
RETURNS boolean
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'flusso_wait_synced';
COMMENT ON FUNCTION @extschema@.wait_synced(interval, boolean) IS
    'wait until everything committed before the call is acknowledged by OpenSearch (and, with refresh, searchable); false on timeout';

------------------------------------------------------------------------
-- Checking an index: verify() compares every document in OpenSearch with
-- what PostgreSQL would build now; explain_document() says, for one _id,
-- what flusso would do and why.  Like preview(), for those who may manage
-- the index, and not for PUBLIC.
------------------------------------------------------------------------

CREATE FUNCTION @extschema@.verify(name text, OUT id text, OUT problem text)
RETURNS SETOF record
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'flusso_verify';
COMMENT ON FUNCTION @extschema@.verify(text) IS
    'every document that differs between OpenSearch and what PostgreSQL would build now: missing, stale, extra or unbuildable';
REVOKE ALL ON FUNCTION @extschema@.verify(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.verify_summary(name text,
    OUT documents bigint,
    OUT in_opensearch bigint,
    OUT missing bigint,
    OUT stale bigint,
    OUT extra bigint,
    OUT unbuildable bigint,
    OUT elapsed interval)
RETURNS record
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'flusso_verify_summary';
COMMENT ON FUNCTION @extschema@.verify_summary(text) IS
    'what verify() finds, counted: documents PostgreSQL builds, ids in OpenSearch, missing, stale, extra, unbuildable, time taken';
REVOKE ALL ON FUNCTION @extschema@.verify_summary(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.explain_document(name text, id text)
RETURNS jsonb
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'flusso_explain_document';
COMMENT ON FUNCTION @extschema@.explain_document(text, text) IS
    'what flusso would do with one _id and why: the row, the filter, the document, OpenSearch''s copy, the dead letter, the index''s state, a verdict';
REVOKE ALL ON FUNCTION @extschema@.explain_document(text, text) FROM PUBLIC;
