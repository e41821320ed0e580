# pg_upgrade from PostgreSQL 17 to the version under test (18).
#
# Since 17, pg_upgrade carries logical slots, when each has consumed all
# the WAL up to the old cluster's shutdown: flusso's slot comes over at the
# position it had, and nothing is rebuilt.
#   * a change the worker has not confirmed makes pg_upgrade --check refuse
#     (nothing can be lost across the upgrade); once synced it passes;
#   * no launcher runs in the servers pg_upgrade starts (-b): the worker
#     would hold the old slot active while pg_upgrade checks it;
#   * on the new server the slot is there, at the old position, still a
#     failover slot; the worker goes on from it: the same generations, no
#     slot created, no rebuild; later changes sync; 0 missing, stale, extra.
# The old cluster is a private copy of 17 with this tree's flusso
# (FLUSSO_PG17_INSTALL, made by test/check.sh).
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $major = FlussoTest::pg_major();
plan skip_all => "pg_upgrade from 17 goes to 18 (this is $major)" if $major < 18;
my $old_install = $ENV{FLUSSO_PG17_INSTALL}
  or BAIL_OUT('FLUSSO_PG17_INSTALL is not set: test/check.sh --pg 18 makes a private PostgreSQL 17');

my $root = $ENV{FLUSSO_ROOT};
my $db = 'up';
my @indexes = ('t15-users', 't15-companies');
FlussoTest::os_clean('t15-*');

# --- PostgreSQL 17 with flusso, two indexes synced ---------------------------------------
my ($old, $nusers, $norders) = FlussoTest::upgrade_source('up17', 17, $old_install, $db, 't15');
my $load = FlussoTest::start_load($old, $db, $nusers, $norders, seconds => 5, rate => 40);
$load->finish;
ok(FlussoTest::wait_synced($old, $db), 'a live load synced on 17');
FlussoTest::is_consistent($old, $db, $_, 'on 17') for @indexes;
my $definitions = q{SELECT string_agg(name || ' ' || definition::text || ' ' || owner, E'\n' ORDER BY name) FROM flusso.indexes};
my $defs_before = $old->safe_psql($db, $definitions);
my $state = q{SELECT string_agg(concat_ws(' ', name, generation, building_generation), ', ' ORDER BY name) FROM flusso.index_status};
is($old->safe_psql($db, $state), 't15-companies 1, t15-users 1', 'both at generation 1');

my $new = FlussoTest::new_node('up17_new', database => $db, start => 0,
	# 18's initdb turns data checksums on, 17's did not: pg_upgrade needs both alike
	initdb => ['--no-data-checksums']);
my $stripped = FlussoTest::strip_attver($old, $new, 'postgres', $db);
note($stripped ? 'pg_attver removed from the old cluster (PGVERSIONS.md)' : 'no pg_attver to remove');

# pg_upgrade runs the new cluster's servers with flusso allowed as an output
# plugin, so that it can recreate the slot there (output_plugin_libraries,
# 17.11 and 18.6); the worker allows it for its own session only
my @allow = ('-O', "-c output_plugin_libraries='pgoutput, test_decoding, flusso'");

# --- a change not yet synced: pg_upgrade refuses to lose it -------------------------------
$old->safe_psql('postgres', q{ALTER SYSTEM SET flusso.enabled = off});
$old->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::worker_pid($old, $db) eq '' }, 'worker stopped'),
	'the worker is stopped (flusso.enabled = off)');
$old->safe_psql($db, q{INSERT INTO users VALUES (9999990, 'not yet synced', 'late@example.com', 1, now(), NULL)});
$old->stop;
my ($ok, $out) = FlussoTest::pg_upgrade($old, $new, '--check', @allow);
ok(!$ok, 'pg_upgrade --check refuses while the slot has changes to decode');
like($out, qr/replication slot|logical replication slots/i, 'naming the slot');
$old->start;
$old->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.enabled});
$old->reload;
ok(FlussoTest::wait_synced($old, $db), 'synced once the worker is back');
is((FlussoTest::os_doc('t15-users', 9999990) // {})->{name}, 'not yet synced', 'the change is in the index');

# every WAL record consumed: confirmed up to the end of WAL (the worker
# confirms past records that hold no change of a synced table)
my $caught_up = q{SELECT confirmed_flush_lsn >= pg_current_wal_insert_lsn() FROM pg_replication_slots WHERE slot_name = 'flusso'};
ok(FlussoTest::wait_for(sub { $old->safe_psql('postgres', $caught_up) eq 't' }, 'slot caught up'),
	'the slot confirmed everything written');
my $slot = q{SELECT concat_ws(' ', plugin, database, failover) FROM pg_replication_slots WHERE slot_name = 'flusso'};
my $slot_before = $old->safe_psql('postgres', $slot);
is($slot_before, 'flusso up t', 'a failover slot of flusso on 17');
$old->stop;

unless (FlussoTest::pg_upgrade_ok($old, $new, @allow))
{
	done_testing();
	exit;
}

# --- the new server goes on from the slot ----------------------------------------------------
$new->start;
like($new->safe_psql('postgres', 'SELECT version()'), qr/^PostgreSQL $major\./, "the new cluster is PostgreSQL $major");
# (pg_upgrade makes the slot anew at the new cluster's end of WAL: what the
# old one had left to decode was nothing, as its check made sure)
is($new->safe_psql('postgres', $slot), $slot_before, 'the slot came over, still a failover slot');
is($new->safe_psql($db, $definitions), $defs_before, 'the definitions came over unchanged');
ok(FlussoTest::wait_for(sub { (FlussoTest::status($new, $db)->{phase} // '') eq 'live' }, 'live'),
	'the worker is live on 18');
ok(scalar(FlussoTest::log_lines($new, qr/flusso is syncing 2 index\(es\) from slot "flusso"/)),
	'from the slot pg_upgrade carried');
is(scalar(FlussoTest::log_lines($new, qr/flusso created replication slot/)), 0, 'no slot was created');
$new->safe_psql($db, q{UPDATE users SET name = 'after the upgrade' WHERE id = 9999990;
	INSERT INTO companies VALUES (9999, 'Upgraded Inc', 'IT')});
ok(FlussoTest::wait_synced($new, $db, '120 s'), 'a change after the upgrade synced');
is((FlussoTest::os_doc('t15-users', 9999990) // {})->{name}, 'after the upgrade', 'a change made on 18 is there');
is((FlussoTest::os_doc('t15-companies', 9999) // {})->{name}, 'Upgraded Inc', 'and one to the other index');
$load = FlussoTest::start_load($new, $db, $nusers, $norders, seconds => 5, rate => 40);
$load->finish;
ok(FlussoTest::wait_synced($new, $db, '120 s'), 'a live load after the upgrade synced');
is($new->safe_psql($db, $state), 't15-companies 1, t15-users 1', 'still generation 1: nothing was rebuilt');
FlussoTest::is_consistent($new, $db, $_, "after pg_upgrade to $major") for @indexes;

$new->stop;
done_testing();
