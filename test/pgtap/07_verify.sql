-- flusso.verify(), verify_summary() and explain_document(): who may call
-- them, their errors, and what explain_document() says where no sync
-- worker runs (OpenSearch has no index for this database's indexes).
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(27);

CREATE TABLE v_users (id int PRIMARY KEY, name text, active bool NOT NULL, meta jsonb NOT NULL DEFAULT '{}');
INSERT INTO v_users VALUES (1, 'Ada', true, '{}'), (2, 'Bob', false, '{}'), (3, 'Cy', true, '{"n": "lots"}');
SELECT flusso.create_index('tap-verify', '{"table": "v_users", "filter": "active",
    "columns": ["id", "name", {"name": "n", "expr": "(meta->>''n'')::int"}]}');
CREATE FUNCTION why(id text) RETURNS jsonb LANGUAGE sql AS $$SELECT flusso.explain_document('tap-verify', id)$$;

-- a document that would be built
SELECT is(why('1')->'document', '{"id": 1, "name": "Ada", "n": null}'::jsonb, 'explain_document: the document that would be built');
SELECT is(why('1')->'row_exists', 'true'::jsonb, 'the row exists');
SELECT is(why('1')->'filter', '{"path": "filter", "condition": "v_users.active", "keeps_row": true}'::jsonb, 'the root filter keeps it');
SELECT is(why('1')->'key', '{"id": "1"}'::jsonb, 'the key the id stands for');
SELECT matches(why('1')->>'verdict', '^the row exists and would be built, but OpenSearch at "[^"]+" has no index "tap-verify"$',
    'no worker built it: OpenSearch has no such index, and the verdict says so');
SELECT matches(why('1')->'opensearch'->>'error', '^OpenSearch at "[^"]+" has no index "tap-verify"$', 'OpenSearch''s part says why it could not tell');
SELECT is(why('1')->'index_state', 'null'::jsonb, 'no worker lists the index: no state');
SELECT is(why('1')->'dead_letter', 'null'::jsonb, 'no dead letter');

-- filtered out, no row, not a key, cannot be built
SELECT matches(why('2')->>'verdict', '^the row exists but is filtered out by the filter at "filter" in the definition: v_users\.active; ',
    'a row the filter drops: which filter');
SELECT is(why('2')->'filter'->'keeps_row', 'false'::jsonb, 'keeps_row is false');
SELECT is(why('2')->'document', 'null'::jsonb, 'and no document');
SELECT matches(why('4')->>'verdict', '^no row of public.v_users has this key; ', 'no row');
SELECT is(why('4')->'filter'->'keeps_row', 'null'::jsonb, 'then the filter says nothing');
SELECT matches(why('x')->>'verdict', '^"x" cannot be a document id of this index: invalid input syntax for type integer: "x"; ',
    'an id that cannot be a key');
SELECT is(why('x')->'key', 'null'::jsonb, 'has no key');
SELECT matches(why('3')->>'verdict', '^the document cannot be built: invalid input syntax for type integer: "lots" \(at columns\[2\]\.expr in the definition\)',
    'a row an expression cannot handle: the error and its path');
SELECT is(why('3')->'build_error'->>'path', 'columns[2].expr', 'build_error.path');

-- the dead letter of a document
INSERT INTO flusso.dead_letters (index_name, document_id, error, body, owner)
VALUES ('tap-verify', '1', 'rejected: boom', '{}', current_user::regrole);
SELECT is(why('1')->'dead_letter'->>'error', 'rejected: boom', 'the dead letter''s error');

-- verify needs the index in OpenSearch; NULLs; no such index
SELECT throws_ok($$SELECT * FROM flusso.verify('tap-verify')$$, '42704', NULL, 'verify of an index OpenSearch lacks: 42704');
SELECT throws_ok($$SELECT * FROM flusso.verify('nope')$$, '42704', 'index "nope" does not exist', 'verify of no index');
SELECT throws_ok($$SELECT flusso.explain_document('nope', '1')$$, '42704', 'index "nope" does not exist', 'explain_document of no index');
SELECT is((SELECT count(*)::int FROM flusso.verify(NULL)), 0, 'verify(NULL): nothing');
SELECT is(flusso.explain_document('tap-verify', NULL), NULL, 'explain_document(name, NULL): NULL');

-- not for PUBLIC; for those who may manage the index
CREATE ROLE tap_v_nobody;
CREATE ROLE tap_v_other;
GRANT EXECUTE ON FUNCTION flusso.verify(text), flusso.verify_summary(text), flusso.explain_document(text, text) TO tap_v_other;
SET ROLE tap_v_nobody;
SELECT throws_ok($$SELECT * FROM flusso.verify('tap-verify')$$, '42501', NULL, 'verify is not for PUBLIC');
SELECT throws_ok($$SELECT flusso.explain_document('tap-verify', '1')$$, '42501', NULL, 'nor explain_document');
RESET ROLE;
SET ROLE tap_v_other;
SELECT throws_ok($$SELECT * FROM flusso.verify_summary('tap-verify')$$, '42501',
    'permission denied to verify index "tap-verify"', 'granted, a role that may not manage the index may not verify it');
SELECT throws_ok($$SELECT flusso.explain_document('tap-verify', '1')$$, '42501',
    'permission denied to explain a document of index "tap-verify"', 'nor explain its documents');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
