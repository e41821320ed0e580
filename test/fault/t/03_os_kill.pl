# OpenSearch killed with kill -9 during load, then restarted.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use Test::More;
use Time::HiRes qw(time);

my $osdir = $ENV{FLUSSO_OPENSEARCH_DIR};
my $s = FaultSuite::setup(name => 'os_kill', prefix => 'f3');
for my $rep (1 .. FaultSuite::reps('os_kill'))
{
	$s->start_sampler;
	$s->start_load(25);
	FaultSuite::pause(3, 6);
	my $t0 = time;
	system($FaultSuite::LAUNCHER, 'kill', '1', '--signal', 'KILL', '--dir', $osdir) == 0
	  or BAIL_OUT('cannot kill OpenSearch');
	FaultSuite::pause(2, 5);
	system($FaultSuite::LAUNCHER, 'restart', '1', '--dir', $osdir) == 0
	  or BAIL_OUT('cannot restart OpenSearch');
	my $t1 = time;
	$s->verdict('os_kill', $rep, windows => [[$t0, $t1]], outage_s => sprintf('%.0f', $t1 - $t0));
}
$s->teardown;
done_testing();
