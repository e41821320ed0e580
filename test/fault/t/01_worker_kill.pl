# kill -9 of the sync worker at random moments, during a backfill (a
# reindex) and during live sync, under load.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use Test::More;

my $s = FaultSuite::setup(name => 'worker_kill', prefix => 'f1', users => 3000);
for my $rep (1 .. FaultSuite::reps('worker_kill'))
{
	$s->start_sampler;
	$s->start_load(20);
	FaultSuite::pause(1, 3);
	$s->psql(q{SELECT flusso.reindex('f1-users')});
	FaultSuite::pause(0.3, 1.5);
	my $building = $s->psql(q{SELECT building_generation IS NOT NULL FROM flusso.index_status WHERE name = 'f1-users'});
	ok($s->kill_worker, "worker_kill #$rep: killed during the backfill" . ($building eq 't' ? '' : ' (it had ended)'));
	FaultSuite::pause(2, 6);
	ok($s->kill_worker, "worker_kill #$rep: killed during live sync");
	$s->verdict('worker_kill', $rep, server_restarts => 1,
		note => $building eq 't' ? 'killed mid-backfill and live' : 'killed after the backfill and live');
}
$s->teardown;
done_testing();
