# DDL on synced tables during load: a column added (nothing to do), a
# column an index reads dropped, a table an index reads renamed.  Where
# syncing cannot go on, the index stops with an error naming the problem;
# nothing crashes; alter_index brings it back, complete.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl", "$ENV{FLUSSO_ROOT}/test/fault";
use FaultSuite;
use FlussoTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $s = FaultSuite::setup(name => 'ddl', prefix => 'f8');
my $def = JSON::PP->new->decode(slurp_file("$FaultSuite::ROOT/test/bench/users_index.json"));
my ($company) = grep { $_->{name} eq 'company' } @{ $def->{children} };
my $state = sub { $s->psql(q{SELECT state || ': ' || coalesce(last_error, '') FROM flusso.index_status WHERE name = 'f8-users'}) };
my $stopped_with = sub {
	my ($re, $what) = @_;
	ok(FlussoTest::wait_for(sub { $state->() =~ /^stopped: .*$re/ }, $what, 30), $what) or diag($state->());
};

for my $rep (1 .. FaultSuite::reps('ddl'))
{
	$s->start_sampler;
	$s->start_load(40);
	FaultSuite::pause(2, 3);
	$s->psql(q{ALTER TABLE users ADD COLUMN nickname text});
	$s->psql(q{UPDATE users SET nickname = 'nick' WHERE id < 50});
	ok(FlussoTest::wait_synced($s->{node}, $s->{db}), 'ddl: a column added changes nothing');
	like($state->(), qr/^(seeded|backfilling): /, 'ddl: the index goes on');

	$s->psql(q{ALTER TABLE companies DROP COLUMN country});
	$stopped_with->(qr/country.* does not exist/, 'ddl: a dropped column stops the index, naming the column');
	$company->{columns} = ['name'];
	$s->psql("SELECT flusso.alter_index('f8-users', \$\$" . JSON::PP->new->encode($def) . "\$\$)");
	ok(FlussoTest::wait_for(sub { $state->() =~ /^seeded/ }, 'rebuilt', 120), 'ddl: alter_index brings it back');

	$s->psql(q{ALTER TABLE companies RENAME TO firms});
	$stopped_with->(qr/companies.* does not exist/, 'ddl: a renamed table stops the index, naming the table');
	$company->{table} = 'public.firms';
	$s->psql("SELECT flusso.alter_index('f8-users', \$\$" . JSON::PP->new->encode($def) . "\$\$)");
	ok(FlussoTest::wait_for(sub { $state->() =~ /^seeded/ }, 'rebuilt', 120), 'ddl: alter_index brings it back again');
	$s->verdict('ddl', $rep, note => 'add column, drop column, rename table');
}
$s->teardown;
done_testing();
