# The server restarted (fast, or immediate) during a backfill of a new
# index, and during a reindex, under load.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $s = FaultSuite::setup(name => 'restart_build', prefix => 'f9', users => 6000);
my $def = slurp_file("$FaultSuite::ROOT/test/bench/users_index.json");
my $building = sub {
	my ($index) = @_;
	$s->psql("SELECT building_generation IS NOT NULL FROM flusso.index_status WHERE name = '$index'") eq 't';
};
sub restart
{
	my ($rep) = @_;
	my $mode = $rep % 2 ? 'immediate' : 'fast';
	$s->{node}->stop($mode);
	$s->{node}->start;
	return $mode;
}

for my $rep (1 .. FaultSuite::reps('restart_backfill'))
{
	my $index = "f9-new$rep";
	$s->start_sampler;
	$s->start_load(20);
	FaultSuite::pause(1, 2);
	$s->create_index($index, $def);
	ok(FlussoTest::wait_for(sub { $building->($index) }, 'backfill started'), "restart_backfill #$rep: backfilling");
	FaultSuite::pause(0.5, 2);
	my $during = $building->($index);
	my $mode = restart($rep);
	$s->verdict('restart_backfill', $rep, server_restarts => 1,
		note => "$mode restart" . ($during ? ' mid-backfill' : ' after the backfill'));
	$s->psql("SELECT flusso.drop_index('$index', true)");
	delete $s->{indexes}{$index};
}
for my $rep (1 .. FaultSuite::reps('restart_reindex'))
{
	$s->start_sampler;
	$s->start_load(20);
	FaultSuite::pause(1, 2);
	my $gen = $s->psql(q{SELECT generation FROM flusso.index_status WHERE name = 'f9-users'});
	$s->psql(q{SELECT flusso.reindex('f9-users')});
	FaultSuite::pause(0.5, 2);
	my $during = $building->('f9-users');
	my $mode = restart($rep);
	$s->verdict('restart_reindex', $rep, server_restarts => 1,
		note => "$mode restart" . ($during ? ' mid-reindex' : ' after the reindex'));
	cmp_ok($s->psql(q{SELECT generation FROM flusso.index_status WHERE name = 'f9-users'}), '>', $gen,
		"restart_reindex #$rep: the new generation went live");
}
$s->teardown;
done_testing();
