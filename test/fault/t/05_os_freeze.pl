# OpenSearch frozen (kill -STOP) for longer than flusso.request_timeout,
# then thawed (kill -CONT), under load.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use Test::More;
use Time::HiRes qw(time);

my $osdir = $ENV{FLUSSO_OPENSEARCH_DIR};
my $s = FaultSuite::setup(name => 'os_freeze', prefix => 'f5');
for my $rep (1 .. FaultSuite::reps('os_freeze'))
{
	$s->start_sampler;
	$s->start_load(25);
	FaultSuite::pause(3, 5);
	my $t0 = time;
	system($FaultSuite::LAUNCHER, 'kill', '1', '--signal', 'STOP', '--dir', $osdir) == 0
	  or BAIL_OUT('cannot stop OpenSearch');
	FaultSuite::pause(8, 12);	# flusso.request_timeout is 5 s here
	system($FaultSuite::LAUNCHER, 'kill', '1', '--signal', 'CONT', '--dir', $osdir) == 0
	  or BAIL_OUT('cannot continue OpenSearch');
	my $t1 = time;
	$s->verdict('os_freeze', $rep, windows => [[$t0, $t1]], outage_s => sprintf('%.0f', $t1 - $t0));
}
$s->teardown;
done_testing();
