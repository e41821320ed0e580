# The fault proxy in front of OpenSearch: 30% of bulk requests answered 429
# or 503; 20% of bulk items rewritten to 429 or 500; connections dropped in
# the middle of a response.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use Test::More;
use Time::HiRes qw(time);

my $pdir = "$ENV{TESTDIR}/proxy";
my $proxy = `$FaultSuite::PROXY start --upstream $FlussoTest::OS_URL --dir $pdir`;
chomp $proxy;
ok($proxy =~ m{^http://}, 'the fault proxy runs');
my $s = FaultSuite::setup(name => 'proxy', prefix => 'f4', url => $proxy);

my %faults = (
	proxy_status => '{"status_rate": 0.3, "status_codes": [429, 503], "only_bulk": true}',
	proxy_items => '{"item_fail_rate": 0.2, "item_statuses": [429, 500], "only_bulk": true}',
	proxy_drop => '{"drop_mid_rate": 0.3, "only_bulk": true}');
for my $scenario (qw(proxy_status proxy_items proxy_drop))
{
	for my $rep (1 .. FaultSuite::reps($scenario))
	{
		system("$FaultSuite::PROXY stats --dir $pdir --reset >/dev/null");
		$s->start_sampler;
		$s->start_load(20);
		my $t0 = time;
		system("$FaultSuite::PROXY faults --dir $pdir '$faults{$scenario}' >/dev/null") == 0
		  or BAIL_OUT('cannot set faults');
		FaultSuite::pause(15, 16);
		system("$FaultSuite::PROXY reset --dir $pdir >/dev/null");
		my $t1 = time;
		my $raw = `$FaultSuite::PROXY stats --dir $pdir`;
		my $stats = eval { JSON::PP->new->decode($raw) } or diag("stats: [$raw]");
		$stats //= {};
		my $injected = ($stats->{status_injected} // 0) + ($stats->{bulk_items_rewritten} // 0)
		  + ($stats->{dropped_mid} // 0);
		cmp_ok($injected, '>', 0, "$scenario #$rep: faults were injected ($injected)");
		$s->verdict($scenario, $rep, windows => [[$t0, $t1]], outage_s => sprintf('%.0f', $t1 - $t0),
			note => "$injected faults injected");
	}
}
$s->teardown;
system($FaultSuite::PROXY, 'stop', '--dir', $pdir);
done_testing();
