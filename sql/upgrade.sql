-- Upgrades: install the oldest version, keep an index as a 0.1.0 install
-- stored it, walk ALTER EXTENSION ... UPDATE, and check that nothing was
-- lost.  The library is always the newest: SQL functions refuse to run on
-- older objects, with the fix; status and metrics still answer.
CREATE EXTENSION flusso VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';

CREATE TABLE up_items (id int PRIMARY KEY, title text NOT NULL);
INSERT INTO up_items VALUES (1, 'one'), (2, 'two');
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) $$;
-- an index as 0.1.0 stored it: names as written, read on the sync worker's search_path
INSERT INTO flusso.definitions (name, definition, root_table)
VALUES ('up-items', '{"table": "up_items", "columns": ["id", {"name": "loud", "expr": "shout(title)"}], "filter": "id > 0"}',
        'public.up_items');
INSERT INTO flusso.index_state (name, live_definition, live_generation)
SELECT name, definition, 1 FROM flusso.definitions;

-- status answers on the old objects; the definition functions say what to do
SELECT count(*) >= 0 AS status_readable FROM flusso.status;
SELECT count(*) >= 0 AS index_status_readable FROM flusso.index_status;
SELECT flusso.preview('up-items', '1');

ALTER EXTENSION flusso UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';
SELECT name, root_table, definition FROM flusso.indexes;

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

-- 0.4.0: resolved under the server's default search_path, the one the
-- worker read them with; a WARNING names each index handed to the
-- extension's owner
ALTER EXTENSION flusso UPDATE TO '0.4.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';

-- every name resolved, the owner set, and index_state still matches: nothing is rebuilt
SELECT name, root_table, definition, owner = (SELECT extowner FROM pg_extension WHERE extname = 'flusso')::regrole AS extension_owner
  FROM flusso.indexes;
SELECT s.live_definition = d.definition AS state_matches FROM flusso.index_state s JOIN flusso.definitions d USING (name);

-- the objects 0.4.0 adds
SELECT proname, pg_get_function_identity_arguments(oid) AS args
  FROM pg_proc
 WHERE pronamespace = 'flusso'::regnamespace AND proname IN ('alter_index_owner', 'pause', 'resume', 'retry_dead_letters')
 ORDER BY 1;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'flusso.index_status'::regclass AND attname IN ('owner', 'waiting_for', 'waiting_since')
 ORDER BY 1;
SELECT relrowsecurity FROM pg_class WHERE oid = 'flusso.dead_letters'::regclass;

-- 0.5.0: the search engine in status; the library reports it to 0.4.0's
-- view too, which asks for fewer columns
SELECT count(*) >= 0 AS status_readable_on_0_4_0 FROM flusso.status;
ALTER EXTENSION flusso UPDATE TO '0.5.0';
SELECT extversion FROM pg_extension WHERE extname = 'flusso';
SELECT attname FROM pg_attribute
 WHERE attrelid = 'flusso.status'::regclass AND attnum > 23
 ORDER BY attnum;
SELECT has_table_privilege('pg_monitor', 'flusso.status', 'SELECT') AS monitor_status,
       has_table_privilege('public', 'flusso.status', 'SELECT') AS public_status;
SELECT count(*) >= 0 AS status_readable FROM flusso.status;
-- the index 0.1.0 stored still builds its documents
SELECT flusso.preview('up-items', '2');
SELECT flusso.explain('up-items') LIKE '%flusso._object(%' AS built_with_object;

-- and the same result as a fresh install of the latest version
DROP EXTENSION flusso;
CREATE EXTENSION flusso;
SELECT extversion FROM pg_extension WHERE extname = 'flusso';
DROP EXTENSION flusso;
DROP TABLE up_items;
DROP FUNCTION shout(text);
