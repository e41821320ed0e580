-- Upgrades: install the oldest version, define an index, walk ALTER
-- EXTENSION ... UPDATE, and check that nothing was lost.
CREATE EXTENSION flusso VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';

CREATE TABLE up_items (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO up_items VALUES (1, 'one'), (2, 'two');
SELECT flusso.create_index('up-items', '{"table": "up_items"}');

-- the 0.1.0 objects work with this library
SELECT count(*) >= 0 AS status_readable FROM flusso.status;
SELECT count(*) >= 0 AS index_status_readable FROM flusso.index_status;
SELECT flusso.preview('up-items', '1');

ALTER EXTENSION flusso UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';

-- definitions kept, documents the same
SELECT name, root_table, definition FROM flusso.indexes;
SELECT flusso.preview('up-items', '2');

-- the objects 0.2.0 adds
SELECT proname, pg_get_function_identity_arguments(oid) AS args
  FROM pg_proc
 WHERE pronamespace = 'flusso'::regnamespace AND proname IN ('reindex', 'pause', 'resume', 'metrics')
 ORDER BY 1;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'flusso.index_status'::regclass AND attname IN ('lag_seconds', 'backfill_eta')
 ORDER BY 1;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'flusso.status'::regclass AND attname IN ('lag_seconds', 'lag_warning')
 ORDER BY 1;
SELECT flusso.metrics() LIKE '%# TYPE flusso_changes_captured_total counter%' AS metrics_exposed;

ALTER EXTENSION flusso UPDATE TO '0.3.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';

-- the object function 0.3.0 adds: the same documents, built with it
-- (test/pgtap/05_objects.sql compares it with json_build_object() value by value)
SELECT flusso.explain('up-items') LIKE '%flusso._object(%' AS built_with_object;
SELECT flusso.preview('up-items', '2');

-- and the same result as a fresh install of the latest version
DROP EXTENSION flusso;
CREATE EXTENSION flusso;
SELECT extversion FROM pg_extension WHERE extname = 'flusso';
DROP EXTENSION flusso;
DROP TABLE up_items;
