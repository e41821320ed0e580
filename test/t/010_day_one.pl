# What a DBA hit on day one, each a regression test: drops in quick
# succession, a name dropped and created again, waiting calls that never
# ended, the slot left behind by DROP EXTENSION or a new slot name, orphan
# generations after DROP and CREATE EXTENSION, requests held back after an
# outage, wait_synced(refresh), the states and health shown, and the
# warnings at CREATE EXTENSION without wal_level = logical.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $db = 'dayone';
FlussoTest::os_clean('t10-*');
my $node = FlussoTest::new_node('dayone', database => $db, 'flusso.retry_max_interval' => "'60s'",
	'flusso.request_timeout' => "'1s'");
sub q1 { return $node->safe_psql($db, $_[0]); }
sub os_exists { my ($code) = FlussoTest::os_request('HEAD', "/$_[0]"); return $code == 200; }
sub requests_done { return FlussoTest::wait_for(sub { q1('SELECT count(*) FROM flusso.requests') eq '0' }, 'requests'); }

q1(q{CREATE TABLE items (id int PRIMARY KEY, v text);
	INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 20) i});

# --- drops in quick succession: none lost ---------------------------------------
for my $round (1 .. 5)
{
	q1("SELECT flusso.create_index('t10-ra', '{\"table\": \"items\"}');
		SELECT flusso.create_index('t10-rb', '{\"table\": \"items\"}')");
	ok(FlussoTest::wait_synced($node, $db), "round $round: two indexes synced");
	q1(q{SELECT flusso.drop_index('t10-ra', true)});
	q1(q{SELECT flusso.drop_index('t10-rb', true)});
	ok(requests_done(), "round $round: both drops handled");
	ok(FlussoTest::wait_for(sub { q1('SELECT count(*) FROM flusso.index_state') eq '0' }, 'state gone'),
		"round $round: no state row is left");
	ok(FlussoTest::wait_for(sub { !os_exists('t10-ra_1') && !os_exists('t10-rb_1') && !os_exists('t10-rb') }, 'os gone'),
		"round $round: neither physical index nor alias is left");
}

# --- other requests arriving together: each pair ends as the later one says -------
sub state_of { return q1(qq{SELECT coalesce((SELECT state FROM flusso.index_status WHERE name = '$_[0]'), 'none')}); }
# gone from index_status, and neither alias nor any generation left in OpenSearch
sub dropped_everywhere
{
	my ($ix) = @_;
	my (undef, $left) = FlussoTest::os_request('GET', "/$ix*/_alias");
	return state_of($ix) eq 'none' && ref $left eq 'HASH' && !%$left;
}
sub doc_keys { my $d = FlussoTest::os_doc(@_); return $d ? join(',', sort keys %$d) : ''; }
my $def = q{'{"table": "items"}'};
my $narrow = q{'{"table": "items", "columns": ["id"]}'};
my @pairs = (
	[ 'create, then pause', sub { "SELECT flusso.create_index('$_[0]', $def)" }, sub { "SELECT flusso.pause('$_[0]')" },
	  sub { my $ix = shift; FlussoTest::wait_for(sub { state_of($ix) eq 'paused' }, 'paused') } ],
	[ 'pause, then resume', sub { "SELECT flusso.pause('$_[0]')" }, sub { "SELECT flusso.resume('$_[0]')" },
	  sub { FlussoTest::wait_synced($node, $db) && state_of($_[0]) eq 'seeded' } ],
	[ 'resume, then pause', sub { "SELECT flusso.resume('$_[0]')" }, sub { "SELECT flusso.pause('$_[0]')" },
	  sub { my $ix = shift; FlussoTest::wait_for(sub { state_of($ix) eq 'paused' }, 'paused') } ],
	[ 'reindex, then alter', sub { "SELECT flusso.reindex('$_[0]')" }, sub { "SELECT flusso.alter_index('$_[0]', $narrow)" },
	  sub { FlussoTest::wait_synced($node, $db) && doc_keys($_[0], 7) eq 'id' } ],
	[ 'alter, then reindex', sub { "SELECT flusso.alter_index('$_[0]', $def)" }, sub { "SELECT flusso.reindex('$_[0]')" },
	  sub { FlussoTest::wait_synced($node, $db) && doc_keys($_[0], 7) eq 'id,v' } ],
	[ 'reindex, then drop', sub { "SELECT flusso.reindex('$_[0]')" }, sub { "SELECT flusso.drop_index('$_[0]', true)" },
	  sub { my $ix = shift; requests_done() && FlussoTest::wait_for(sub { dropped_everywhere($ix) }, 'dropped') } ],
	[ 'create, then drop', sub { "SELECT flusso.create_index('$_[0]', $def)" }, sub { "SELECT flusso.drop_index('$_[0]', true)" },
	  sub { my $ix = shift; requests_done() && FlussoTest::wait_for(sub { dropped_everywhere($ix) }, 'dropped')
			  && q1(qq{SELECT count(*) FROM flusso.index_state}) eq '0' } ],
);
for my $try (1 .. 3)
{
	# pairs that need a synced index start from one; each pair reuses the name
	my $ix = "t10-pair$try";
	for my $pair (@pairs)
	{
		my ($what, $first, $second, $ended) = @$pair;
		if ($what !~ /^create/ && state_of($ix) eq 'none')
		{
			q1("SELECT flusso.create_index('$ix', $def)");
			FlussoTest::wait_synced($node, $db);
		}
		if ($what eq 'resume, then pause')
		{
			q1("SELECT flusso.pause('$ix')");
			FlussoTest::wait_for(sub { state_of($ix) eq 'paused' }, 'paused first');
		}
		q1($first->($ix));
		q1($second->($ix));
		ok($ended->($ix), "try $try: $what ends as the second says");
		if ($what eq 'create, then pause' || $what eq 'resume, then pause')
		{
			q1("SELECT flusso.resume('$ix')");
			ok(FlussoTest::wait_synced($node, $db), "try $try: $what: resumed, it syncs");
		}
	}
}

# --- a name dropped and created again at once: the new index starts afresh ----
q1(q{SELECT flusso.create_index('t10-again', '{"table": "items"}')});
ok(FlussoTest::wait_synced($node, $db), 'an index synced');
q1(q{SELECT flusso.reindex('t10-again', true)});
is(q1(q{SELECT generation FROM flusso.index_status WHERE name = 't10-again'}), '2', 'at its second generation');
q1(q{SELECT flusso.drop_index('t10-again'); SELECT flusso.create_index('t10-again', '{"table": "items", "columns": ["id"]}')});
ok(FlussoTest::wait_synced($node, $db), 'dropped and created again, it syncs');
is(q1(q{SELECT generation FROM flusso.index_status WHERE name = 't10-again'}), '1',
	'the new one starts from generation 1, not from the old one\'s state');
is_deeply([sort keys %{ FlussoTest::os_doc('t10-again', 5) }], ['id'], 'with the new definition');
ok(FlussoTest::wait_for(sub { !os_exists('t10-again_2') }, 'old generation replaced'),
	'the old one\'s generation, left by the drop, is replaced once the new one is live');

# --- every waiting call ends ------------------------------------------------------
q1(q{SELECT flusso.pause('t10-again')});
ok(FlussoTest::wait_for(sub { q1(q{SELECT state FROM flusso.index_status WHERE name = 't10-again'}) eq 'paused' },
		'paused'), 'paused');
my $t0 = time;
my ($ret, $out, $err) = $node->psql($db, q{SELECT flusso.reindex('t10-again', wait => true)});
isnt($ret, 0, 'reindex(wait => true) of a paused index fails');
like($err, qr/index "t10-again" is paused; flusso.resume\('t10-again'\) rebuilds it/, 'saying what to do');
cmp_ok(time - $t0, '<', 10, 'at once');
q1(q{SELECT flusso.resume('t10-again')});
$node->safe_psql('postgres', 'CREATE DATABASE unsynced');
$node->safe_psql('unsynced', q{CREATE EXTENSION flusso; CREATE TABLE t (id int PRIMARY KEY);
	SELECT flusso.create_index('t10-unsynced', '{"table": "t"}')});
($ret, $out, $err) = $node->psql('unsynced', q{SELECT flusso.reindex('t10-unsynced', wait => true)});
like($err, qr/no flusso sync worker serves database "unsynced".*\n.*\n.*Add the database to flusso.database/s,
	'reindex in a database flusso does not sync fails at once, with the fix');
($ret, $out, $err) = $node->psql('unsynced', q{SELECT flusso.wait_synced('1 hour')});
like($err, qr/no flusso sync worker serves database "unsynced"/, 'and so does wait_synced');

# --- warnings where syncing cannot happen ------------------------------------------
($ret, $out, $err) = $node->psql('unsynced', q{SELECT flusso.create_index('t10-unsynced2', '{"table": "t"}')});
like($err, qr/WARNING:  no flusso sync worker serves database "unsynced": the indexes defined here are not synced/,
	'create_index in a database flusso does not sync warns');
my $plain = PostgreSQL::Test::Cluster->new('replica_wal');
$plain->init;
$plain->append_conf('postgresql.conf', "shared_preload_libraries = 'flusso'\nflusso.database = 'postgres'\n");
$plain->start;
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION flusso');
is($ret, 0, 'CREATE EXTENSION succeeds without wal_level = logical');
like($err, qr/WARNING:  flusso cannot sync: wal_level is "(?:minimal|replica)".*\n.*\n.*HINT:  Set wal_level = logical/,
	'but says why nothing will sync, and the fix');
($ret, $out, $err) = $plain->psql('postgres', q{CREATE TABLE t (id int PRIMARY KEY);
	SELECT flusso.create_index('t10-nowal', '{"table": "t"}')});
like($err, qr/flusso cannot sync: wal_level is "(?:minimal|replica)"/, 'and so does create_index');
$plain->stop;

# --- states and health ------------------------------------------------------------------
ok(FlussoTest::wait_synced($node, $db), 'synced');
q1(q{INSERT INTO items SELECT i, 'more ' || i FROM generate_series(21, 3000) i});
ok(FlussoTest::wait_synced($node, $db), 'more rows synced');
q1(q{SELECT flusso.reindex('t10-again')});
ok(FlussoTest::wait_for(sub { q1(q{SELECT state FROM flusso.index_status WHERE name = 't10-again'}) eq 'rebuilding' }, 'rebuilding', 20)
	  || q1(q{SELECT generation FROM flusso.index_status WHERE name = 't10-again'}) > 1,
	'during a reindex the index shows "rebuilding" (or was quicker than the poll)');
ok(FlussoTest::wait_synced($node, $db), 'synced after the reindex');
is(q1(q{SELECT state || ' ' || error_active FROM flusso.index_status WHERE name = 't10-again'}), 'seeded false',
	'seeded again, no error active');
is(q1(q{SELECT healthy FROM flusso.status}), 't', 'status: healthy');
q1(q{CREATE TABLE bad (id int PRIMARY KEY, v text); INSERT INTO bad VALUES (1, 'x');
	SELECT flusso.create_index('t10-bad', '{"table": "bad", "on_error": "stop",
		"opensearch": {"mappings": {"properties": {"v": {"type": "integer"}}}}}')});
ok(FlussoTest::wait_for(sub { q1(q{SELECT state FROM flusso.index_status WHERE name = 't10-bad'}) eq 'stopped' }, 'bad stopped'),
	'an index stops on a rejected document');
is(q1(q{SELECT error_active FROM flusso.index_status WHERE name = 't10-bad'}), 't', 'its error is active');
is(q1(q{SELECT healthy FROM flusso.status}), 'f', 'and status is not healthy');
like(q1(q{SELECT flusso.metrics()}), qr/flusso_index_error_active\{database="dayone",index="t10-bad"\} 1/,
	'metrics say so too');
q1(q{UPDATE bad SET v = '1'; SELECT flusso.reindex('t10-bad', true)});
ok(FlussoTest::wait_synced($node, $db), 'fixed and reindexed');
is(q1(q{SELECT error_active || ' ' || (last_error IS NOT NULL) FROM flusso.index_status WHERE name = 't10-bad'}), 'false true',
	'the error is kept but no longer active');
is(q1(q{SELECT healthy FROM flusso.status}), 't', 'healthy again');

# --- wait_synced(refresh => true): searchable, not only acknowledged --------------
q1(q{CREATE TABLE slowrefresh (id int PRIMARY KEY, v text);
	SELECT flusso.create_index('t10-refresh', '{"table": "slowrefresh",
		"opensearch": {"settings": {"refresh_interval": "1h"}}}')});
ok(FlussoTest::wait_synced($node, $db), 'an index with a long refresh interval');
q1(q{INSERT INTO slowrefresh VALUES (1, 'findable')});
is(q1(q{SELECT flusso.wait_synced('60 s', refresh => true)}), 't', 'wait_synced(refresh => true)');
my ($sc, $res) = FlussoTest::os_request('POST', '/t10-refresh/_search', { query => { match => { v => 'findable' } } });
is($res->{hits}{total}{value}, 1, 'the document is found by a search right after');

# --- OpenSearch back: what waited goes at once, not after the backoff ----------------
my $osdir = $ENV{FLUSSO_OPENSEARCH_DIR};
system("$ENV{FLUSSO_ROOT}/test/opensearch/opensearch.sh kill 1 --signal STOP --dir $osdir >/dev/null 2>&1");
q1(q{UPDATE items SET v = 'during the outage' WHERE id = 1});
sleep 40;	# the retry backoff grows to tens of seconds meanwhile
# resume it just after a retry failed: the next one is then more than 10 s
# away, so what goes within seconds went because the probe found it back
# (resumed just before a retry was due, the retry itself would send them)
my $failed_retries = sub { scalar(() = slurp_file($node->logfile) =~ /flusso: bulk request failed: .*retrying with backoff/g) };
my $failed_before = $failed_retries->();
ok(FlussoTest::wait_for(sub { $failed_retries->() > $failed_before }, 'a retry failed', 60),
	'a retry fails while OpenSearch is stopped');
system("$ENV{FLUSSO_ROOT}/test/opensearch/opensearch.sh kill 1 --signal CONT --dir $osdir >/dev/null 2>&1");
$t0 = time;
ok(FlussoTest::wait_for(sub { (FlussoTest::os_doc('t10-again', 1) // {})->{id} && q1('SELECT flusso.wait_synced(\'1 s\')') eq 't' },
		'synced after the outage', 60), 'synced once OpenSearch is back');
cmp_ok(time - $t0, '<', 5, sprintf('within seconds (%.1f s), not after the retry backoff', time - $t0));
like(slurp_file($node->logfile), qr/flusso: OpenSearch answers again; the waiting requests are sent now/,
	'the waiting requests went as soon as OpenSearch answered');

# --- DROP EXTENSION drops the slot; so does a new slot name ---------------------------
is(q1(q{SELECT count(*) FROM pg_replication_slots WHERE plugin = 'flusso'}), '1', 'one slot');
q1(q{DROP EXTENSION flusso});
ok(FlussoTest::wait_for(sub { q1(q{SELECT count(*) FROM pg_replication_slots WHERE plugin = 'flusso'}) eq '0' }, 'slot gone'),
	'DROP EXTENSION: the slot goes with it');
# the log line follows the drop: wait for it too
ok(FlussoTest::wait_for(sub { slurp_file($node->logfile) =~ /flusso dropped replication slot "flusso": the flusso extension is not installed in database "dayone"/ },
		'logged'), 'and the log says so');
# a slot left while no worker ran (dropped with the server down) goes at the next start
q1(q{CREATE EXTENSION flusso});
ok(FlussoTest::wait_for(sub { q1(q{SELECT count(*) FROM pg_replication_slots WHERE plugin = 'flusso'}) eq '1' }, 'slot again'),
	'CREATE EXTENSION: a slot again');
$node->append_conf('postgresql.conf', "flusso.enabled = off\n");
$node->restart;
q1(q{DROP EXTENSION flusso});
$node->append_conf('postgresql.conf', "flusso.enabled = on\n");
$node->restart;
ok(FlussoTest::wait_for(sub { q1(q{SELECT count(*) FROM pg_replication_slots WHERE plugin = 'flusso'}) eq '0' }, 'stale slot gone'),
	'a slot left while no worker ran goes when the worker starts');
q1(q{CREATE EXTENSION flusso; SELECT flusso.create_index('t10-renamed', '{"table": "items"}')});
ok(FlussoTest::wait_synced($node, $db), 'synced on slot "flusso"');
$node->append_conf('postgresql.conf', "flusso.slot_name = 'flusso_new'\n");
$node->restart;
ok(FlussoTest::wait_for(sub { q1(q{SELECT string_agg(slot_name, ',') FROM pg_replication_slots WHERE plugin = 'flusso'}) eq 'flusso_new' },
		'renamed'), 'after a new slot_name only the new slot is left');
ok(FlussoTest::wait_for(sub { slurp_file($node->logfile) =~ /flusso dropped replication slot "flusso": flusso.slot_name is "flusso_new" now/ },
		'logged'), 'the old one was dropped, said in the log');

# --- DROP and CREATE EXTENSION: no orphan generations -------------------------------
ok(FlussoTest::wait_synced($node, $db), 'synced on the new slot');
my $gen = q1(q{SELECT generation FROM flusso.index_status WHERE name = 't10-renamed'});
q1(q{SELECT flusso.reindex('t10-renamed', true); SELECT flusso.reindex('t10-renamed', true)});
is(q1(q{SELECT generation FROM flusso.index_status WHERE name = 't10-renamed'}), $gen + 2, 'two reindexes later');
q1(q{DROP EXTENSION flusso; CREATE EXTENSION flusso; SELECT flusso.create_index('t10-renamed', '{"table": "items"}')});
ok(FlussoTest::wait_synced($node, $db), 'created again after DROP and CREATE EXTENSION');
is(q1(q{SELECT generation FROM flusso.index_status WHERE name = 't10-renamed'}), '1', 'generations restart at 1');
ok(FlussoTest::wait_for(sub { !os_exists('t10-renamed_' . ($gen + 2)) }, 'orphan gone'),
	'the generation left by the dropped extension is replaced, not orphaned');
FlussoTest::is_consistent($node, $db, 't10-renamed', 'at the end');
$node->stop;
done_testing();
