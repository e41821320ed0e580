-- Privileges: who may change what is synced, read definitions and dead
-- letters, and read status.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(30);

CREATE SCHEMA vault;
SET search_path = vault, public;
CREATE TABLE secret_things (id int PRIMARY KEY, v text);
INSERT INTO secret_things VALUES (1, 'classified');
SELECT flusso.create_index('things', '{"table": "secret_things"}');
INSERT INTO flusso.dead_letters (index_name, document_id, error, body) VALUES ('things', '1', 'e', '{"v": "classified"}');

CREATE ROLE tap_nobody;
CREATE ROLE tap_monitor IN ROLE pg_monitor;
CREATE ROLE tap_admin;

-- an unprivileged role: permission denied everywhere that matters
SET ROLE tap_nobody;
SELECT throws_ok($$SELECT flusso.create_index('x', '{"table": "secret_things"}')$$, '42501', NULL, 'create_index is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.alter_index('things', '{"table": "secret_things"}')$$, '42501', NULL, 'alter_index is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.drop_index('things')$$, '42501', NULL, 'drop_index is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.reindex('things')$$, '42501', NULL, 'reindex is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.pause('things')$$, '42501', NULL, 'pause is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.resume('things')$$, '42501', NULL, 'resume is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.retry_dead_letters('things')$$, '42501', NULL, 'retry_dead_letters is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.preview('things', '1')$$, '42501', NULL, 'preview is not for PUBLIC');
SELECT throws_ok($$SELECT * FROM flusso.documents('things')$$, '42501', NULL, 'documents is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.explain('things')$$, '42501', NULL, 'explain is not for PUBLIC');
SELECT throws_ok($$SELECT * FROM flusso.definitions$$, '42501', NULL, 'definitions are not readable');
SELECT throws_ok($$SELECT * FROM flusso.indexes$$, '42501', NULL, 'the indexes view is not readable');
SELECT throws_ok($$SELECT * FROM flusso.dead_letters$$, '42501', NULL, 'dead letters are not readable');
SELECT throws_ok($$SELECT * FROM flusso.status$$, '42501', NULL, 'status is not readable');
SELECT throws_ok($$SELECT * FROM flusso.index_status$$, '42501', NULL, 'index_status is not readable');
SELECT throws_ok($$SELECT flusso.metrics()$$, '42501', NULL, 'metrics are not readable');
RESET ROLE;
SELECT ok(has_function_privilege('tap_nobody', 'flusso.wait_synced(interval)', 'EXECUTE'), 'wait_synced is for everybody');

-- pg_monitor reads status and metrics, not definitions
SET ROLE tap_monitor;
SELECT lives_ok($$SELECT * FROM flusso.status$$, 'pg_monitor reads status');
SELECT lives_ok($$SELECT * FROM flusso.index_status$$, 'pg_monitor reads index_status');
SELECT lives_ok($$SELECT flusso.metrics()$$, 'pg_monitor reads metrics');
SELECT throws_ok($$SELECT * FROM flusso.definitions$$, '42501', NULL, 'pg_monitor does not read definitions');
SELECT throws_ok($$SELECT * FROM flusso.dead_letters$$, '42501', NULL, 'nor dead letters');
RESET ROLE;

-- delegation: the GRANTs the README shows
GRANT EXECUTE ON FUNCTION flusso.create_index(text, jsonb), flusso.alter_index(text, jsonb),
    flusso.drop_index(text, boolean), flusso.reindex(text, boolean), flusso.pause(text),
    flusso.resume(text), flusso.retry_dead_letters(text), flusso.preview(text, text) TO tap_admin;
GRANT SELECT ON flusso.indexes, flusso.dead_letters TO tap_admin;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.create_index('mine', '{"table": "vault.secret_things"}')$$, '42501',
    'permission denied for schema vault', 'a delegated admin still needs to read the tables');
RESET ROLE;
GRANT USAGE ON SCHEMA vault TO tap_admin;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.create_index('mine', '{"table": "secret_things"}')$$, '42501',
    'permission denied to index "mine": role "tap_admin" has no SELECT on table vault.secret_things', 'and SELECT on each of them');
RESET ROLE;
GRANT SELECT ON secret_things TO tap_admin;
SET ROLE tap_admin;
SELECT lives_ok($$SELECT flusso.create_index('mine', '{"table": "secret_things"}')$$, 'with both, it may create an index');
SELECT lives_ok($$SELECT flusso.pause('mine')$$, 'pause it');
SELECT is((SELECT count(*)::int FROM flusso.indexes), 2, 'read the definitions');
SELECT is((SELECT count(*)::int FROM flusso.dead_letters), 1, 'read the dead letters');
SELECT is(flusso.preview('mine', '1')::text, '{"id" : 1, "v" : "classified"}', 'preview');
SELECT lives_ok($$SELECT flusso.drop_index('mine')$$, 'and drop it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
