# Attacks on the sync worker by roles holding exactly the grants the README
# gives an application owner (test/pgtap/06_attacks.sql tries the SQL
# functions), each class more than one way: code in a definition, names
# shadowed where the worker might look, settings leaked out of user code,
# grants and row security at run time, other roles' dead letters and
# errors, and OpenSearch names.  TESTING.md lists the attacks.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $db = 'attack';
FlussoTest::os_clean('t8-*');
my $node = FlussoTest::new_node('attacks', database => $db);
sub as_role { my ($role, $sql) = @_; return $node->safe_psql($db, $sql, extra_params => ['-U', $role]); }
sub state_of { return $node->safe_psql($db, "SELECT state FROM flusso.index_status WHERE name = '$_[0]'"); }
sub error_of { return $node->safe_psql($db, "SELECT last_error FROM flusso.index_status WHERE name = '$_[0]'"); }
sub stopped { my $ix = shift; return FlussoTest::wait_for(sub { state_of($ix) eq 'stopped' }, "$ix stopped", 30); }
sub hits { return $node->safe_psql($db, 'SELECT is_called FROM public.hits'); }
sub is_superuser { return $node->safe_psql($db, "SELECT rolsuper FROM pg_roles WHERE rolname = '$_[0]'"); }

$node->safe_psql($db, qq{
	CREATE ROLE mallory LOGIN;
	CREATE ROLE alice LOGIN;
	CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
	GRANT EXECUTE ON FUNCTION flusso.create_index(text, jsonb), flusso.alter_index(text, jsonb),
	    flusso.drop_index(text, boolean), flusso.reindex(text, boolean), flusso.pause(text),
	    flusso.resume(text), flusso.retry_dead_letters(text), flusso.preview(text, text)
	  TO mallory, alice;
	GRANT SELECT ON flusso.indexes, flusso.dead_letters TO mallory, alice;
	GRANT CREATE ON SCHEMA public TO mallory;
	GRANT CREATE ON DATABASE $db TO mallory;
	CREATE SCHEMA vault;
	GRANT USAGE ON SCHEMA vault TO mallory;
	CREATE TABLE vault.payroll (id int PRIMARY KEY, salary int);
	INSERT INTO vault.payroll VALUES (1, 250000);
	-- the victim: a superuser's index over tables mallory cannot read
	CREATE TABLE accounts (id int PRIMARY KEY, name text);
	CREATE TABLE notes (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, body text);
	ALTER TABLE notes REPLICA IDENTITY FULL;
	INSERT INTO accounts SELECT i, 'account ' || i FROM generate_series(1, 20) i;
	INSERT INTO notes SELECT i, i, 'note ' || i FROM generate_series(1, 20) i;
	CREATE TABLE users (id int PRIMARY KEY, name text);
	INSERT INTO users VALUES (1, 'the victim''s secret');
	SELECT flusso.create_index('t8-victim', '{"table": "accounts", "filter": "name <> ''hidden''",
	    "children": [{"name": "notes", "table": "notes", "type": "many", "columns": ["id", "body"],
	                  "order_by": "id"},
	                 {"name": "n", "table": "notes", "type": "count"}]}');
});
ok(FlussoTest::wait_synced($node, $db), 'the victim\'s index is synced');

# --- shadows: mallory puts its own unnest, =, count... where a search_path
# --- could find them: public (it may create there) and a schema named like
# --- the worker's user ("$user" comes first on the default search_path)
my $traps = q{
	CREATE FUNCTION SCHEMA.texteq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
	CREATE OPERATOR SCHEMA.= (LEFTARG = text, RIGHTARG = text, FUNCTION = SCHEMA.texteq);
	CREATE FUNCTION SCHEMA.inteq(a int, b int) RETURNS boolean LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
	CREATE OPERATOR SCHEMA.= (LEFTARG = int, RIGHTARG = int, FUNCTION = SCHEMA.inteq);
	CREATE FUNCTION SCHEMA.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN QUERY SELECT pg_catalog.unnest(a); END $$;
	CREATE FUNCTION SCHEMA.replace(a text, b text, c text) RETURNS text LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN pg_catalog.replace(a, b, c); END $$;
	CREATE FUNCTION SCHEMA.json_agg(a record) RETURNS json LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN '[]'; END $$;
	CREATE FUNCTION SCHEMA.count_sfunc(s bigint) RETURNS bigint LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN s + 1; END $$;
	CREATE AGGREGATE SCHEMA.count(*) (SFUNC = SCHEMA.count_sfunc, STYPE = bigint, INITCOND = '0');
	CREATE FUNCTION SCHEMA.now() RETURNS timestamptz LANGUAGE plpgsql AS
	    $$ BEGIN PERFORM public.escalate(); RETURN pg_catalog.now(); END $$;
};
as_role('mallory', q{
	CREATE SEQUENCE public.hits;
	GRANT ALL ON SEQUENCE public.hits TO PUBLIC;
	CREATE FUNCTION public.escalate() RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
	    PERFORM pg_catalog.nextval('public.hits');
	    BEGIN
	        ALTER ROLE mallory SUPERUSER;
	    EXCEPTION WHEN OTHERS THEN NULL;
	    END;
	END $$;
	CREATE SCHEMA postgres;
	CREATE SCHEMA mallory;
	GRANT USAGE ON SCHEMA mallory TO PUBLIC;
} . ($traps =~ s/SCHEMA/public/gr) . ($traps =~ s/SCHEMA/postgres/gr));

# --- code in a definition, run by the worker with its owner's rights --------
as_role('mallory', q{
	SET check_function_bodies = off;
	CREATE TABLE mallory.items (id int PRIMARY KEY, v text);
	INSERT INTO mallory.items SELECT i, 'item ' || i FROM generate_series(1, 5) i;
	CREATE TABLE mallory.users (id int PRIMARY KEY, name text);
	INSERT INTO mallory.users VALUES (1, 'mallory''s own row');
	CREATE FUNCTION mallory.peek(i int) RETURNS int LANGUAGE sql STABLE AS
	    $$ SELECT salary FROM vault.payroll WHERE id = i $$;
	CREATE FUNCTION mallory.escalate_volatile() RETURNS void LANGUAGE plpgsql AS
	    $$ BEGIN ALTER ROLE mallory SUPERUSER; END $$;
	CREATE FUNCTION mallory.promote(i int) RETURNS int LANGUAGE plpgsql STABLE AS
	    $$ BEGIN PERFORM mallory.escalate_volatile(); RETURN i; END $$;
	CREATE FUNCTION mallory.read_conf(i int) RETURNS text LANGUAGE sql STABLE AS
	    $$ SELECT pg_catalog.pg_read_file('postgresql.conf') $$;
	-- changes the worker's settings for what it runs next, if they leak
	CREATE FUNCTION mallory.config(i int) RETURNS int LANGUAGE plpgsql STABLE AS $$
	BEGIN
	    PERFORM pg_catalog.set_config('search_path', 'postgres, public, pg_catalog', false);
	    PERFORM pg_catalog.set_config('statement_timeout', '1', false);
	    RETURN i;
	END $$;
	SELECT flusso.create_index('t8-m-peek', '{"table": "mallory.items",
	    "columns": ["id", {"name": "s", "expr": "mallory.peek(id)"}]}');
	SELECT flusso.create_index('t8-m-promote', '{"table": "mallory.items",
	    "columns": ["id", {"name": "p", "expr": "mallory.promote(id)"}]}');
	SELECT flusso.create_index('t8-m-conf', '{"table": "mallory.items",
	    "columns": ["id", {"name": "c", "expr": "mallory.read_conf(id)"}]}');
	SELECT flusso.create_index('t8-m-filter', '{"table": "mallory.items", "filter": "mallory.peek(id) > 0"}');
	SELECT flusso.create_index('t8-m-config', '{"table": "mallory.items",
	    "columns": ["id", "v", {"name": "c", "expr": "mallory.config(id)"}]}');
	SET search_path = mallory, public;
	SELECT flusso.create_index('t8-m-users', '{"table": "users"}');
});
for my $ix (qw(t8-m-peek t8-m-filter))
{
	ok(stopped($ix), "$ix: an expression reading a table its owner may not read stops the index");
	like(error_of($ix), qr/permission denied for table payroll/, "$ix: the error names the table");
}
ok(stopped('t8-m-promote'), 't8-m-promote: a volatile function behind a stable one stops the index');
is(is_superuser('mallory'), 'f', 'and mallory did not become a superuser');
ok(stopped('t8-m-conf'), 't8-m-conf: reading a server file stops the index');
like(error_of('t8-m-conf'), qr/permission denied for function pg_read_file/, 't8-m-conf: the error says why');
my ($code, $found) = FlussoTest::os_request('POST', '/t8-m-*/_search',
	{ query => { query_string => { query => '250000 OR shared_preload_libraries' } } });
is($found->{hits}{total}{value} // 0, 0, 'no salary and no server file content reached OpenSearch');
ok(FlussoTest::wait_for(sub { state_of('t8-m-config') eq 'seeded' }, 'config synced'),
	't8-m-config: a function that changes settings syncs (its changes are rolled back)');
is(FlussoTest::os_doc('t8-m-users', 1)->{name}, "mallory's own row",
	't8-m-users: names resolved once, under mallory\'s search_path: its table, not the victim\'s');

# the victim's changes after all that: built with pg_catalog's operators and
# functions only, under the worker's own settings
$node->safe_psql($db, qq{
	UPDATE accounts SET name = 'renamed $_ ' || id WHERE id <= 5;
	UPDATE notes SET account_id = 2 WHERE id = 3;
	DELETE FROM notes WHERE id = 4;
	INSERT INTO accounts VALUES (20 + $_, 'account ' || (20 + $_));
	UPDATE mallory.items SET v = 'again $_' WHERE id = 1;
}) for 1 .. 3;
as_role('mallory', q{UPDATE mallory.items SET v = 'more' WHERE id = 2});
ok(FlussoTest::wait_for(sub { (FlussoTest::os_doc('t8-victim', 23) // {})->{name} eq 'account 23' }, 'victim synced'),
	'the victim\'s index syncs the changes');
is(hits(), 'f', 'no shadow in public or in a schema named like the worker\'s user ever ran');
is(is_superuser('mallory'), 'f', 'mallory is no superuser');
is(FlussoTest::os_doc('t8-victim', 3)->{n}, 0, 'the victim\'s documents are right (a note moved away)');
$node->safe_psql($db, q{DROP SCHEMA postgres CASCADE; DROP OPERATOR public.= (text, text); DROP OPERATOR public.= (int, int);
	DROP FUNCTION public.unnest(text[]); DROP FUNCTION public.replace(text, text, text);
	DROP FUNCTION public.json_agg(record); DROP AGGREGATE public.count(*); DROP FUNCTION public.now()});
FlussoTest::is_consistent($node, $db, 't8-victim', 'after the attacks');

# --- grants and row security take effect at run time -------------------------
$node->safe_psql($db, q{
	CREATE TABLE shared_t (id int PRIMARY KEY, v text);
	INSERT INTO shared_t SELECT i, 'shared ' || i FROM generate_series(1, 10) i;
	GRANT SELECT ON shared_t TO alice;
	CREATE TABLE tenants (id int PRIMARY KEY, tenant text NOT NULL, v text);
	INSERT INTO tenants SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END, 'row ' || i FROM generate_series(1, 20) i;
	ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
	CREATE POLICY only_a ON tenants FOR SELECT TO alice USING (tenant = 'a');
	GRANT SELECT ON tenants TO alice;
});
as_role('alice', q{
	SELECT flusso.create_index('t8-alice', '{"table": "shared_t"}');
	SELECT flusso.create_index('t8-rls', '{"table": "tenants"}');
});
my $rls_count = sub {
	FlussoTest::os_request('POST', '/t8-rls/_refresh');
	my ($c, $r) = FlussoTest::os_request('GET', '/t8-rls/_count');
	return ref $r ? $r->{count} : -1;
};
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc('t8-alice', 10) && state_of('t8-rls') eq 'seeded' },
		'alice synced'), 'alice\'s indexes are synced');
is($rls_count->(), 10, 'row security: only the rows the owner may see reach OpenSearch');
$node->safe_psql($db, q{INSERT INTO tenants VALUES (100, 'b', 'tenant b, later'), (101, 'a', 'tenant a, later')});
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc('t8-rls', 101) }, 'tenant a row'), 'a new row alice may see syncs');
ok(!defined FlussoTest::os_doc('t8-rls', 100), 'a new row of another tenant does not');
$node->safe_psql($db, q{CREATE POLICY only_a_upper ON tenants AS RESTRICTIVE FOR SELECT TO alice USING (id < 100);
	UPDATE tenants SET v = 'hidden now' WHERE id = 101});
ok(FlussoTest::wait_for(sub { !defined FlussoTest::os_doc('t8-rls', 101) }, 'policy change'),
	'a new policy takes effect at the next build: the row it hides is deleted');
$node->safe_psql($db, q{REVOKE SELECT ON shared_t FROM alice; INSERT INTO shared_t VALUES (11, 'after the revoke')});
ok(stopped('t8-alice'), 'a revoked grant stops the index at its next build');
like(error_of('t8-alice'), qr/cannot be read with the rights of its owner "alice": permission denied for table shared_t/,
	'with an error naming the owner and the table');
ok(!defined FlussoTest::os_doc('t8-alice', 11), 'the row added after the revoke was not sent');
$node->safe_psql($db, q{UPDATE accounts SET name = 'still live' WHERE id = 6});
ok(FlussoTest::wait_for(sub { (FlussoTest::os_doc('t8-victim', 6) // {})->{name} eq 'still live' }, 'others live'),
	'the other indexes go on');
$node->safe_psql($db, q{GRANT SELECT ON shared_t TO alice});
as_role('alice', q{SELECT flusso.resume('t8-alice')});
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc('t8-alice', 11) }, 'resumed'), 'after GRANT and resume it syncs again');

# --- dead letters and errors: each owner its own; monitoring sees no values ---
as_role('mallory', q{
	CREATE TABLE mallory.nums (id int PRIMARY KEY, v text);
	INSERT INTO mallory.nums SELECT i, i::text FROM generate_series(1, 10) i;
	UPDATE mallory.nums SET v = 'SECRET-VALUE-42' WHERE id = 7;
	SELECT flusso.create_index('t8-m-dl', '{"table": "mallory.nums", "on_error": "dead_letter",
	    "opensearch": {"mappings": {"properties": {"v": {"type": "integer"}}}}}');
});
ok(FlussoTest::wait_for(sub { as_role('mallory', q{SELECT count(*) FROM flusso.dead_letters}) eq '1' }, 'dead letter'),
	'the owner reads its dead letter');
is(as_role('alice', q{SELECT count(*) FROM flusso.dead_letters}), '0', 'another owner does not');
is(as_role('alice', q{SELECT count(*) FROM flusso.indexes WHERE name LIKE 't8-m-%'}), '0', 'nor its definitions');
like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't8-m-dl'}), qr/SECRET-VALUE-42/,
	'a superuser sees the whole error');
my $seen = as_role('watcher', q{SELECT last_error FROM flusso.index_status WHERE name = 't8-m-dl'}) . "\n" .
	as_role('watcher', q{SELECT string_agg(coalesce(last_error, ''), ' ') FROM flusso.index_status}) . "\n" .
	as_role('watcher', q{SELECT last_error FROM flusso.status});
like($seen, FlussoTest::parsing_exception, 'pg_monitor sees what went wrong');
unlike($seen, qr/SECRET-VALUE-42|"7"|'7'|250000|shared_preload/, 'but no row value, document id or file content');

# --- OpenSearch names: never delete or move what flusso did not make ---------
FlussoTest::os_request('PUT', '/t8-foreign_1', { mappings => { properties => { x => { type => 'keyword' } } } });
FlussoTest::os_request('PUT', '/t8-other', { aliases => { 't8-aliased' => {} } });
FlussoTest::os_request('PUT', '/t8-other/_doc/1?refresh=true', { x => 'keep me' });
$node->safe_psql($db, q{CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small VALUES (1);
	SELECT flusso.create_index('t8-foreign', '{"table": "small"}');
	SELECT flusso.create_index('t8-aliased', '{"table": "small"}')});
ok(stopped('t8-foreign'), 'an index whose first generation is taken by a foreign index stops');
like(error_of('t8-foreign'), qr/not created by flusso/, 'saying it leaves it alone');
ok(stopped('t8-aliased'), 'an index whose name is a foreign alias stops');
like(error_of('t8-aliased'), qr/alias "t8-aliased" on index "t8-other", which flusso did not create/, 'saying why');
$node->safe_psql($db, q{SELECT flusso.drop_index('t8-foreign', true); SELECT flusso.drop_index('t8-aliased', true)});
ok(FlussoTest::wait_for(sub { $node->safe_psql($db, q{SELECT count(*) FROM flusso.requests}) eq '0' }, 'drops handled'),
	'the drops were handled');
my ($fc) = FlussoTest::os_request('GET', '/t8-foreign_1');
is($fc, 200, 'drop_index(drop_remote) left the foreign index');
my ($ac, $aliases) = FlussoTest::os_request('GET', '/_alias/t8-aliased');
is_deeply([sort keys %$aliases], ['t8-other'], 'and the foreign alias points where it did');
is(FlussoTest::os_doc('t8-aliased', 1)->{x}, 'keep me', 'with its document');

is(hits(), 'f', 'no trap ran, first to last');
$node->stop;
done_testing();
