# Immediate shutdown and restart of PostgreSQL mid-stream, under load.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use Test::More;

my $s = FaultSuite::setup(name => 'pg_restart', prefix => 'f2');
for my $rep (1 .. FaultSuite::reps('pg_restart'))
{
	$s->start_sampler;
	$s->start_load(15);
	FaultSuite::pause(3, 7);
	$s->{node}->stop('immediate');
	$s->{node}->start;
	ok(FlussoTest::wait_for(sub { $s->worker_pid ne '' }, 'worker'), "pg_restart #$rep: the worker is back");
	$s->verdict('pg_restart', $rep, server_restarts => 1);
}
$s->teardown;
done_testing();
