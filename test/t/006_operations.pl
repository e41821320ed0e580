# Operations: two databases at once, metrics, lag, WAL safety (a slot
# invalidated by max_slot_wal_keep_size, a slot gone as after a failover),
# and pg_dump / restore of a database with flusso.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{FLUSSO_ROOT};
FlussoTest::os_clean('t6-*');
my $node = FlussoTest::new_node('ops', database => 'one', create_extension => 0,
	'flusso.max_lag_bytes' => "'64MB'");
my $schema = q{CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
	INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 200) i};

# --- two databases, each with its own worker, slot and indexes -------------------
$node->safe_psql('postgres', 'CREATE DATABASE one');
$node->safe_psql('postgres', 'CREATE DATABASE two');
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.database = 'one, two'});
$node->reload;
for my $db (qw(one two))
{
	$node->safe_psql($db, "CREATE EXTENSION flusso; $schema");
	$node->safe_psql($db, "SELECT flusso.create_index('t6-$db', '{\"table\": \"notes\"}')");
}
ok(FlussoTest::wait_synced($node, $_), "database $_ synced") for qw(one two);
$node->safe_psql($_, "UPDATE notes SET body = 'changed in $_' WHERE id = 7") for qw(one two);
ok(FlussoTest::wait_synced($node, $_), "database $_ streams") for qw(one two);
is(FlussoTest::os_doc('t6-one', 7)->{body}, 'changed in one', 'the first database syncs its own index');
is(FlussoTest::os_doc('t6-two', 7)->{body}, 'changed in two', 'and the second its own');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE plugin = 'flusso'}),
	'2', 'one slot per database');
is($node->safe_psql('one', q{SELECT string_agg(database, ',' ORDER BY database) FROM flusso.status}),
	'one,two', 'status has a row per database');
is($node->safe_psql('one', q{SELECT string_agg(database || ':' || name, ',' ORDER BY name) FROM flusso.index_status}),
	'one:t6-one,two:t6-two', 'index_status says which database each index is in');
FlussoTest::is_consistent($node, $_, "t6-$_", "database $_") for qw(one two);

# --- metrics ---------------------------------------------------------------------------
my $metrics = $node->safe_psql('one', 'SELECT flusso.metrics()');
like($metrics, qr/^# TYPE flusso_changes_captured_total counter$/m, 'metrics: counters are typed');
like($metrics, qr/^flusso_changes_committed_total\{database="two"\} [1-9]/m, 'metrics: per database');
like($metrics, qr/^flusso_index_documents_upserted_total\{database="one",index="t6-one"\} [1-9]/m,
	'metrics: per index');
like($metrics, qr/^flusso_bulk_request_duration_seconds_bucket\{database="one",le="\+Inf"\} [1-9]/m,
	'metrics: a bulk latency histogram');
like($metrics, qr/^flusso_index_state\{database="two",index="t6-two",state="seeded"\} 1$/m,
	'metrics: index state');
my $bad = grep { !/^(# (HELP|TYPE) \S+ .+|[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+(Inf)?)$/ } split /\n/, $metrics;
is($bad, 0, 'every line is valid Prometheus text exposition');
$node->safe_psql('one', 'CREATE ROLE watcher IN ROLE pg_monitor');
my ($ret) = $node->psql('one', 'SET ROLE watcher; SELECT flusso.metrics()');
is($ret, 0, 'pg_monitor members may read the metrics');

# --- lag in seconds and bytes, and the max_lag_bytes warning --------------------------
my $s = FlussoTest::status($node, 'one');
ok(defined $s->{lag_seconds} && $s->{lag_seconds} < 5, 'lag in seconds is shown, and small when synced');
# OpenSearch out of reach: a watched change cannot be acknowledged, the slot holds WAL
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.opensearch_url = 'http://127.0.0.1:9'});
# a bare number is bytes (it was once read as kB), and shows as given
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.max_lag_bytes = 1000000});
$node->reload;
ok(FlussoTest::wait_for(sub { $node->safe_psql('postgres', 'SHOW flusso.max_lag_bytes') eq '1000000' }, 'reload'),
	'flusso.max_lag_bytes shows as given');
$node->safe_psql('one', q{UPDATE notes SET body = 'waiting' WHERE id = 8;
	CREATE TABLE filler (x text); INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000)});
ok(FlussoTest::wait_for(sub { FlussoTest::status($node, 'one')->{lag_warning} }, 'warning'),
	'past flusso.max_lag_bytes the status warns');
ok(FlussoTest::wait_for(sub { scalar FlussoTest::log_lines($node, qr/holds \d+ MB of WAL, more than flusso.max_lag_bytes \(1000000\)/) }, 'log'),
	'and the log says so');
cmp_ok(FlussoTest::status($node, 'one')->{lag_seconds}, '>', 0, 'lag in seconds grows while a change waits');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.max_lag_bytes});
$node->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.opensearch_url});
$node->reload;
ok(FlussoTest::wait_synced($node, 'one'), 'synced again once OpenSearch is back');
ok(FlussoTest::wait_for(sub { !FlussoTest::status($node, 'one')->{lag_warning} }, 'cleared'),
	'the warning clears');

# --- a slot invalidated by max_slot_wal_keep_size --------------------------------------
$node->safe_psql('postgres', q{ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'});
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.enabled = off});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::worker_pid($node, 'one') eq '' }, 'stopped'), 'workers stopped');
$node->safe_psql('one', q{UPDATE notes SET body = 'while the slot was lost' WHERE id = 9});
for (1 .. 4)
{
	$node->safe_psql('one', q{INSERT INTO filler SELECT repeat('y', 1000) FROM generate_series(1, 20000)});
	$node->safe_psql('postgres', 'SELECT pg_switch_wal(); CHECKPOINT');
}
is($node->safe_psql('postgres', q{SELECT wal_status FROM pg_replication_slots WHERE database = 'one'}),
	'lost', 'the slot of database one is invalidated');
my $gen = $node->safe_psql('one', q{SELECT generation FROM flusso.index_status WHERE name = 't6-one'});
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.enabled = on});
$node->reload;
ok(FlussoTest::wait_synced($node, 'one', '120 s'), 'synced after the slot was recreated');
ok(scalar(FlussoTest::log_lines($node, qr/replication slot "flusso" was invalidated/)) >= 1,
	'the log says the slot was invalidated');
cmp_ok($node->safe_psql('one', q{SELECT generation FROM flusso.index_status WHERE name = 't6-one'}),
	'>', $gen, 'and every index was rebuilt');
is(FlussoTest::os_doc('t6-one', 9)->{body}, 'while the slot was lost', 'changes made meanwhile are there');
FlussoTest::is_consistent($node, 'one', 't6-one', 'after an invalidated slot');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET max_slot_wal_keep_size});
$node->reload;

# --- the slot gone, as after a failover --------------------------------------------------
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.enabled = off});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::worker_pid($node, 'two') eq '' }, 'stopped'), 'workers stopped');
my $slot = $node->safe_psql('postgres', q{SELECT slot_name FROM pg_replication_slots WHERE database = 'two'});
$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('$slot')");
$node->safe_psql('two', q{DELETE FROM notes WHERE id = 11});
$gen = $node->safe_psql('two', q{SELECT generation FROM flusso.index_status WHERE name = 't6-two'});
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.enabled = on});
$node->reload;
ok(FlussoTest::wait_synced($node, 'two', '120 s'), 'synced after the slot was found missing');
cmp_ok($node->safe_psql('two', q{SELECT generation FROM flusso.index_status WHERE name = 't6-two'}),
	'>', $gen, 'the index was rebuilt');
ok(!defined FlussoTest::os_doc('t6-two', 11), 'a row deleted meanwhile is gone from the index');
FlussoTest::is_consistent($node, 'two', 't6-two', 'after a lost slot');

# --- pg_dump and restore ------------------------------------------------------------------
my $dump = "$ENV{TESTDIR}/t6-two.dump";
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('two')], 'pg_dump');
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.database = 'one'});
$node->reload;
$node->safe_psql('postgres', 'DROP DATABASE two');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '-d', $node->connstr('restored'), $dump], 'pg_restore');
is($node->safe_psql('restored', q{SELECT name FROM flusso.indexes}), 't6-two',
	'the definitions are restored');
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.database = 'one, restored'});
$node->reload;
ok(FlussoTest::wait_synced($node, 'restored', '120 s'), 'the restored database syncs');
FlussoTest::is_consistent($node, 'restored', 't6-two', 'after pg_dump and restore');

$node->stop;
done_testing();
