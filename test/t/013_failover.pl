# flusso on a physical standby, and a failover under live load.
#
# Every version:
#   * on a hot standby the launcher and the worker start, write nothing,
#     and flusso.status answers with phase 'standby'; no error and no
#     restart loop in the log; wait_synced() refuses with the reason;
#   * the primary dies (immediate stop) while a live load runs, the standby
#     is promoted, its worker starts syncing by itself (no restart), and the
#     index matches the new primary: 0 missing, stale and extra.
# PostgreSQL 17 and later (failover slots):
#   * the slot is a failover slot (flusso.failover_slots = auto), and
#     flusso.failover_slots = off / on changes it on a reload;
#   * the standby keeps a synchronized copy of it (sync_replication_slots);
#   * the primary's synchronized_standby_slots names the standby's physical
#     slot: with the standby stopped, commits on the primary never reach
#     OpenSearch (status says what the worker waits for), so after the
#     promotion the index holds nothing the new primary lacks;
#   * the promoted standby's worker goes on from the synchronized slot: the
#     same generation, no rebuild.
# PostgreSQL 15 (today's behaviour, README "WAL safety"):
#   * the promoted standby has no slot: the worker creates it and rebuilds
#     every index behind its alias, searches answering throughout;
#   * flusso.failover_slots = on is refused, naming PostgreSQL 17.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $root = $ENV{FLUSSO_ROOT};
my $db = 'fo';
my $ix = 't13-users';
FlussoTest::os_clean('t13-*');

my $primary = FlussoTest::new_node('fo_primary', database => $db,
	'flusso.batch_size' => '100', 'log_min_messages' => 'log');
my $failover_slots = $primary->pg_version >= 17;
note('PostgreSQL ' . $primary->pg_version . ($failover_slots ? ': failover slots' : ': no failover slots'));
my ($nusers, $norders) = FlussoTest::load_dataset($primary, $db, 500);
my $def = slurp_file("$root/test/bench/users_index.json");
$primary->safe_psql($db, "SELECT flusso.create_index('$ix', \$\$$def\$\$)");
ok(FlussoTest::wait_synced($primary, $db), 'the primary backfilled the index');
is($primary->safe_psql($db, "SELECT generation FROM flusso.index_status WHERE name = '$ix'"), '1',
	'generation 1');
sub slot_failover
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{SELECT failover FROM pg_replication_slots WHERE slot_name = 'flusso'});
}

# --- the setting --------------------------------------------------------------------
my ($ret, $out, $err) = $primary->psql('postgres', q{ALTER SYSTEM SET flusso.failover_slots = on});
if ($failover_slots)
{
	is($ret, 0, 'flusso.failover_slots = on is accepted');
	$primary->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.failover_slots});
	is(slot_failover($primary), 't', 'the slot is a failover slot (auto)');
	$primary->safe_psql('postgres', q{ALTER SYSTEM SET flusso.failover_slots = off});
	$primary->reload;
	ok(FlussoTest::wait_for(sub { slot_failover($primary) eq 'f' }, 'failover off'),
		'flusso.failover_slots = off makes it an ordinary slot, on a reload');
	$primary->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.failover_slots});
	$primary->reload;
	ok(FlussoTest::wait_for(sub { slot_failover($primary) eq 't' }, 'failover on'),
		'and auto a failover slot again');
	ok(scalar(FlussoTest::log_lines($primary, qr/is a failover slot now/)),
		'the log says when the slot changes');
}
else
{
	isnt($ret, 0, 'PostgreSQL 15: flusso.failover_slots = on is refused');
	like($err, qr/Failover slots need PostgreSQL 17 or later; this server is PostgreSQL 15/,
		'naming the version it needs');
	like($err, qr/Set flusso\.failover_slots to auto .* or off/, 'with the values that work');
	# in postgresql.conf: a WARNING at start, naming the version, and the
	# default stays (as for every flusso setting the server reads before
	# flusso is loaded)
	my $refuses = PostgreSQL::Test::Cluster->new('fo_refuses');
	$refuses->init;
	$refuses->append_conf('postgresql.conf',
		"shared_preload_libraries = 'flusso'\nflusso.failover_slots = on\n");
	$refuses->start;
	like(slurp_file($refuses->logfile),
		qr/WARNING:  invalid value for parameter "flusso.failover_slots": "on"\n.*DETAIL:  Failover slots need PostgreSQL 17 or later/,
		'flusso.failover_slots = on in postgresql.conf: a WARNING naming the version it needs');
	is($refuses->safe_psql('postgres', 'SHOW flusso.failover_slots'), 'auto', 'and the default (auto) applies');
	$refuses->stop;
}

# --- a physical standby --------------------------------------------------------------
$primary->safe_psql('postgres', q{SELECT pg_create_physical_replication_slot('fo_standby', true)});
$primary->backup('fo');
my $standby = PostgreSQL::Test::Cluster->new('fo_standby');
$standby->init_from_backup($primary, 'fo', has_streaming => 1);
my $conf = "primary_slot_name = 'fo_standby'\nhot_standby_feedback = on\n";
# the slot sync worker connects to a database of the primary
$conf .= "sync_replication_slots = on\nprimary_conninfo = 'host=" . $primary->host . ' port=' . $primary->port
  . " dbname=postgres application_name=fo_standby'\n"
  if $failover_slots;
# 15: the rebuild after the promotion goes through the fault proxy, which
# slows it down so that searches are seen answering during it
my $proxydir = "$ENV{TESTDIR}/t13-proxy";
my $proxy = `$root/test/faultproxy/faultproxy.sh start --upstream $FlussoTest::OS_URL --dir $proxydir`;
chomp $proxy;
like($proxy, qr{^http://}, 'fault proxy started');
$conf .= "flusso.opensearch_url = '$proxy'\nflusso.batch_size = 25\nflusso.queue_capacity = 1\n";
$standby->append_conf('postgresql.conf', $conf);
$standby->start;
$primary->wait_for_catchup($standby, 'replay');
is($primary->safe_psql('postgres', q{SELECT string_agg(sync_state, ',') FROM pg_stat_replication}),
	'async', 'asynchronous replication to the standby');

sub status_of
{
	my ($node) = @_;
	return FlussoTest::status($node, $db);
}
ok(FlussoTest::wait_for(sub { (status_of($standby)->{phase} // '') eq 'standby' }, 'phase standby'),
	"the standby's worker reports phase 'standby'");
my $st = status_of($standby);
like($st->{activity}, qr/syncing starts when this server is promoted/, 'status says what it waits for');
like($st->{worker_pid}, qr/^\d+$/, 'the worker runs on the standby');
is($standby->safe_psql('postgres',
		q{SELECT string_agg(backend_type, ',' ORDER BY backend_type) FROM pg_stat_activity WHERE backend_type LIKE 'flusso%'}),
	'flusso launcher,flusso sync', 'a launcher and a sync worker on the standby');
is($standby->safe_psql($db, 'SELECT count(*) FROM flusso.index_status'), '0',
	'index_status answers on the standby (nothing is synced there)');
($ret, $out, $err) = $standby->psql($db, q{SELECT flusso.wait_synced('1 s')});
like($err, qr/flusso does not sync on a standby.*HINT:  Call it on the primary server/s,
	'wait_synced() on the standby refuses, naming the primary');
ok(FlussoTest::wait_for(sub { status_of($standby)->{opensearch} eq 'reachable' }, 'reachable'),
	'the standby checks that OpenSearch answers');
my $standby_pid = $st->{worker_pid};
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE NOT synced}), '0',
	'the standby made no slot of its own') if $failover_slots;

# --- live load; the standby keeps a synchronized copy of the slot ------------------
my $load = FlussoTest::start_load($primary, $db, $nusers, $norders, seconds => 600, rate => 40);
if ($failover_slots)
{
	ok(FlussoTest::wait_for(sub {
				$standby->safe_psql('postgres',
					q{SELECT synced AND NOT temporary AND failover FROM pg_replication_slots WHERE slot_name = 'flusso'}) eq 't'
			}, 'the slot synchronized to the standby', 180),
		"the standby has a synchronized, persistent copy of flusso's slot");
	# from now on the primary's documents wait for the standby
	$primary->safe_psql('postgres', q{ALTER SYSTEM SET synchronized_standby_slots = 'fo_standby'});
	$primary->reload;
}
sleep 5;
ok(FlussoTest::wait_for(sub { FlussoTest::status($primary, $db)->{changes_committed} > 0 }, 'load synced'),
	'the primary syncs the load');
is(status_of($standby)->{worker_pid}, $standby_pid, 'the standby worker never restarted');
my @bad = FlussoTest::log_lines($standby, qr/flusso.*(exited|step failed|ERROR)|terminated by signal|FATAL.*flusso/);
@bad = grep { !/wait_synced|does not sync on a standby/ } @bad;
is(scalar(@bad), 0, 'no flusso error and no worker restart in the standby log') or diag(join "\n", @bad);

# --- the standby goes away; commits on the primary go on ------------------------------
$primary->safe_psql($db, q{INSERT INTO users VALUES (9999992, 'seen', 'seen@example.com', 1, now(), NULL)});
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc($ix, 9999992) }, 'a row synced'),
	'a row the standby has is synced');
$standby->stop('fast');
$primary->safe_psql($db, q{INSERT INTO users VALUES (9999991, 'ghost', 'ghost@example.com', 1, now(), NULL)});
$primary->safe_psql($db, q{UPDATE users SET name = 'ghost name' WHERE id = 9999992});
if ($failover_slots)
{
	ok(FlussoTest::wait_for(sub {
				(FlussoTest::status($primary, $db)->{activity} // '') =~ /waiting for the standbys in synchronized_standby_slots/
			}, 'waiting for the standby'),
		'the primary says it waits for the standbys in synchronized_standby_slots');
	sleep 3;
	is(FlussoTest::os_doc($ix, 9999991), undef, 'a row the standby never received is not sent');
	is((FlussoTest::os_doc($ix, 9999992) // {})->{name}, 'seen', 'nor a change the standby never received');
	is($primary->safe_psql($db, q{SELECT flusso.wait_synced('1 s')}), 'f',
		'wait_synced() waits with the worker');
}
else
{
	ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc($ix, 9999991) }, 'ghost sent'),
		'PostgreSQL 15: a row the standby never received is sent (no synchronized_standby_slots)');
}

# --- the primary dies; the standby is promoted --------------------------------------
$primary->stop('immediate');
$load->kill_kill;
FlussoTest::os_request('POST', "/$ix/_refresh");
my $docs_before = (FlussoTest::os_request('GET', "/$ix/_count"))[1]{count};
$standby->start;
FlussoTest::wait_for(sub { (status_of($standby)->{phase} // '') eq 'standby' }, 'standby again');
$standby_pid = status_of($standby)->{worker_pid};
system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir,
	'{"delay_ms": 300, "only_bulk": true}') == 0 or die 'faults'
  unless $failover_slots;
$standby->promote;
is($standby->safe_psql($db, q{SELECT count(*) FROM users WHERE id = 9999991}), '0',
	'the new primary never had the row');
ok(FlussoTest::wait_for(sub { (status_of($standby)->{phase} // '') ne 'standby' }, 'not standby'),
	"the promoted server's worker leaves phase 'standby'");
is(status_of($standby)->{worker_pid}, $standby_pid, 'the same worker process syncs: no restart');
ok(scalar(FlussoTest::log_lines($standby, qr/the server was promoted: flusso starts syncing database "fo"/)),
	'the log says the worker starts syncing after the promotion');

if ($failover_slots)
{
	ok(FlussoTest::wait_for(sub { (status_of($standby)->{phase} // '') eq 'live' }, 'live'),
		'the new primary is live');
	ok(scalar(FlussoTest::log_lines($standby, qr/flusso is syncing 1 index\(es\) from slot "flusso"/)),
		'from the synchronized slot');
	is(scalar(FlussoTest::log_lines($standby, qr/flusso created replication slot/)), 0, 'no slot was created');
	is($standby->safe_psql($db,
			"SELECT concat_ws(' ', generation, building_generation) FROM flusso.index_status WHERE name = '$ix'"),
		'1', 'the same generation, nothing being rebuilt');
	is(FlussoTest::os_doc($ix, 9999991), undef, 'the row the new primary never had is not in the index');
}
else
{
	# the rebuild: every search answers; the alias serves generation 1,
	# whole, until generation 2 is complete.  A count is the alias's
	# generation's when the alias pointed at the same one before and after it.
	my $docs_new = $standby->safe_psql($db, "SELECT count(*) FROM flusso.document_ids('$ix')");
	my %want = (1 => $docs_before, 2 => $docs_new);
	my ($searches, $failed, $wrong, $building, $swapped) = (0, 0, 0, 0, 0);
	my $t_end = time + 180;
	while (time < $t_end && !$swapped)
	{
		$building = 1 if $standby->safe_psql($db,
			"SELECT building_generation FROM flusso.index_status WHERE name = '$ix'") eq '2';
		my ($count, $generation) = FlussoTest::count_through_alias($ix);
		$searches++;
		if (!defined $count) { $failed++; next }
		if (defined $generation)
		{
			if (($want{$generation} // -1) != $count)
			{
				$wrong++;
				diag("generation $generation answered $count documents, not " . ($want{$generation} // '?'));
			}
			$swapped = $generation == 2;
		}
		usleep(20_000);
	}
	system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir, '{}');
	ok($building, 'PostgreSQL 15: the promoted server rebuilds the index into generation 2');
	ok(scalar(FlussoTest::log_lines($standby, qr/flusso created replication slot "flusso"/)),
		'after creating the missing slot');
	cmp_ok($searches, '>', 5, "$searches searches during the rebuild");
	is($failed, 0, 'every search answered');
	ok($swapped, 'the alias moved to generation 2');
	is($wrong, 0, "the alias served generation 1 whole ($docs_before documents), then generation 2 whole ($docs_new)");
}

# --- the new primary under load ------------------------------------------------------------
$load = FlussoTest::start_load($standby, $db, $nusers, $norders, seconds => 5, rate => 40);
$load->finish;
ok(FlussoTest::wait_synced($standby, $db, '180 s'), 'the new primary synced the load');
FlussoTest::is_consistent($standby, $db, $ix, 'after the failover');
is($standby->safe_psql($db, "SELECT generation FROM flusso.index_status WHERE name = '$ix'"),
	$failover_slots ? '1' : '2', $failover_slots ? 'still generation 1' : 'generation 2');
my @deaths = grep { /terminated by signal|PANIC|TRAP/ } split /\n/, slurp_file($standby->logfile);
is(scalar(@deaths), 0, 'no server process of the promoted server crashed') or diag(join "\n", @deaths);

system("$root/test/faultproxy/faultproxy.sh", 'stop', '--dir', $proxydir);
$standby->stop;
done_testing();
