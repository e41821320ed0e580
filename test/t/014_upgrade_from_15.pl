# pg_upgrade from PostgreSQL 15 to the version under test (17 or 18).
#
# A 15 cluster with flusso (a private copy of 15 with this tree's flusso:
# FLUSSO_PG15_INSTALL, made by test/check.sh) syncs two indexes; pg_upgrade
# carries it to the new version.  15 does not carry logical slots, so:
#   * the definitions and the indexes' state come over unchanged;
#   * the new server's worker finds no slot while its indexes have state,
#     creates the slot and rebuilds every index into its next generation,
#     behind the alias: searches answer throughout, from the old generation,
#     until the new one is complete;
#   * changes made during the rebuild are in; 0 missing, stale and extra.
# Also: no launcher runs under pg_upgrade (the servers it starts with -b),
# and pg_upgrade to 18 gets the new cluster's data checksums right.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $major = FlussoTest::pg_major();
plan skip_all => "pg_upgrade from 15 goes to 17 or 18 (this is $major)" if $major < 17;
my $old_install = $ENV{FLUSSO_PG15_INSTALL}
  or BAIL_OUT('FLUSSO_PG15_INSTALL is not set: test/check.sh --pg 17|18 makes a private PostgreSQL 15');

my $root = $ENV{FLUSSO_ROOT};
my $db = 'up';
my @indexes = ('t14-users', 't14-companies');
FlussoTest::os_clean('t14-*');

# --- PostgreSQL 15 with flusso, two indexes synced -------------------------------------
my ($old, $nusers, $norders) = FlussoTest::upgrade_source('up15', 15, $old_install, $db, 't14');
$old->safe_psql($db, q{UPDATE users SET name = 'before the upgrade' WHERE id = 3;
	INSERT INTO companies VALUES (9999, 'Upgraded Inc', 'IT')});
ok(FlussoTest::wait_synced($old, $db), 'live changes synced on 15');
FlussoTest::is_consistent($old, $db, $_, 'on 15') for @indexes;
my $definitions = q{SELECT string_agg(name || ' ' || definition::text || ' ' || owner, E'\n' ORDER BY name) FROM flusso.indexes};
my $defs_before = $old->safe_psql($db, $definitions);
my $state = q{SELECT string_agg(concat_ws(' ', name, generation), ', ' ORDER BY name) FROM flusso.index_status};
is($old->safe_psql($db, $state), 't14-companies 1, t14-users 1', 'both at generation 1');
my $persisted = q{SELECT count(*) FROM flusso.index_state};
my $state_rows = $old->safe_psql($db, $persisted);
FlussoTest::os_request('POST', '/t14-*/_refresh');
my %docs_before = map { $_ => (FlussoTest::os_request('GET', "/$_/_count"))[1]{count} } @indexes;

# --- the new cluster --------------------------------------------------------------------
# its rebuilds go through the fault proxy, which slows them down so that
# searches are seen answering during them
my $proxydir = "$ENV{TESTDIR}/t14-proxy";
my $proxy = `$root/test/faultproxy/faultproxy.sh start --upstream $FlussoTest::OS_URL --dir $proxydir`;
chomp $proxy;
like($proxy, qr{^http://}, 'fault proxy started');
my $new = FlussoTest::new_node('up15_new', database => $db, start => 0,
	'flusso.opensearch_url' => "'$proxy'", 'flusso.batch_size' => '25', 'flusso.queue_capacity' => '1',
	# 18's initdb turns data checksums on, 15's did not: pg_upgrade needs both alike
	$major >= 18 ? (initdb => ['--no-data-checksums']) : ());
my $stripped = FlussoTest::strip_attver($old, $new, 'postgres', $db);
note($stripped ? 'pg_attver removed from the old cluster (PGVERSIONS.md)' : 'no pg_attver to remove');
$old->stop;

unless (FlussoTest::pg_upgrade_ok($old, $new))
{
	done_testing();
	exit;
}
system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir,
	'{"delay_ms": 300, "only_bulk": true}') == 0 or die 'faults';
$new->start;
like($new->safe_psql('postgres', 'SELECT version()'), qr/^PostgreSQL $major\./, "the new cluster is PostgreSQL $major");
is($new->safe_psql($db, $definitions), $defs_before, 'the definitions came over unchanged');
is($new->safe_psql($db, $persisted), $state_rows, "the indexes' state came over");

# --- the rebuild: searches answer throughout -----------------------------------------------
# A count is the alias's generation's when the alias pointed at the same
# one before and after it: generation 1 until 2 is complete, never fewer
# documents than before the upgrade (rows are only added meanwhile).
sub state_of { $new->safe_psql($db, $state) }
my ($searches, $failed, $short, $building) = (0, 0, 0, 0);
my %swapped;
my $changed = 0;
my $t_end = time + 240;
while (time < $t_end && keys %swapped < @indexes)
{
	my $st = $new->safe_psql($db,
		q{SELECT string_agg(concat_ws(' ', name, generation, building_generation), ', ' ORDER BY name) FROM flusso.index_status});
	$building++ if $st =~ / 1 2\b/;
	unless ($changed || $st !~ / 1 2\b/)
	{
		# live changes while the new generations are built: they go to both
		$new->safe_psql($db, q{UPDATE users SET name = 'during the rebuild' WHERE id = 5;
			INSERT INTO companies VALUES (9998, 'Rebuilt Ltd', 'FR')});
		$changed = 1;
	}
	for my $ix (grep { !$swapped{$_} } @indexes)
	{
		my ($count, $generation) = FlussoTest::count_through_alias($ix);
		$searches++;
		if (!defined $count) { $failed++; next }
		next unless defined $generation;
		if ($count < $docs_before{$ix})
		{
			$short++;
			diag("$ix generation $generation answered $count documents, fewer than $docs_before{$ix}");
		}
		$swapped{$ix} = 1 if $generation == 2;
	}
	usleep(20_000);
}
system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir, '{}');
ok($building, 'the new server rebuilds the indexes into generation 2');
ok(scalar(FlussoTest::log_lines($new, qr/flusso created replication slot "flusso"/)),
	'after creating the slot pg_upgrade could not carry from 15');
cmp_ok($searches, '>', 5, "$searches searches during the rebuild");
is($failed, 0, 'every search answered');
is($short, 0, 'no search saw fewer documents than before the upgrade, from either generation');
is(scalar(keys %swapped), 2, 'both aliases moved to generation 2');
ok(FlussoTest::wait_for(sub { state_of() eq 't14-companies 2, t14-users 2' }, 'generation 2 live'),
	'both indexes live at generation 2, nothing being built');
ok($changed, 'rows changed during the rebuild');
ok(FlussoTest::wait_synced($new, $db, '120 s'), "synced on $major");
is((FlussoTest::os_doc('t14-users', 3) // {})->{name}, 'before the upgrade', 'a change made on 15 is there');
is((FlussoTest::os_doc('t14-users', 5) // {})->{name}, 'during the rebuild', 'a change made during the rebuild is there');
FlussoTest::is_consistent($new, $db, $_, "after pg_upgrade to $major") for @indexes;

# --- and it goes on syncing -----------------------------------------------------------------
my $load = FlussoTest::start_load($new, $db, $nusers, $norders, seconds => 5, rate => 40);
$load->finish;
ok(FlussoTest::wait_synced($new, $db, '120 s'), 'a live load after the upgrade synced');
FlussoTest::is_consistent($new, $db, $_, 'after a live load') for @indexes;

system("$root/test/faultproxy/faultproxy.sh", 'stop', '--dir', $proxydir);
$new->stop;
done_testing();
