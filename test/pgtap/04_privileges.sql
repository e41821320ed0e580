-- Privileges: who may change what is synced, who owns an index, who reads
-- definitions, documents, dead letters and status.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(59);

CREATE SCHEMA vault;
SET search_path = vault, public;
CREATE TABLE secret_things (id int PRIMARY KEY, v text);
INSERT INTO secret_things VALUES (1, 'classified');
SELECT flusso.create_index('things', '{"table": "secret_things"}');
INSERT INTO flusso.dead_letters (index_name, document_id, error, body, owner)
VALUES ('things', '1', 'e', '{"v": "classified"}', current_user::regrole);

CREATE ROLE tap_nobody;
CREATE ROLE tap_monitor IN ROLE pg_monitor;
CREATE ROLE tap_admin;
CREATE ROLE tap_colleague IN ROLE tap_admin;
CREATE ROLE tap_other;

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
SELECT throws_ok($$SELECT flusso.alter_index_owner('things', 'tap_nobody')$$, '42501', NULL, 'alter_index_owner is not for PUBLIC');
SELECT throws_ok($$SELECT * FROM flusso.definitions$$, '42501', NULL, 'definitions are not readable');
SELECT throws_ok($$SELECT * FROM flusso.indexes$$, '42501', NULL, 'the indexes view is not readable');
SELECT throws_ok($$SELECT * FROM flusso.dead_letters$$, '42501', NULL, 'dead letters are not readable');
SELECT throws_ok($$SELECT * FROM flusso.status$$, '42501', NULL, 'status is not readable');
SELECT throws_ok($$SELECT * FROM flusso.index_status$$, '42501', NULL, 'index_status is not readable');
SELECT throws_ok($$SELECT flusso.metrics()$$, '42501', NULL, 'metrics are not readable');
RESET ROLE;
SELECT ok(has_function_privilege('tap_nobody', 'flusso.wait_synced(interval, boolean)', 'EXECUTE'), 'wait_synced is for everybody');

-- pg_monitor reads status and metrics, not definitions
SET ROLE tap_monitor;
SELECT lives_ok($$SELECT * FROM flusso.status$$, 'pg_monitor reads status');
SELECT lives_ok($$SELECT * FROM flusso.index_status$$, 'pg_monitor reads index_status');
SELECT lives_ok($$SELECT flusso.metrics()$$, 'pg_monitor reads metrics');
SELECT throws_ok($$SELECT * FROM flusso.definitions$$, '42501', NULL, 'pg_monitor does not read definitions');
SELECT throws_ok($$SELECT * FROM flusso.dead_letters$$, '42501', NULL, 'nor dead letters');
RESET ROLE;

-- an index belongs to the role that created it
SELECT is((SELECT owner::text FROM flusso.indexes WHERE name = 'things'), current_user::text,
          'the creator owns the index');

-- delegation: the GRANTs the README shows
GRANT EXECUTE ON FUNCTION flusso.create_index(text, jsonb), flusso.alter_index(text, jsonb),
    flusso.drop_index(text, boolean), flusso.reindex(text, boolean), flusso.pause(text),
    flusso.resume(text), flusso.retry_dead_letters(text), flusso.preview(text, text),
    flusso.documents(text), flusso.explain(text)
  TO tap_admin, tap_other;
GRANT SELECT ON flusso.indexes, flusso.dead_letters TO tap_admin, tap_other;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.create_index('mine', '{"table": "vault.secret_things"}')$$, '42501',
    'permission denied for schema vault', 'a delegated admin still needs to read the tables');
RESET ROLE;
GRANT USAGE ON SCHEMA vault TO tap_admin, tap_other;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.create_index('mine', '{"table": "secret_things"}')$$, '42501',
    'permission denied to index "mine": role "tap_admin" has no SELECT on table vault.secret_things', 'and SELECT on each of them');
RESET ROLE;
GRANT SELECT ON secret_things TO tap_admin, tap_other;
SET ROLE tap_admin;
SELECT lives_ok($$SELECT flusso.create_index('mine', '{"table": "secret_things"}')$$, 'with both, it may create an index');
SELECT lives_ok($$SELECT flusso.pause('mine')$$, 'pause it');
SELECT is((SELECT owner::text FROM flusso.indexes WHERE name = 'mine'), 'tap_admin', 'which it owns');
SELECT is((SELECT count(*)::int FROM flusso.indexes), 1, 'it sees its own definitions only');
SELECT is((SELECT count(*)::int FROM flusso.dead_letters), 0, 'and its own dead letters only');
SELECT is(flusso.preview('mine', '1')::text, '{"id" : 1, "v" : "classified"}', 'preview');

-- another index's owner may not touch it, whatever it was granted
SELECT throws_ok($$SELECT flusso.alter_index('things', '{"table": "secret_things"}')$$, '42501',
    'permission denied to alter index "things"', 'alter: only the owner');
SELECT throws_ok($$SELECT flusso.drop_index('things', true)$$, '42501',
    'permission denied to drop index "things"', 'drop: only the owner');
SELECT throws_ok($$SELECT flusso.reindex('things')$$, '42501',
    'permission denied to reindex index "things"', 'reindex: only the owner');
SELECT throws_ok($$SELECT flusso.pause('things')$$, '42501',
    'permission denied to pause index "things"', 'pause: only the owner');
SELECT throws_ok($$SELECT flusso.resume('things')$$, '42501',
    'permission denied to resume index "things"', 'resume: only the owner');
SELECT throws_ok($$SELECT flusso.retry_dead_letters('things')$$, '42501',
    'permission denied to retry the dead letters of index "things"', 'retry_dead_letters: only the owner');
SELECT throws_ok($$SELECT flusso.preview('things', '1')$$, '42501',
    'permission denied to preview index "things"', 'preview: only the owner');
SELECT throws_ok($$SELECT * FROM flusso.documents('things')$$, '42501',
    'permission denied to build the documents of index "things"', 'documents: only the owner');
SELECT throws_ok($$SELECT flusso.explain('things')$$, '42501',
    'permission denied to explain index "things"', 'explain: only the owner');
RESET ROLE;

-- a member of the owner role manages it too; another granted role does not
SET ROLE tap_colleague;
SELECT lives_ok($$SELECT flusso.resume('mine')$$, 'a member of the owner role resumes it');
SELECT is((SELECT count(*)::int FROM flusso.indexes), 1, 'and sees it');
RESET ROLE;
SET ROLE tap_other;
SELECT is((SELECT count(*)::int FROM flusso.indexes), 0, 'a role that owns none sees no definitions');
SELECT throws_ok($$SELECT flusso.preview('mine', '1')$$, '42501', NULL, 'nor previews another role''s index');
SELECT throws_ok($$SELECT flusso.drop_index('mine')$$, '42501', NULL, 'nor drops it');
SELECT throws_ok($$SELECT flusso.create_index('mine', '{"table": "secret_things"}')$$, '42710', NULL,
    'nor takes its name: it exists');
RESET ROLE;

-- handing an index over: superusers only, to a role that can read its tables
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.alter_index_owner('mine', 'tap_other')$$, '42501', NULL,
    'the owner cannot give an index away');
RESET ROLE;
GRANT EXECUTE ON FUNCTION flusso.alter_index_owner(text, regrole) TO tap_admin;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.alter_index_owner('mine', 'tap_other')$$, '42501',
    'permission denied to change the owner of index "mine"', 'not even when granted EXECUTE: superusers only');
RESET ROLE;
SELECT throws_ok($$SELECT flusso.alter_index_owner('mine', 'tap_nobody')$$, '42501',
    'permission denied to index "mine": role "tap_nobody" has no USAGE on schema vault',
    'not to a role that cannot read its tables');
INSERT INTO flusso.dead_letters (index_name, document_id, error, body, owner)
VALUES ('mine', '1', 'e', '{"v": "classified"}', 'tap_admin');
SELECT lives_ok($$SELECT flusso.alter_index_owner('mine', 'tap_other')$$, 'a superuser hands it over');
SELECT is((SELECT owner::text FROM flusso.indexes WHERE name = 'mine'), 'tap_other', 'the new owner is shown');
SELECT is((SELECT owner::text FROM flusso.dead_letters WHERE index_name = 'mine'), 'tap_other',
          'its dead letters go with it');
SET ROLE tap_other;
SELECT is((SELECT count(*)::int FROM flusso.dead_letters), 1, 'the new owner reads them');
SELECT lives_ok($$SELECT flusso.pause('mine')$$, 'and manages the index');
RESET ROLE;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT flusso.pause('mine')$$, '42501', NULL, 'the old owner no longer does');
SELECT is((SELECT count(*)::int FROM flusso.dead_letters), 0, 'nor reads its dead letters');
RESET ROLE;

-- a superuser manages every index
SELECT is((SELECT count(*)::int FROM flusso.indexes), 2, 'a superuser sees every definition');
SELECT lives_ok($$SELECT flusso.drop_index('mine')$$, 'and drops any of them');

SELECT * FROM finish();
ROLLBACK;
