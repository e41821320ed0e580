# Crashes and restarts under live load, a transaction too big to capture,
# and indexes created and dropped while the worker runs.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $db = 'app';
my $ix = 't4-users';
my $root = $ENV{FLUSSO_ROOT};
FlussoTest::os_clean('t4-*');
my $node = FlussoTest::new_node('crash', database => $db, 'flusso.batch_size' => '300');
$node->command_ok(['psql', '-X', '-q', '-v', 'n=400', '-d', $db, '-f', "$root/test/bench/dataset.sql"],
	'load a dataset');
my $def = slurp_file("$root/test/bench/users_index.json");
$node->safe_psql($db, "SELECT flusso.create_index('$ix', \$\$$def\$\$)");
ok(FlussoTest::wait_synced($node, $db), 'backfilled');

# A load that survives server crash-restarts: psql is started again until the end.
sub start_load
{
	my ($seconds) = @_;
	my $connstr = $node->connstr($db);
	my $script = qq{end=\$((SECONDS+$seconds)); while [ \$SECONDS -lt \$end ]; do }
	  . qq{psql -X -q -d "$connstr" -v seconds=\$((end-SECONDS)) -f $root/test/load.sql >/dev/null 2>&1 || sleep 0.2; done};
	return IPC::Run::start(['bash', '-c', $script]);
}

# --- kill -9 and pg_terminate_backend of the worker under load -----------------
my $load = start_load(25);
for my $round (1 .. 2)
{
	usleep(2_000_000 + int(rand(2_000_000)));
	my $pid = FlussoTest::worker_pid($node, $db);
	kill 'KILL', $pid if $pid;
	ok(FlussoTest::wait_for(sub { my $p = FlussoTest::worker_pid($node, $db); $p ne '' && $p ne $pid }, 'back'),
		"kill -9 #$round: the worker comes back");
	usleep(1_000_000 + int(rand(2_000_000)));
	$pid = FlussoTest::worker_pid($node, $db);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)") if $pid;
	ok(FlussoTest::wait_for(sub { my $p = FlussoTest::worker_pid($node, $db); $p ne '' && $p ne $pid }, 'back'),
		"pg_terminate_backend #$round: the worker comes back");
}

# --- an index created, and another dropped, while the load runs -----------------
$node->safe_psql($db, q{SELECT flusso.create_index('t4-companies', '{"table": "companies",
	"children": [{"name": "users", "table": "users", "type": "count"}]}')});
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT state FROM flusso.index_status WHERE name = 't4-companies'}) eq 'seeded'
		}, 'second index seeded', 120), 'an index created under load is backfilled while the other stays live');
$node->safe_psql($db, q{SELECT flusso.create_index('t4-tags', '{"table": "tags"}')});
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc('t4-tags', 1) }, 'tags', 180), 'a third index is written');
$node->safe_psql($db, q{SELECT flusso.drop_index('t4-tags', drop_remote => true)});
ok(FlussoTest::wait_for(sub { (FlussoTest::os_request('HEAD', '/t4-tags_1'))[0] == 404 }, 'dropped'),
	'drop_index(drop_remote) removes it from OpenSearch');
is($node->safe_psql($db, q{SELECT count(*) FROM flusso.index_status WHERE name = 't4-tags'}), '0',
	'and from status');

$load->finish;
ok(FlussoTest::wait_synced($node, $db, '180 s'), 'synced after the load');
FlussoTest::is_consistent($node, $db, $ix, 'after kills under load');
FlussoTest::is_consistent($node, $db, 't4-companies', 'after kills under load');
unlike(slurp_file($node->logfile), qr/was terminated by signal 11|TRAP:/, 'no crash of our own in the log');

# --- one transaction of a million rows -----------------------------------------
$node->safe_psql($db, q{
	CREATE TABLE groups (id int PRIMARY KEY, name text NOT NULL, leader_id bigint);
	CREATE TABLE members (id bigint PRIMARY KEY, group_id int NOT NULL REFERENCES groups, v int NOT NULL);
	CREATE INDEX ON members (group_id);
	ALTER TABLE members REPLICA IDENTITY FULL;
	INSERT INTO groups SELECT g, 'group ' || g, g * 1000 FROM generate_series(1, 100) g;
	SELECT flusso.create_index('t4-groups', '{"table": "groups", "children": [
		{"name": "size", "table": "members", "type": "count", "on": {"group_id": "id"}},
		{"name": "top", "table": "members", "type": "max", "value": "v", "on": {"group_id": "id"}},
		{"name": "leader", "table": "members", "type": "one", "on": {"id": "leader_id"}, "columns": ["v"]}]}');
});
ok(FlussoTest::wait_synced($node, $db), 'groups index backfilled');
$node->safe_psql($db, q{ALTER SYSTEM SET flusso.capture_memory = '4MB'});
$node->reload;
my $gen = $node->safe_psql($db, q{SELECT generation FROM flusso.index_status WHERE name = 't4-groups'});
$node->safe_psql($db, q{INSERT INTO members SELECT i, 1 + i % 100, i % 1000 FROM generate_series(1, 1000000) i});
ok(FlussoTest::wait_synced($node, $db, '300 s'), 'a million-row transaction is synced');
ok(scalar(FlussoTest::log_lines($node, qr/building generation \d+ \(a transaction changed more rows of members than flusso.capture_memory/)) >= 1,
	'the log says the transaction was too big to capture and the index is rebuilt');
cmp_ok($node->safe_psql($db, q{SELECT generation FROM flusso.index_status WHERE name = 't4-groups'}), '>', $gen,
	'through a new generation');
is(FlussoTest::os_doc('t4-groups', 42)->{size}, 10000, 'counts are right');
FlussoTest::is_consistent($node, $db, 't4-groups', 'after a million-row transaction');
FlussoTest::is_consistent($node, $db, $ix, 'other indexes untouched');
my $pid = FlussoTest::worker_pid($node, $db);
my ($hwm) = slurp_file("/proc/$pid/status") =~ /VmHWM:\s+(\d+) kB/;
SKIP:
{
	# AddressSanitizer's shadow memory and quarantine multiply the footprint
	skip "worker peak RSS under AddressSanitizer: " . int($hwm / 1024) . " MB", 1 if $ENV{FLUSSO_ASAN};
	cmp_ok($hwm / 1024, '<', 250, "worker peak RSS stays bounded (" . int($hwm / 1024) . " MB)");
}

$node->stop;
done_testing();
