# Zero-downtime reindex under live load (a searcher never sees the index
# shrink), reindex that waits, alter_index, a failed alias swap tried again,
# pause and resume, a crash in the middle of a reindex, and a remote drop
# OpenSearch refuses.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use List::Util qw(min);
use Time::HiRes qw(time usleep);

my $db = 'ops';
my $ix = 't5-users';
my $root = $ENV{FLUSSO_ROOT};
FlussoTest::os_clean('t5-*');

# OpenSearch behind the fault proxy, so a rebuild can be slowed down at will
my $proxydir = "$ENV{TESTDIR}/t5-proxy";
my $proxy = `$root/test/faultproxy/faultproxy.sh start --upstream $FlussoTest::OS_URL --dir $proxydir`;
chomp $proxy;
like($proxy, qr{^http://}, 'fault proxy started');
my $node = FlussoTest::new_node('reindex', database => $db,
	'flusso.opensearch_url' => "'$proxy'", 'flusso.batch_size' => '100');
$node->command_ok(['psql', '-X', '-q', '-v', 'n=1000', '-d', $db, '-f', "$root/test/bench/dataset.sql"],
	'load a dataset');
my $def = slurp_file("$root/test/bench/users_index.json");
$node->safe_psql($db, "SELECT flusso.create_index('$ix', \$\$$def\$\$)");
ok(FlussoTest::wait_synced($node, $db), 'backfilled');
my $rows = $node->safe_psql($db, "SELECT count(*) FROM flusso.document_ids('$ix')");

sub proxy_stats { JSON::PP::decode_json(scalar `$root/test/faultproxy/faultproxy.sh stats --dir $proxydir`) }
sub faults { system("$root/test/faultproxy/faultproxy.sh", 'faults', '--dir', $proxydir, $_[0]) == 0 or die 'faults' }
sub count_alias
{
	my ($code, $body) = FlussoTest::os_request('GET', "/$ix/_count");
	return ($code, ref $body ? $body->{count} : undef);
}
# Which documents a short count lacks, where the alias pointed, and what
# the worker was doing: printed when the searcher sees the index shrink.
sub explain_low
{
	my ($count) = @_;
	my (undef, $alias) = FlussoTest::os_request('GET', "/_alias/$ix");
	my (undef, $hits) = FlussoTest::os_request('GET', "/$ix/_search",
		{ size => 10000, _source => JSON::PP::false, query => { match_all => {} } });
	my %seen = map { $_->{_id} => 1 } @{ $hits->{hits}{hits} // [] };
	my @missing = grep { !$seen{$_} } split /\n/,
	  $node->safe_psql($db, "SELECT id FROM flusso.document_ids('$ix') AS id");
	my (undef, $cat) = FlussoTest::os_request('GET', "/_cat/indices/$ix*?format=json");
	diag("count $count: alias " . JSON::PP->new->canonical->encode($alias)
		  . ", indices " . JSON::PP->new->canonical->encode($cat)
		  . ", missing ids now: @missing[0 .. min($#missing, 9)]"
		  . ", status " . status_of("concat_ws(' ', state, generation, building_generation, backfill_rows_done)"));
}
sub status_of { $node->safe_psql($db, "SELECT $_[0] FROM flusso.index_status WHERE name = '$ix'") }

# an update-only load: the number of documents stays the same
my $connstr = $node->connstr($db);
my $updates = q{DO $$ DECLARE t timestamptz := clock_timestamp() + interval '15 s'; i int := 0; BEGIN
	WHILE clock_timestamp() < t LOOP i := i + 1;
		UPDATE users SET name = 'u' || i WHERE id = 1 + (i * 7) % 900;
		UPDATE order_items SET qty = qty + 1 WHERE id = 1 + (i * 13) % 14000;
		COMMIT; PERFORM pg_sleep(0.002); END LOOP; END $$};

# --- reindex under live load, with a searcher on the alias -----------------------
# bulk requests are held 100 ms, so that the reindex lasts long enough for
# many searches however fast the build is (30 ms left 10 under ASan)
faults('{"delay_ms": 100, "only_bulk": true}');
my $load = IPC::Run::start(['psql', '-X', '-q', '-d', $connstr, '-c', $updates]);
$node->safe_psql($db, "SELECT flusso.reindex('$ix')");
ok(FlussoTest::wait_for(sub { status_of('building_generation') ne '' }, 'building'), 'the reindex starts');
my ($searches, $failed, $low, $min) = (0, 0, 0, 1e9);
my $t_end = time + 120;
while (time < $t_end && status_of('building_generation') ne '')
{
	my ($code, $count) = count_alias();
	$searches++;
	if ($code != 200) { $failed++; next }
	$min = $count if $count < $min;
	if ($count < $rows)
	{
		$low++;
		explain_low($count);
	}
	like(status_of('backfill_percent'), qr/^\d/, 'progress shows') if $searches == 1;
	usleep(5_000);
}
faults('{}');
$load->finish;
cmp_ok($searches, '>', 10, "the searcher ran $searches searches during the reindex");
is($failed, 0, 'no search failed');
is($low, 0, "the alias never held fewer than $rows documents (lowest count $min)");
is(status_of('generation'), '2', 'the alias points at generation 2');
ok(FlussoTest::wait_synced($node, $db), 'synced after the swap');
ok(FlussoTest::wait_for(sub { (FlussoTest::os_request('HEAD', "/$ix\_1"))[0] == 404 }, 'generation 1 dropped'),
	'the old generation is gone');
FlussoTest::is_consistent($node, $db, $ix, 'after a reindex under load');
my $s = FlussoTest::status($node, $db);
cmp_ok($s->{changes_committed}, '>', 0, 'counters were not reset by the reindex');

# --- reindex(wait => true) returns after the swap ----------------------------------
$node->safe_psql($db, "SELECT flusso.reindex('$ix', wait => true)");
is(status_of('generation'), '3', 'reindex(wait => true) returns once the new generation is live');
is(status_of('building_generation'), '', 'and nothing is being built');

# --- alter_index: the new definition through a zero-downtime reindex ----------------
(my $altered = $def) =~ s/"columns": \["id", "name", "email",/"columns": ["id", "name", "email", "company_id",/;
$node->safe_psql($db, "SELECT flusso.alter_index('$ix', \$\$$altered\$\$)");
ok(FlussoTest::wait_synced($node, $db), 'the altered index is rebuilt');
is(status_of('generation'), '4', 'into generation 4');
ok(exists FlussoTest::os_doc($ix, 1)->{company_id}, 'documents have the new field');
FlussoTest::is_consistent($node, $db, $ix, 'after alter_index');

# --- a failed alias swap is tried again -------------------------------------------------
# The build's chunks are held until the swap's requests fail (503), then let
# through: the build is complete and its swap fails.  Nothing but a reload
# or a restart finished such a build before (003 saw it when OpenSearch was
# killed between the last acknowledgement and the swap).
my $frozen0 = proxy_stats()->{frozen};
my $before = status_of('generation');
faults('{"freeze": true, "only_bulk": true}');
$node->safe_psql($db, "SELECT flusso.reindex('$ix')");
ok(FlussoTest::wait_for(sub { proxy_stats()->{frozen} > $frozen0 }, 'a chunk held'),
	'the rebuild sends its first chunk');
faults('{"status_rate": 1, "status_codes": [503], "paths": "_alias"}');
ok(FlussoTest::wait_for(sub { status_of('last_error') =~ /moving the alias to generation/ }, 'the swap fails'),
	'the swap fails while OpenSearch answers it 503');
usleep(1_000_000);
is(status_of("concat_ws(' ', generation, building_generation, backfill_rows_done)"),
	"$before " . ($before + 1) . " $rows", 'the alias stays on the old generation, the build complete');
faults('{}');
ok(FlussoTest::wait_for(sub { status_of('generation') == $before + 1 }, 'the swap', 20),
	'the swap is tried again once OpenSearch answers');
ok(FlussoTest::wait_synced($node, $db), 'synced after the swap was tried again');
FlussoTest::is_consistent($node, $db, $ix, 'after a swap that failed once');

# --- a write in flight at the swap does not bring the old generation back -----------
# Bulk requests are held 300 ms and the DELETE of the old generation is not:
# a live write for the old generation sent just before the swap reaches
# OpenSearch after the swap, and OpenSearch would create a dropped index
# again for it.  The drop waits until no write for that generation is in flight.
faults('{"delay_ms": 300, "only_bulk": true}');
(my $short = $updates) =~ s/interval '15 s'/interval '6 s'/;
$load = IPC::Run::start(['psql', '-X', '-q', '-d', $connstr, '-c', $short]);
usleep(500_000);
$node->safe_psql($db, "SELECT flusso.reindex('$ix', wait => true)");
my $retired = status_of('generation') - 1;
$load->finish;
ok(FlussoTest::wait_synced($node, $db), 'synced after a swap with slow bulk requests');
ok(FlussoTest::wait_for(sub { (FlussoTest::os_request('HEAD', "/$ix\_$retired"))[0] == 404 },
	"generation $retired dropped"), 'the retired generation is dropped');
faults('{}');
$node->safe_psql($db, q{UPDATE users SET name = name || '' WHERE id <= 50});
ok(FlussoTest::wait_synced($node, $db), 'synced after more changes');
usleep(1_000_000);
my (undef, $left) = FlussoTest::os_request('GET', "/_cat/indices/$ix*?format=json");
is(join(' ', sort map { $_->{index} } @$left), "$ix\_" . ($retired + 1),
	'only the live generation is left in OpenSearch');
FlussoTest::is_consistent($node, $db, $ix, 'after a swap with slow bulk requests');

# --- pause and resume ----------------------------------------------------------------
$node->safe_psql($db, "SELECT flusso.pause('$ix')");
ok(FlussoTest::wait_for(sub { status_of('state') eq 'paused' }, 'paused'), 'pause');
$node->safe_psql($db, q{UPDATE users SET name = 'while paused' WHERE id = 3});
is($node->safe_psql($db, q{SELECT flusso.wait_synced('2 s')}), 'f', 'wait_synced is false while paused');
isnt(FlussoTest::os_doc($ix, 3)->{name}, 'while paused', 'a paused index does not change');
$node->safe_psql($db, "SELECT flusso.resume('$ix')");
ok(FlussoTest::wait_synced($node, $db), 'resume');
is(FlussoTest::os_doc($ix, 3)->{name}, 'while paused', 'changes made while paused are applied on resume');
FlussoTest::is_consistent($node, $db, $ix, 'after pause and resume');

# --- a crash in the middle of a reindex ------------------------------------------------
faults('{"delay_ms": 100, "only_bulk": true}');
my $gen = status_of('generation');
$node->safe_psql($db, "SELECT flusso.reindex('$ix')");
ok(FlussoTest::wait_for(sub { status_of('backfill_rows_done') > 100 }, 'halfway'), 'the reindex is under way');
my $pid = FlussoTest::worker_pid($node, $db);
kill 'KILL', $pid;
ok(FlussoTest::wait_for(sub { my $p = FlussoTest::worker_pid($node, $db); $p ne '' && $p ne $pid }, 'back'),
	'the worker is back after kill -9');
my (undef, $alias) = FlussoTest::os_request('GET', "/_alias/$ix");
ok(exists $alias->{"$ix\_$gen"}, 'the alias still points at the complete generation');
faults('{}');
ok(FlussoTest::wait_synced($node, $db, '120 s'), 'the reindex completes after the crash');
is(status_of('generation'), $gen + 1, 'the rebuilt generation is live');
FlussoTest::is_consistent($node, $db, $ix, 'after a crash during a reindex');

# --- drop_index(drop_remote) while OpenSearch refuses the drop: said, not silent ---------
$node->safe_psql($db, q{SELECT flusso.create_index('t5-gone', '{"table": "companies"}')});
ok(FlussoTest::wait_synced($node, $db), 'a second index is synced');
faults('{"status_rate": 1, "status_codes": [503], "paths": "^/t5-gone_"}');
$node->safe_psql($db, q{SELECT flusso.drop_index('t5-gone', drop_remote => true)});
ok(FlussoTest::wait_for(sub { slurp_file($node->logfile) =~
			/WARNING:  flusso index "t5-gone" is dropped, but its OpenSearch index is left: could not (?:drop OpenSearch index "t5-gone_1"|check that OpenSearch's "t5-gone_1" is flusso's): HTTP 503.*\n.*HINT:  Delete it in OpenSearch by hand \(DELETE \/t5-gone_1\)/ },
		'the warning'), 'a drop OpenSearch refuses is logged, with the index to delete by hand');
faults('{}');
is((FlussoTest::os_request('HEAD', '/t5-gone_1'))[0], 200, 'and the index is indeed left');
FlussoTest::os_clean('t5-gone*');

$node->stop;
system("$root/test/faultproxy/faultproxy.sh", 'stop', '--dir', $proxydir);
done_testing();
