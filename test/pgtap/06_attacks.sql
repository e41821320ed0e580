-- Attacks by a role holding exactly the grants the README gives an
-- application owner, each class tried more than one way (TESTING.md lists
-- them).  The worker's side of the same attacks is test/t/008_attacks.pl.
--
-- A trap records in mallory.hits every time it runs and tries to make
-- mallory a superuser: flusso must never resolve one of its own names to
-- it, and code of mallory's must only ever run with mallory's rights.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION flusso;
SELECT plan(55);

CREATE ROLE mallory;
CREATE ROLE tap_watcher IN ROLE pg_monitor;
GRANT EXECUTE ON FUNCTION flusso.create_index(text, jsonb), flusso.alter_index(text, jsonb),
    flusso.drop_index(text, boolean), flusso.reindex(text, boolean), flusso.pause(text),
    flusso.resume(text), flusso.retry_dead_letters(text), flusso.preview(text, text),
    flusso.documents(text), flusso.explain(text), flusso.index_body(text), flusso.document_ids(text),
    flusso.affected_documents(text, regclass, jsonb, jsonb)
  TO mallory;
GRANT SELECT ON flusso.indexes, flusso.dead_letters TO mallory;
CREATE SCHEMA mallory AUTHORIZATION mallory;
GRANT CREATE ON SCHEMA public TO mallory;	-- common in practice, the default before PostgreSQL 15

-- the victim's data: mallory may read none of it
CREATE SCHEMA vault;
CREATE TABLE vault.payroll (id int PRIMARY KEY, salary int);
GRANT USAGE ON SCHEMA vault TO mallory;	-- it may look, not read
INSERT INTO vault.payroll VALUES (1, 250000);
CREATE TABLE public.users (id int PRIMARY KEY, name text);
INSERT INTO public.users VALUES (1, 'victim row');
SELECT flusso.create_index('victim', '{"table": "users", "filter": "name <> ''hidden''"}');

SET ROLE mallory;
CREATE TABLE mallory.users (id int PRIMARY KEY, name text);
INSERT INTO mallory.users VALUES (1, 'mallory row');
CREATE TABLE mallory.pairs (a text, b int, PRIMARY KEY (a, b));
INSERT INTO mallory.pairs VALUES ('mallory row', 1);
GRANT USAGE ON SCHEMA mallory TO PUBLIC;
CREATE SEQUENCE mallory.hits;
GRANT USAGE, UPDATE, SELECT ON SEQUENCE mallory.hits TO PUBLIC;
CREATE FUNCTION mallory.escalate() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('mallory.hits');
    BEGIN
        ALTER ROLE mallory SUPERUSER;
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END $$;
-- shadows of what flusso's own SQL uses, exact matches for its argument types
CREATE FUNCTION mallory.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.texteq);
CREATE FUNCTION mallory.inteq(a int, b int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR mallory.= (LEFTARG = int, RIGHTARG = int, FUNCTION = mallory.inteq);
CREATE FUNCTION mallory.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
CREATE FUNCTION mallory.replace(a text, b text, c text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.replace(a, b, c); END $$;
CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION mallory.count_sfunc(s bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN s + 1; END $$;
CREATE AGGREGATE mallory.count(*) (SFUNC = mallory.count_sfunc, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION mallory.jsonb(a text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN a::pg_catalog.jsonb; END $$;

-- code in a definition: mallory's, to be run by whoever builds its documents
CREATE FUNCTION mallory.peek(i int) RETURNS int LANGUAGE sql STABLE AS
    $$ SELECT salary FROM vault.payroll WHERE id = i $$;
CREATE FUNCTION mallory.peek_const() RETURNS int LANGUAGE sql IMMUTABLE AS
    $$ SELECT salary FROM vault.payroll LIMIT 1 $$;
CREATE FUNCTION mallory.promote(i int) RETURNS int LANGUAGE plpgsql STABLE AS
    $$ BEGIN PERFORM mallory.escalate_volatile(); RETURN i; END $$;
CREATE FUNCTION mallory.escalate_volatile() RETURNS void LANGUAGE plpgsql AS
    $$ BEGIN ALTER ROLE mallory SUPERUSER; END $$;
CREATE FUNCTION mallory.config(i int) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog, public', false);
    PERFORM pg_catalog.set_config('work_mem', '77kB', false);
    RETURN i;
END $$;
CREATE FUNCTION mallory.become(i int) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN PERFORM pg_catalog.set_config('role', 'postgres', false); RETURN i; END $$;
CREATE FUNCTION mallory.read_conf(i int) RETURNS text LANGUAGE sql STABLE AS
    $$ SELECT pg_catalog.pg_read_file('postgresql.conf') $$;
CREATE FUNCTION mallory.peek_op(a int, b int) RETURNS boolean LANGUAGE sql STABLE AS
    $$ SELECT (SELECT salary FROM vault.payroll WHERE id = a) > b $$;
CREATE OPERATOR mallory.>>> (LEFTARG = int, RIGHTARG = int, FUNCTION = mallory.peek_op);
RESET ROLE;

-- Names in flusso's own statements: the SQL-callable functions run their
-- SQL with a fixed search_path and qualified names, for mallory and for a
-- superuser whose search_path leads to mallory's schema alike.  mallory
-- also shadows in public (which it may create in), for the time of the calls.
SET ROLE mallory;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.texteq);
CREATE OPERATOR public.= (LEFTARG = int, RIGHTARG = int, FUNCTION = mallory.inteq);
CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN PERFORM mallory.escalate(); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
DO $$
DECLARE
    path text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog, public', true);
    PERFORM flusso.create_index('m-own', '{"table": "users", "columns": ["id", "name"], "filter": "id > 0"}');
    PERFORM flusso.create_index('m-two', '{"table": "pairs"}');
    PERFORM flusso.alter_index('m-own', '{"table": "users", "columns": ["id", "name"]}');
    PERFORM flusso.preview('m-own', '1');
    PERFORM flusso.preview('m-two', 'mallory row|1');
    PERFORM pg_catalog.count(*) FROM flusso.documents('m-two');
    PERFORM pg_catalog.count(*) FROM flusso.document_ids('m-two');
    PERFORM pg_catalog.count(*) FROM flusso.affected_documents('m-own', 'mallory.users', NULL, '{"id": 1}');
    PERFORM flusso.explain('m-own');
    PERFORM flusso.index_body('m-own');
    PERFORM flusso.pause('m-own');
    PERFORM flusso.resume('m-own');
    PERFORM flusso.retry_dead_letters('m-own');
    BEGIN
        PERFORM flusso.reindex('m-own');	-- resolves, checks, then finds no worker in this database
    EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL;
    END;
    PERFORM pg_catalog.count(*) FROM flusso.indexes;
    PERFORM pg_catalog.count(*) FROM flusso.dead_letters;
    PERFORM pg_catalog.set_config('search_path', path, true);
END $$;
RESET ROLE;
DO $$
DECLARE
    path text := pg_catalog.current_setting('search_path');
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog, public', true);
    PERFORM flusso.create_index('s-own', '{"table": "vault.payroll", "filter": "salary > 0"}');
    PERFORM flusso.preview('s-own', '1');
    PERFORM flusso.preview('victim', '1');
    PERFORM flusso.preview('m-two', 'mallory row|1');
    PERFORM pg_catalog.count(*) FROM flusso.documents('m-own');
    PERFORM pg_catalog.count(*) FROM flusso.document_ids('victim');
    PERFORM flusso.explain('m-two');
    PERFORM flusso.pause('s-own');
    PERFORM flusso.resume('s-own');
    PERFORM flusso.retry_dead_letters('s-own');
    PERFORM flusso.alter_index_owner('m-own', 'mallory');
    PERFORM flusso.drop_index('s-own');
    PERFORM pg_catalog.set_config('search_path', path, true);
END $$;
DO $$
BEGIN
    PERFORM flusso.preview('victim', '1');
    PERFORM pg_catalog.count(*) FROM flusso.documents('victim');
END $$;
DROP OPERATOR public.= (text, text);
DROP OPERATOR public.= (int, int);
DROP FUNCTION public.unnest(text[]);
SELECT ok(NOT (SELECT is_called FROM mallory.hits),
          'flusso''s own SQL never resolved a name to mallory''s shadows (the trap never ran)');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), 'and mallory is no superuser');
SELECT is((SELECT definition->>'table' FROM flusso.indexes WHERE name = 'm-own'), 'mallory.users',
          'names were resolved once, under mallory''s search_path, and stored qualified');
SELECT is((SELECT definition->>'table' FROM flusso.indexes WHERE name = 'victim'), 'public.users',
          'the victim''s stays the victim''s');
SELECT is((SELECT definition->>'filter' FROM flusso.indexes WHERE name = 'victim'), '(users.name <> ''hidden''::text)',
          'its operator resolved to pg_catalog when it was defined (deparsed unqualified: it is visible)');
SELECT is(flusso.preview('victim', '1')::jsonb, '{"id": 1, "name": "victim row"}',
          'and it builds the victim''s document');
SELECT is(flusso.preview('m-own', '1')::jsonb, '{"id": 1, "name": "mallory row"}',
          'mallory''s index reads mallory''s table, whoever builds it');
SELECT ok(NOT (SELECT is_called FROM mallory.hits), 'still no trap ran');

-- Code in a definition runs with its owner's rights, whoever runs it.
SET ROLE mallory;
SELECT lives_ok($$SELECT flusso.create_index('m-peek', '{"table": "mallory.users",
    "columns": ["id", {"name": "s", "expr": "mallory.peek(id)"}]}')$$, 'mallory defines an index calling its own function');
SELECT lives_ok($$SELECT flusso.create_index('m-filter', '{"table": "mallory.users", "filter": "mallory.peek(id) > 0"}')$$,
                'in a filter');
SELECT lives_ok($$SELECT flusso.create_index('m-const', '{"table": "mallory.users",
    "columns": ["id", {"name": "s", "expr": "mallory.peek_const()"}]}')$$, 'an immutable one, folded when planned');
SELECT lives_ok($$SELECT flusso.create_index('m-order', '{"table": "mallory.users", "children": [
    {"name": "me", "table": "mallory.users", "type": "many", "on": {"id": "id"}, "value": "name",
     "order_by": "mallory.peek(id)"}]}')$$, 'in an order_by');
SELECT lives_ok($$SELECT flusso.create_index('m-op', '{"table": "mallory.users", "filter": "id OPERATOR(mallory.>>>) 0"}')$$,
                'behind an operator of its own');
SELECT lives_ok($$SELECT flusso.create_index('m-promote', '{"table": "mallory.users",
    "columns": ["id", {"name": "p", "expr": "mallory.promote(id)"}]}')$$, 'a stable wrapper around a volatile function');
SELECT lives_ok($$SELECT flusso.create_index('m-conf', '{"table": "mallory.users",
    "columns": ["id", {"name": "c", "expr": "mallory.read_conf(id)"}]}')$$, 'a wrapper around pg_read_file');
SELECT lives_ok($$SELECT flusso.create_index('m-config', '{"table": "mallory.users",
    "columns": ["id", {"name": "c", "expr": "mallory.config(id)"}]}')$$, 'a function that changes settings');
SELECT lives_ok($$SELECT flusso.create_index('m-become', '{"table": "mallory.users",
    "columns": ["id", {"name": "c", "expr": "mallory.become(id)"}]}')$$, 'a function that sets role');
RESET ROLE;
-- a superuser looks at mallory's documents: mallory's code runs as mallory
SELECT throws_ok($$SELECT flusso.preview('m-peek', '1')$$, '42501', 'permission denied for table payroll',
                 'an expression reads only what its owner may read, even in a superuser''s preview');
SELECT throws_ok($$SELECT count(*) FROM flusso.documents('m-peek')$$, '42501', 'permission denied for table payroll',
                 'and in documents()');
SELECT throws_ok($$SELECT flusso.preview('m-filter', '1')$$, '42501', 'permission denied for table payroll', 'a filter too');
SELECT throws_ok($$SELECT flusso.preview('m-const', '1')$$, '42501', 'permission denied for table payroll',
                 'an immutable function folded at planning too');
SELECT throws_ok($$SELECT flusso.preview('m-order', '1')$$, '42501', 'permission denied for table payroll', 'an order_by too');
SELECT throws_ok($$SELECT flusso.preview('m-op', '1')$$, '42501', 'permission denied for table payroll', 'an operator too');
SELECT throws_ok($$SELECT flusso.preview('m-promote', '1')$$, '42501', NULL,
                 'a volatile function behind a stable one cannot make its owner a superuser');
SELECT ok(NOT (SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'), 'mallory is still no superuser');
SELECT throws_ok($$SELECT flusso.preview('m-conf', '1')$$, '42501', 'permission denied for function pg_read_file',
                 'a wrapper around pg_read_file reads no server file');
SELECT throws_ok($$SELECT flusso.preview('m-become', '1')$$, '42501', NULL,
                 'setting role inside it is refused (a security-restricted operation)');
-- settings changed by user code do not outlive it
SET work_mem = '4MB';
SET search_path = public;
SELECT lives_ok($$SELECT flusso.preview('m-config', '1')$$, 'a preview runs a function that changes settings');
SELECT is(current_setting('search_path'), 'public', 'the caller''s search_path is unchanged');
SELECT is(current_setting('work_mem'), '4MB', 'and so is any other setting');
RESET work_mem;

-- What each role sees: its own definitions, nothing of others'.
SET ROLE mallory;
SELECT is((SELECT count(*)::int FROM flusso.indexes WHERE name IN ('victim', 's-own')), 0,
          'mallory sees none of the superuser''s definitions');
SELECT throws_ok($$SELECT flusso.preview('victim', '1')$$, '42501', NULL, 'nor previews them');
SELECT throws_ok($$SELECT flusso.alter_index('victim', '{"table": "mallory.users"}')$$, '42501', NULL,
                 'nor points them at its own table');
SELECT throws_ok($$SELECT flusso.drop_index('victim', true)$$, '42501', NULL, 'nor drops them');
SELECT throws_ok($$SELECT flusso.reindex('victim')$$, '42501', NULL, 'nor reindexes them');
SELECT throws_ok($$SELECT * FROM flusso.affected_documents('victim', 'public.users', NULL, '{"id": 1}')$$, '42501', NULL,
                 'nor resolves changes for them');
SELECT throws_ok($$SELECT flusso.create_index('m-steal', '{"table": "public.users"}')$$, '42501', NULL,
                 'nor indexes a table it may not read');
SELECT throws_ok($$SELECT flusso.create_index('m-steal', '{"table": "mallory.users", "children": [
    {"name": "p", "table": "vault.payroll", "type": "one", "on": {"id": "id"}}]}')$$, '42501', NULL,
                 'nor through a child');
RESET ROLE;

-- Engine names: a strict pattern, checked before anything is sent.
SELECT throws_ok(format('SELECT flusso.create_index(%L, ''{"table": "public.users"}'')', n), '42602', NULL,
                 format('index name %s is refused', n))
  FROM unnest(ARRAY['a%2Cb', 'a*', 'a,b', 'a?b', 'a#b', 'a:b', 'a/b', '..', '.hidden', 'users_12',
                    'a%2A', '-x', 'UPPER', 'a b']) AS n;

-- Settings that hold URLs, user names and paths: superusers only.
SET ROLE tap_watcher;
SELECT is(current_setting('flusso.opensearch_url'), '(hidden)', 'a pg_monitor member does not see the URL');
SELECT is((SELECT count(*)::int FROM pg_settings WHERE name IN ('flusso.opensearch_url', 'flusso.opensearch_user',
          'flusso.opensearch_password', 'flusso.opensearch_password_file', 'flusso.opensearch_ca_file',
          'flusso.opensearch_client_cert', 'flusso.opensearch_client_key')), 0,
          'nor any of them in pg_settings');
RESET ROLE;
SELECT isnt(current_setting('flusso.opensearch_url'), '(hidden)', 'a superuser does');

SELECT * FROM finish();
ROLLBACK;
