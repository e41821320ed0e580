# A 3-node OpenSearch cluster, indexes with one replica: one node is
# killed with kill -9 in the middle of the load (flusso fails over to the
# others), and started again for the next repetition.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $dir = "$ENV{TESTDIR}/os3";
system("OPENSEARCH_HEAP=384m $FaultSuite::LAUNCHER start --nodes 3 --dir $dir --timeout 300 >/dev/null") == 0
  or BAIL_OUT('cannot start a 3-node OpenSearch');
my $urls = slurp_file("$dir/urls");
chomp $urls;
ok($urls =~ m{^http://.+,http://.+,http://}, "a 3-node cluster: $urls");
my @url = split /,/, $urls;
my $s = FaultSuite::setup(name => 'three_nodes', prefix => 'f6', url => $urls, os => $urls, replicas => 1);
for my $rep (1 .. FaultSuite::reps('three_nodes'))
{
	my $victim = 1 + ($rep - 1) % 3;
	$s->{os} = join ',', map { $url[$_ - 1] } grep { $_ != $victim } 1 .. 3;
	$s->start_sampler;
	$s->start_load(25);
	FaultSuite::pause(4, 8);
	my $t0 = time;
	system($FaultSuite::LAUNCHER, 'kill', $victim, '--signal', 'KILL', '--dir', $dir) == 0
	  or BAIL_OUT("cannot kill node $victim");
	$s->verdict('three_nodes', $rep, windows => [[$t0, time + 15]], note => "node $victim killed");
	system($FaultSuite::LAUNCHER, 'restart', $victim, '--dir', $dir) == 0
	  or BAIL_OUT("cannot restart node $victim");
	system($FaultSuite::LAUNCHER, 'wait', '--status', 'green', '--nodes', 3, '--dir', $dir, '--timeout', 180);
	$s->{os} = $urls;
}
$s->teardown;
system($FaultSuite::LAUNCHER, 'stop', '--dir', $dir, '--clean');
done_testing();
