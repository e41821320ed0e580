# Checking an index: flusso.verify() compares every document in OpenSearch
# with what PostgreSQL would build now (missing, stale, extra, unbuildable),
# and flusso.explain_document() says, for one _id, what flusso would do and
# why.  Documents are removed, changed and added behind flusso's back
# directly in OpenSearch; an index of several pages exercises the paging on
# both sides; verify's time is compared with test/consistency.pl's.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $db = 'verify';
my $ix = 't11-users';
my $users = $ENV{FLUSSO_VERIFY_USERS} // 6000;
my $root = $ENV{FLUSSO_ROOT};
my $json = JSON::PP->new->canonical;
FlussoTest::os_clean('t11-*');
my $node = FlussoTest::new_node('verify', database => $db, 'flusso.batch_size' => '500');

sub q1 { return $node->safe_psql($db, $_[0]); }
sub lit { (my $s = $_[0]) =~ s/'/''/g; return "'$s'"; }

# verify(name) as { id => problem }
sub problems
{
	my $out = q1('SELECT json_object_agg(id, problem) FROM flusso.verify(' . lit($_[0]) . ')');
	return $out eq '' ? {} : $json->decode($out);
}

sub summary
{
	return $json->decode(q1('SELECT row_to_json(s) FROM flusso.verify_summary(' . lit($_[0]) . ') s'));
}

sub why
{
	return $json->decode(q1('SELECT flusso.explain_document(' . lit($_[0]) . ', ' . lit($_[1]) . ')'));
}

sub os_path_id { (my $s = $_[0]) =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ge; return $s; }

sub os_put
{
	my ($index, $id, $source) = @_;
	my ($code) = FlussoTest::os_request('PUT', "/$index/_doc/" . os_path_id($id) . '?refresh=true', $source);
	return $code;
}

sub os_delete
{
	my ($index, $id) = @_;
	my ($code) = FlussoTest::os_request('DELETE', "/$index/_doc/" . os_path_id($id) . '?refresh=true');
	return $code;
}

# psql's stderr for a statement expected to fail, with the SQLSTATE
sub fails
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $ret == 0 ? '' : $err;
}

# --- an index of several pages, synced: nothing to report ----------------------
$node->command_ok([ 'psql', '-X', '-q', '-v', "n=$users", '-d', $db, '-f', "$root/test/bench/dataset.sql" ],
	"load a dataset of $users users");
my $def = slurp_file("$root/test/bench/users_index.json");
q1("SELECT flusso.create_index('$ix', \$\$$def\$\$)");
ok(FlussoTest::wait_synced($node, $db, '600 s'), 'backfill completes');
my $expected = q1('SELECT count(*) FROM users WHERE deleted_at IS NULL');
cmp_ok($expected, '>', 2000, 'more documents than a page on either side (500 built, 5000 scrolled)');
is_deeply(problems($ix), {}, 'a synced index: verify reports nothing');

# a session whose TimeZone and DateStyle differ from the server's (a client sends its own):
# documents are built as the worker builds them, and the session keeps its settings
is($node->safe_psql($db, qq{SET TimeZone = 'America/New_York'; SET DateStyle = 'SQL, DMY';
	SELECT count(*) FROM flusso.verify('$ix');
	SELECT flusso.explain_document('$ix', '10')->>'verdict';
	SELECT current_setting('TimeZone') || ' ' || current_setting('DateStyle')}),
	"0\nthe row exists and matches; OpenSearch has the same document\nAmerica/New_York SQL, DMY",
	'another TimeZone and DateStyle in the session: still nothing to report, and the session keeps them');

my $t0 = time;
my $s = summary($ix);
my $verify_seconds = time - $t0;
is_deeply([ @$s{qw(documents in_opensearch missing stale extra unbuildable)} ], [ $expected, $expected, 0, 0, 0, 0 ],
	'verify_summary: every document built and found, nothing missing, stale or extra');
like($s->{elapsed}, qr/^\d\d:\d\d:\d\d/, 'and the time it took');
$t0 = time;
FlussoTest::is_consistent($node, $db, $ix, 'the Perl checker agrees');
my $perl_seconds = time - $t0;
diag(sprintf('%d documents: flusso.verify_summary() %.2f s (elapsed %s), test/consistency.pl %.2f s',
		$expected, $verify_seconds, $s->{elapsed}, $perl_seconds));

# --- documents removed, changed and added behind flusso's back --------------------
my $filtered = q1('SELECT min(id) FROM users WHERE deleted_at IS NOT NULL');
my $filtered_absent = q1('SELECT max(id) FROM users WHERE deleted_at IS NOT NULL');
my $src6 = FlussoTest::os_doc($ix, 6);
$src6->{name} = 'Tampered';
is(os_put($ix, 6, $src6), 200, 'document 6 changed in OpenSearch');
# the same document written again as Perl writes it: keys sorted, 12.50 written 12.5
my $src7 = FlussoTest::os_doc($ix, 7);
is(os_put($ix, 7, $src7), 200, 'document 7 written again with its keys in another order');
is(os_delete($ix, 3), 200, 'document 3 removed from OpenSearch');
my $extra_doc = { id => 0, name => 'ghost' };
is(os_put($ix, $_, $extra_doc), 201, "document $_ added to OpenSearch") for (999999999, $filtered, 'not-a-number');
is_deeply(problems($ix),
	{ 3 => 'missing', 6 => 'stale', 999999999 => 'extra', $filtered => 'extra', 'not-a-number' => 'extra' },
	'verify reports exactly those: 3 missing, 6 stale, three extra (no row, filtered out, not a key), 7 equal');
$s = summary($ix);
is_deeply([ @$s{qw(documents in_opensearch missing stale extra)} ], [ $expected, $expected + 2, 1, 1, 3 ],
	'verify_summary counts them');
my $r = FlussoTest::consistency($node, $db, $ix);
is_deeply([ @$r{qw(missing stale extra)} ], [ 1, 1, 3 ], 'the Perl checker finds the same');

# --- why, for each --------------------------------------------------------------------
my $e = why($ix, 10);
is($e->{verdict}, 'the row exists and matches; OpenSearch has the same document', 'why 10: all is well');
ok($e->{row_exists} && $e->{filter}{keeps_row} && $e->{opensearch}{found} && $e->{opensearch}{same},
	'why 10: the row exists, the filter keeps it, OpenSearch has the same');
is($e->{document}{id}, 10, 'why 10: with the document that would be built');
like($e->{opensearch}{index}, qr/^t11-users_\d+$/, 'why 10: and the physical index behind the alias');
cmp_ok($e->{opensearch}{version}, '>', 0, 'why 10: and its version');
is($e->{index_state}{state}, 'seeded', 'why 10: and the index\'s state');
ok(why($ix, 7)->{opensearch}{same}, 'why 7: keys in another order and 12.5 for 12.50 are the same document');

$e = why($ix, 6);
like($e->{verdict}, qr/^OpenSearch has a different version and no change is on its way: it is stale \(a change to the row sends it again; flusso\.reindex\('t11-users'\) rebuilds the whole index\)$/,
	'why 6: stale');
is($e->{opensearch}{source}{name}, 'Tampered', 'why 6: with OpenSearch\'s copy');
isnt($e->{document}{name}, 'Tampered', 'why 6: beside what would be built');

$e = why($ix, 3);
like($e->{verdict}, qr/^OpenSearch does not have it and no change is on its way: it is missing/, 'why 3: missing');
ok(!$e->{opensearch}{found} && $e->{document}, 'why 3: OpenSearch has nothing, PostgreSQL builds it');

$e = why($ix, 999999999);
is($e->{verdict}, "no row of public.users has this key; yet OpenSearch has a document with this id: it is extra, "
	  . "and no change is on its way (flusso.reindex('t11-users') rebuilds the index without it)", 'why 999999999: no row, extra');
ok(!$e->{row_exists} && !defined $e->{document}, 'why 999999999: no row, no document');
is_deeply($e->{key}, { id => '999999999' }, 'why 999999999: the key it stands for');

$e = why($ix, 12345678);
is($e->{verdict}, 'no row of public.users has this key; OpenSearch has no document with this id either, as it should be',
	'why 12345678: no row, and rightly nothing in OpenSearch');

$e = why($ix, $filtered);
like($e->{verdict},
	qr/^the row exists but is filtered out by the filter at "filter" in the definition: \(users\.deleted_at IS NULL\); yet OpenSearch has a document with this id: it is extra/,
	'why a filtered-out row that OpenSearch has: filtered out, by which filter, extra');
ok($e->{row_exists} && !$e->{filter}{keeps_row} && !defined $e->{document}, 'the row exists, the filter drops it');
is($e->{filter}{path}, 'filter', 'the filter\'s path in the definition');
$e = why($ix, $filtered_absent);
like($e->{verdict}, qr/filtered out .*; OpenSearch has no document with this id either, as it should be$/,
	'why a filtered-out row OpenSearch rightly lacks');

$e = why($ix, 'not-a-number');
like($e->{verdict}, qr/^"not-a-number" cannot be a document id of this index: invalid input syntax for type bigint: "not-a-number"; yet OpenSearch has a document with this id: it is extra/,
	'why an id that cannot be a key');
ok(!defined $e->{key} && $e->{key_error}, 'its key is null, with the reason');

# --- a change on its way: a paused index ------------------------------------------------
q1("SELECT flusso.pause('$ix')");
ok(FlussoTest::wait_for(sub { q1("SELECT state FROM flusso.index_status WHERE name = '$ix'") eq 'paused' }, 'paused'),
	'the index is paused');
q1(q{UPDATE users SET name = 'Renamed' WHERE id = 11});
$e = why($ix, 11);
is($e->{verdict}, "the index is paused: OpenSearch has an older version; flusso.resume('t11-users') applies every change",
	'why 11 on a paused index: an older version, and what applies the change');
my ($ret, $out, $err) = $node->psql($db, "SELECT count(*) FROM flusso.verify('$ix')");
like($err, qr/NOTICE:  index "t11-users" is paused: the changes made since show as differences/,
	'verify says first that a paused index differs');
like($out, qr/^6$/, 'and reports the change beside the others');
q1("SELECT flusso.resume('$ix')");
ok(FlussoTest::wait_synced($node, $db, '600 s'), 'resumed: rebuilt and synced');
is_deeply(problems($ix), {}, 'the rebuild repaired every difference');

# --- a change on its way: bulk requests held back by the fault proxy -------------------
my $proxydir = "$ENV{TESTDIR}/t11-proxy";
my $proxy = `$root/test/faultproxy/faultproxy.sh start --upstream $FlussoTest::OS_URL --dir $proxydir`;
chomp $proxy;
like($proxy, qr{^http://}, 'fault proxy started');
q1("ALTER SYSTEM SET flusso.opensearch_url = '$proxy'; SELECT pg_reload_conf()");
ok(FlussoTest::wait_for(sub { q1('SELECT opensearch FROM flusso.status') eq 'reachable' }, 'through the proxy'),
	'the worker talks to OpenSearch through the proxy');
system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir, '{"freeze": true, "only_bulk": true}') == 0
  or die 'faults';
q1(q{UPDATE users SET name = 'On its way' WHERE id = 12});
ok(FlussoTest::wait_for(sub { q1("SELECT lag_seconds > 0 FROM flusso.index_status WHERE name = '$ix'") eq 't' }, 'lag'),
	'a change is held back: the index lags');
$e = why($ix, 12);
like($e->{verdict}, qr/^OpenSearch has an older version: a change is on its way \(lag \d+\.\d s\)$/,
	'why 12 while its change is held back: an older version, a change on its way, the lag');
($ret, $out, $err) = $node->psql($db, "SELECT json_object_agg(id, problem) FROM flusso.verify('$ix')");
like($err, qr/NOTICE:  index "t11-users" has changes on their way \(lag [\d.]+ s\): documents they change may show as differences/,
	'verify says first that changes are on their way');
is_deeply($json->decode($out), { 12 => 'stale' }, 'and reports the document meanwhile');
system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir, '{}') == 0 or die 'faults';
ok(FlussoTest::wait_synced($node, $db), 'released: synced');
is(why($ix, 12)->{verdict}, 'the row exists and matches; OpenSearch has the same document', 'why 12 once it arrived');
q1(q{ALTER SYSTEM RESET flusso.opensearch_url; SELECT pg_reload_conf()});
system("$root/test/faultproxy/faultproxy.sh", 'stop', '--dir', $proxydir);

# --- dead letters: a document OpenSearch rejects, one that cannot be built --------------
q1(q{CREATE TABLE things (id int PRIMARY KEY, val text NOT NULL);
	INSERT INTO things SELECT i, i::text FROM generate_series(1, 20) i;
	UPDATE things SET val = 'not a number' WHERE id = 7;
	SELECT flusso.create_index('t11-things', '{"table": "things", "on_error": "dead_letter",
		"opensearch": {"mappings": {"properties": {"val": {"type": "integer"}}}}}');
	CREATE TABLE posts (id int PRIMARY KEY, meta jsonb NOT NULL);
	INSERT INTO posts SELECT i, jsonb_build_object('words', i * 10) FROM generate_series(1, 30) i;
	SELECT flusso.create_index('t11-posts', '{"table": "posts", "on_error": "dead_letter",
		"columns": ["id", {"name": "words", "expr": "(meta->>''words'')::int"}]}')});
ok(FlussoTest::wait_synced($node, $db), 'two more indexes synced');
q1(q{UPDATE posts SET meta = '{"words": "lots"}' WHERE id = 13});
ok(FlussoTest::wait_for(sub { q1(q{SELECT count(*) FROM flusso.dead_letters WHERE index_name IN ('t11-things', 't11-posts')}) eq '2' },
		'two dead letters'), 'a rejected document and an unbuildable one are in dead letters');

is_deeply(problems('t11-things'), { 7 => 'missing' }, 'verify: the rejected document is missing');
$e = why('t11-things', 7);
like($e->{verdict}, qr/^it is in dead letters since \S+ \S+: .*mapper_parsing_exception.*; OpenSearch does not have it; fix the cause, then flusso\.retry_dead_letters\('t11-things'\) sends it again$/,
	'why 7: in dead letters, with the error, and what sends it again');
like($e->{dead_letter}{error}, qr/mapper_parsing_exception/, 'why 7: the dead letter\'s error');
ok($e->{dead_letter}{failed_at}, 'why 7: and its time');
is($e->{document}{val}, 'not a number', 'why 7: PostgreSQL still builds it');

is_deeply(problems('t11-posts'), { 13 => 'unbuildable' },
	'verify: a document that cannot be built is unbuildable (not extra, though OpenSearch keeps its older version)');
$s = summary('t11-posts');
is_deeply([ @$s{qw(documents in_opensearch missing stale extra unbuildable)} ], [ 30, 30, 0, 0, 0, 1 ],
	'verify_summary of the page that fails: the others compared one by one');
$e = why('t11-posts', 13);
like($e->{verdict}, qr/^the document cannot be built: invalid input syntax for type integer: "lots" \(at columns\[1\]\.expr in the definition\); in dead letters since [^;]+; OpenSearch keeps an older version$/,
	'why 13: cannot be built, where in the definition, in dead letters, OpenSearch keeps the older version');
is($e->{build_error}{path}, 'columns[1].expr', 'why 13: the path of the failing expression');
is($e->{opensearch}{source}{words}, 130, 'why 13: the older version OpenSearch keeps');

# --- a composite key: ids with escapes ------------------------------------------------
q1(q{CREATE TABLE pairs (org text, n int, note text, PRIMARY KEY (org, n));
	INSERT INTO pairs VALUES ('a|b', 1, 'x'), ('c\d', 2, 'y'), ('plain', 3, 'z');
	SELECT flusso.create_index('t11-pairs', '{"table": "pairs"}')});
ok(FlussoTest::wait_synced($node, $db), 'an index with a composite key synced');
is_deeply(problems('t11-pairs'), {}, 'composite key: nothing to report');
is(os_delete('t11-pairs', 'a\|b|1'), 200, 'document a\|b|1 removed from OpenSearch');
os_put('t11-pairs', $_, { note => 'ghost' }) for ('x|1', 'bad', 'plain|x');
is_deeply(problems('t11-pairs'), { 'a\|b|1' => 'missing', 'x|1' => 'extra', 'bad' => 'extra', 'plain|x' => 'extra' },
	'composite key: missing, and extra for no row, a wrong number of parts, a part of the wrong type');
is_deeply(why('t11-pairs', 'a\|b|1')->{key}, { org => 'a|b', n => '1' }, 'why a\|b|1: its key, unescaped');
like(why('t11-pairs', 'bad')->{verdict}, qr/^"bad" cannot be a document id of this index: it is not the 2 values of the key \(org, n\) joined by "\|"/,
	'why "bad": not a key of two columns');

# --- rights ----------------------------------------------------------------------------
q1(q{CREATE ROLE t11_other; CREATE ROLE t11_app;
	GRANT EXECUTE ON FUNCTION flusso.verify(text), flusso.verify_summary(text), flusso.explain_document(text, text),
		flusso.create_index(text, jsonb) TO t11_other, t11_app;
	CREATE TABLE app_items (id int PRIMARY KEY, v text);
	INSERT INTO app_items SELECT i, 'item ' || i FROM generate_series(1, 10) i;
	GRANT SELECT ON app_items TO t11_app;
	CREATE ROLE t11_nobody});
like(fails("SET ROLE t11_nobody; SELECT * FROM flusso.verify('$ix')"), qr/ERROR:  42501: permission denied for function verify/,
	'verify is not for PUBLIC');
like(fails("SET ROLE t11_nobody; SELECT flusso.explain_document('$ix', '1')"),
	qr/ERROR:  42501: permission denied for function explain_document/, 'nor is explain_document');
$err = fails("SET ROLE t11_other; SELECT * FROM flusso.verify('$ix')");
like($err, qr/ERROR:  42501: permission denied to verify index "t11-users"/, 'a role that may not manage the index gets 42501');
like($err, qr/DETAIL:  Index "t11-users" belongs to role "\w+"/, 'naming its owner');
like(fails("SET ROLE t11_other; SELECT * FROM flusso.verify_summary('$ix')"), qr/ERROR:  42501: permission denied to verify index/,
	'verify_summary too');
like(fails("SET ROLE t11_other; SELECT flusso.explain_document('$ix', '1')"),
	qr/ERROR:  42501: permission denied to explain a document of index "t11-users"/, 'explain_document too');
like(fails(q{SELECT * FROM flusso.verify('t11-nonesuch')}), qr/ERROR:  42704: index "t11-nonesuch" does not exist/,
	'an index that does not exist: 42704');
q1(q{SET ROLE t11_app; SELECT flusso.create_index('t11-app', '{"table": "public.app_items"}')});
ok(FlussoTest::wait_synced($node, $db), 'an index of another owner synced');
is($node->safe_psql($db, q{SET ROLE t11_app; SELECT count(*) FROM flusso.verify('t11-app')}), '0', 'its owner verifies it');
q1(q{REVOKE SELECT ON app_items FROM t11_app});
like(fails(q{SELECT * FROM flusso.verify('t11-app')}), qr/ERROR:  42501: permission denied for table app_items/,
	'its statements run with its owner\'s rights, even when a superuser verifies it');
like(fails(q{SELECT flusso.explain_document('t11-app', '1')}), qr/ERROR:  42501: permission denied for table app_items/,
	'and so do those of explain_document');

# --- OpenSearch unreachable ------------------------------------------------------------
q1(q{ALTER SYSTEM SET flusso.opensearch_url = 'http://flusso:s3cret@127.0.0.1:9'; SELECT pg_reload_conf()});
sleep 1;
$err = fails("SELECT * FROM flusso.verify('$ix')");
like($err, qr/ERROR:  08006: could not reach OpenSearch at "http:\/\/flusso:\*\*\*\@127\.0\.0\.1:9"/,
	'OpenSearch unreachable: 08006, naming the URL without its password');
like($err, qr/DETAIL:  _mget for index "t11-users" failed: .+/, 'with what failed');
like($err, qr/HINT:  Check that OpenSearch runs and that flusso.opensearch_url names it/, 'and what to check');
unlike($err, qr/s3cret/, 'the password appears nowhere');
$e = why($ix, 10);
like($e->{opensearch}{error}, qr/^could not reach OpenSearch at "http:\/\/flusso:\*\*\*\@127\.0\.0\.1:9": /,
	'explain_document still answers, saying OpenSearch could not be asked');
like($e->{verdict}, qr/^the row exists and would be built, but could not reach OpenSearch/, 'in its verdict too');
q1(q{ALTER SYSTEM RESET flusso.opensearch_url; SELECT pg_reload_conf()});
sleep 1;
is_deeply(problems($ix), {}, 'and verify works again once it is back');

done_testing();
