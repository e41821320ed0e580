# The index blocked read-only through the API (the flood-stage block,
# index.blocks.read_only_allow_delete), then unblocked, under load.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use Test::More;
use Time::HiRes qw(time);

my $s = FaultSuite::setup(name => 'flood_stage', prefix => 'f7');
sub block
{
	my ($on) = @_;
	my ($code, $body) = FlussoTest::os_request('PUT', '/f7-users/_settings',
		{ 'index.blocks.read_only_allow_delete' => $on ? JSON::PP::true : undef });
	is($code, 200, ($on ? 'block' : 'unblock') . ' the index') or diag(explain $body);
}
for my $rep (1 .. FaultSuite::reps('flood_stage'))
{
	$s->start_sampler;
	$s->start_load(25);
	FaultSuite::pause(3, 5);
	my $t0 = time;
	block(1);
	FaultSuite::pause(10, 12);
	my $state = $s->psql(q{SELECT state FROM flusso.index_status WHERE name = 'f7-users'});
	isnt($state, 'stopped', "flood_stage #$rep: the blocked index is not given up ($state)");
	block(0);
	my $t1 = time;
	$s->verdict('flood_stage', $rep, windows => [[$t0, $t1]], outage_s => sprintf('%.0f', $t1 - $t0));
}
$s->teardown;
done_testing();
