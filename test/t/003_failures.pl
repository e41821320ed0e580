# Documents OpenSearch rejects, under each failure policy; OpenSearch down
# for a while and back; and the dry-run sink.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $db = 'fail';
FlussoTest::os_clean('t3-*');
my $node = FlussoTest::new_node('failures', database => $db);

$node->safe_psql($db, q{
	CREATE TABLE things (id int PRIMARY KEY, val text NOT NULL);
	INSERT INTO things SELECT i, i::text FROM generate_series(1, 50) i;
	UPDATE things SET val = 'not a number' WHERE id IN (7, 8);
});
for my $policy (qw(skip dead_letter stop))
{
	(my $name = "t3-$policy") =~ s/_/-/g;
	$node->safe_psql($db, qq{SELECT flusso.create_index('$name', '{
		"table": "things", "on_error": "$policy",
		"opensearch": {"mappings": {"properties": {"val": {"type": "integer"}}}}}')});
}
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT count(*) FROM flusso.index_status WHERE errors > 0}) == 3
		}, 'all three saw the rejections'), 'the rejected documents reach every policy');

# skip: counted and logged, the others are written
my ($skip_errors, $skip_state) = split /\|/, $node->safe_psql($db,
	q{SELECT errors, state FROM flusso.index_status WHERE name = 't3-skip'});
is($skip_errors, 2, 'skip: both rejections counted');
is($skip_state, 'seeded', 'skip: the index goes on');
ok(defined FlussoTest::os_doc('t3-skip', 9) && !defined FlussoTest::os_doc('t3-skip', 7),
	'skip: good documents written, rejected ones not');
like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't3-skip'}),
	FlussoTest::parsing_exception, 'skip: the error names the engine\'s reason');

# dead_letter: kept with the error and the body
# the error is counted in shared memory as the answer is read; the dead
# letters are rows the worker commits after it
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT count(*) FROM flusso.dead_letters WHERE index_name = 't3-dead-letter'}) eq '2'
		}, 'dead letters written'), 'dead_letter: two dead letters');
like($node->safe_psql($db, q{SELECT body FROM flusso.dead_letters WHERE index_name = 't3-dead-letter' AND document_id = '7'}),
	qr/not a number/, 'dead_letter: with the document body');

# stop: the index stops, with the error in status
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT state FROM flusso.index_status WHERE name = 't3-stop'}) eq 'stopped'
		}, 'stopped'), 'stop: the index is stopped');
like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't3-stop'}),
	qr/document "[78]" of index "t3-stop" rejected/, 'stop: status says which document and why');
is($node->safe_psql($db, q{SELECT flusso.wait_synced('2 s')}), 'f', 'wait_synced is false while an index is stopped');

# fix the data; each policy recovers its own way
sub dead_letter_count
{
	return $node->safe_psql($db, qq{SELECT count(*) FROM flusso.dead_letters WHERE document_id = '$_[0]'});
}
$node->safe_psql($db, q{UPDATE things SET val = '7' WHERE id = 7});
ok(FlussoTest::wait_for(sub { dead_letter_count(7) eq '0' }, 'dead letter 7 settled'),
	'a dead letter goes once its document syncs normally');
is(dead_letter_count(8), '1', 'the other stays');
my $failed_at = $node->safe_psql($db, q{SELECT failed_at FROM flusso.dead_letters WHERE document_id = '8'});
is($node->safe_psql($db, q{SELECT flusso.retry_dead_letters('t3-dead-letter')}), '1',
	'retry_dead_letters queues the one left');
# the request makes the worker reload while t3-stop is stopped; a reindex
# afterwards must bring its live changes back too
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT count(*) FROM flusso.requests}) eq '0'
		}, 'request handled'), 'the worker took the retry request');
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, qq{SELECT failed_at > '$failed_at' FROM flusso.dead_letters WHERE document_id = '8'}) eq 't'
		}, 'rejected again'), 'the retried document, still bad, is rejected again');
is(dead_letter_count(8), '1', 'and its dead letter replaced, not doubled');
$node->safe_psql($db, q{UPDATE things SET val = '8' WHERE id = 8});
$node->safe_psql($db, q{SELECT flusso.reindex('t3-stop', true)});
$node->safe_psql($db, q{INSERT INTO things VALUES (60, '60')});
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc('t3-stop', 60) }, 'live after reindex'),
	'a change after the reindex of a stopped index reaches it');
ok(FlussoTest::wait_synced($node, $db), 'everything synced after the fix');
is($node->safe_psql($db, q{SELECT count(*) FROM flusso.dead_letters}), '0', 'dead letters are gone once sent');
FlussoTest::is_consistent($node, $db, $_, 'after fixing the data') for qw(t3-skip t3-dead-letter t3-stop);

# --- wait_synced() covers a dead-letter retry ------------------------------------
$node->safe_psql($db, q{CREATE TABLE retried (id int PRIMARY KEY, val text NOT NULL);
	INSERT INTO retried SELECT i, i::text FROM generate_series(1, 5) i;
	SELECT flusso.create_index('t3-retry', '{"table": "retried", "on_error": "dead_letter",
		"opensearch": {"mappings": {"properties": {"val": {"type": "integer"}}}}}')});
ok(FlussoTest::wait_synced($node, $db), 'another dead_letter index is synced');
$node->safe_psql($db, q{UPDATE retried SET val = 'bad' WHERE id = 3});
ok(FlussoTest::wait_for(sub { dead_letter_count(3) eq '1' }, 'dead letter 3'), 'a new dead letter');
$failed_at = $node->safe_psql($db, q{SELECT failed_at FROM flusso.dead_letters WHERE document_id = '3'});
$node->safe_psql($db, q{SELECT flusso.retry_dead_letters('t3-retry')});
ok(FlussoTest::wait_synced($node, $db), 'wait_synced after retry_dead_letters');
is($node->safe_psql($db, qq{SELECT failed_at > '$failed_at' FROM flusso.dead_letters WHERE document_id = '3'}), 't',
	'returns only once the retried document came back (rejected again here)');
$node->safe_psql($db, q{UPDATE retried SET val = '3' WHERE id = 3});
ok(FlussoTest::wait_synced($node, $db), 'synced once fixed');
is(dead_letter_count(3), '0', 'and its dead letter is gone');

# --- a document that cannot be built: its policy, for it alone -------------------
$node->safe_psql($db, q{CREATE TABLE posts (id int PRIMARY KEY, meta jsonb NOT NULL);
	INSERT INTO posts SELECT i, jsonb_build_object('words', i * 10) FROM generate_series(1, 30) i;
	UPDATE posts SET meta = '{"words": "lots"}' WHERE id = 13});
for my $policy (qw(skip dead_letter stop))
{
	(my $name = "t3-posts-$policy") =~ s/_/-/g;
	$node->safe_psql($db, qq{SELECT flusso.create_index('$name', '{"table": "posts", "on_error": "$policy",
		"columns": ["id", {"name": "words", "expr": "(meta->>''words'')::int"}]}')});
}
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT count(*) FROM flusso.index_status WHERE name LIKE 't3-posts-%' AND errors > 0}) == 3
		}, 'unbuildable seen'), 'a row the expression cannot handle reaches every policy (in the backfill)');
for my $ix (qw(t3-posts-skip t3-posts-dead-letter))
{
	ok(FlussoTest::wait_for(sub { $node->safe_psql($db, qq{SELECT state FROM flusso.index_status WHERE name = '$ix'}) eq 'seeded' },
			"$ix seeded"), "$ix: the index goes on");
	ok(defined FlussoTest::os_doc($ix, 12) && defined FlussoTest::os_doc($ix, 14) && !defined FlussoTest::os_doc($ix, 13),
		"$ix: the documents around it are written, it is not");
}
like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't3-posts-skip'}),
	qr/document "13" of index "t3-posts-skip" rejected: it cannot be built: invalid input syntax for type integer: "lots" \(at columns\[1\]\.expr in the definition\)/,
	'the error names the document and the path in the definition');
like($node->safe_psql($db, q{SELECT error FROM flusso.dead_letters WHERE index_name = 't3-posts-dead-letter'}),
	qr/it cannot be built: .*columns\[1\]\.expr/, 'dead_letter: kept with that error');
is($node->safe_psql($db, q{SELECT state FROM flusso.index_status WHERE name = 't3-posts-stop'}), 'stopped',
	'stop: the index stops');
# live changes: one bad row among good ones
$node->safe_psql($db, q{UPDATE posts SET meta = '{"words": 1}' WHERE id = 13;
	UPDATE posts SET meta = '{"words": "many"}' WHERE id = 20; UPDATE posts SET meta = '{"words": 777}' WHERE id = 21});
ok(FlussoTest::wait_for(sub { (FlussoTest::os_doc('t3-posts-skip', 21) // {})->{words} == 777 }, 'live 21'),
	'live: the good changes of a batch are written');
ok(FlussoTest::wait_for(sub { (FlussoTest::os_doc('t3-posts-skip', 13) // {})->{words} == 1 }, 'live 13'),
	'a fixed row is written');
is(FlussoTest::os_doc('t3-posts-skip', 20)->{words}, 200, 'the bad one keeps its last good version');
like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't3-posts-skip'}),
	qr/document "20" .* "many" \(at columns\[1\]\.expr in the definition\)/, 'and the error names it');
$node->safe_psql($db, q{UPDATE posts SET meta = '{"words": 200}' WHERE id = 20;
	SELECT flusso.drop_index(name, true) FROM flusso.indexes WHERE name LIKE 't3-posts-%'});

# --- an oversized document goes to the policy, the pipeline goes on -----------
$node->safe_psql($db, q{ALTER SYSTEM SET flusso.batch_bytes = '64kB'});
$node->reload;
sleep 1;	# the worker applies the new setting at its next loop
$node->safe_psql($db, q{INSERT INTO things VALUES (1000, repeat('9', 70000)), (1001, '1001')});
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT count(*) FROM flusso.dead_letters WHERE document_id = '1000'}) == 1
		}, 'oversized dead letter'), 'an oversized document becomes a dead letter');
like($node->safe_psql($db, q{SELECT error FROM flusso.dead_letters WHERE document_id = '1000'}),
	qr/more than flusso.batch_bytes/, 'with a clear error');
ok(FlussoTest::wait_for(sub { defined FlussoTest::os_doc('t3-dead-letter', 1001) }, 'next doc'),
	'and the next document still flows');
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't3-stop'})
			  =~ /more than flusso.batch_bytes/
		}, 'stop error'), 'under the stop policy it stops the index');
$node->safe_psql($db, q{DELETE FROM things WHERE id = 1000; DELETE FROM flusso.dead_letters});
$node->safe_psql($db, q{SELECT flusso.reindex('t3-stop')});
$node->safe_psql($db, q{ALTER SYSTEM RESET flusso.batch_bytes});
$node->reload;

# --- OpenSearch down for a while, then back ---------------------------------------
my $osdir = $ENV{FLUSSO_OPENSEARCH_DIR};
my $launcher = "$ENV{FLUSSO_ROOT}/test/opensearch/opensearch.sh";
system($launcher, 'kill', '1', '--signal', 'KILL', '--dir', $osdir) == 0 or die 'cannot kill OpenSearch';
my $t0 = time;
$node->safe_psql($db, q{INSERT INTO things SELECT i, i::text FROM generate_series(2000, 2100) i});
$node->safe_psql($db, q{UPDATE things SET val = '42' WHERE id BETWEEN 10 AND 20});
cmp_ok(time - $t0, '<', 5, 'database writes do not wait for OpenSearch');
ok(FlussoTest::wait_for(sub { FlussoTest::status($node, $db)->{opensearch} eq 'unreachable' }, 'unreachable'),
	'status shows OpenSearch unreachable');
cmp_ok(FlussoTest::status($node, $db)->{changes_in_flight}, '>', 0, 'changes wait in flight');
system($launcher, 'restart', '1', '--dir', $osdir) == 0 or die 'cannot restart OpenSearch';
ok(FlussoTest::wait_synced($node, $db, '120 s'), 'synced once OpenSearch is back');
is(FlussoTest::status($node, $db)->{opensearch}, 'reachable', 'status shows it reachable again');

# --- an index that cannot be made in OpenSearch: retried with a backoff -------
# (OpenSearch at a port nobody listens on; the worker's own state writes once
# woke it up again at once, and it spun)
$node->safe_psql($db, q{ALTER SYSTEM SET flusso.opensearch_url = 'http://127.0.0.1:9'});
$node->reload;
$node->safe_psql($db, q{SELECT flusso.create_index('t3-late', '{"table": "things"}')});
ok(FlussoTest::wait_for(sub {
			$node->safe_psql($db, q{SELECT errors > 0 FROM flusso.index_status WHERE name = 't3-late'}) eq 't'
		}, 'the new index fails'), 'the new index cannot be created in OpenSearch');
my $wpid = FlussoTest::worker_pid($node, $db);
my $ticks = sub { my @f = split ' ', slurp_file("/proc/$wpid/stat"); $f[13] + $f[14] };
my ($before, $tries0) = ($ticks->(), $node->safe_psql($db, q{SELECT errors FROM flusso.index_status WHERE name = 't3-late'}));
sleep 3;
my $spent = $ticks->() - $before;
my $tries = $node->safe_psql($db, q{SELECT errors FROM flusso.index_status WHERE name = 't3-late'}) - $tries0;
cmp_ok($spent, '<', 60, "the worker idles meanwhile ($spent clock ticks in 3 s)");
cmp_ok($tries, '<=', 10, "and tries again with a backoff ($tries tries in 3 s)");
like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't3-late'}),
	qr/127\.0\.0\.1/, 'status says why');
$node->safe_psql($db, q{ALTER SYSTEM RESET flusso.opensearch_url});
$node->reload;
ok(FlussoTest::wait_synced($node, $db, '120 s'), 'created and synced once OpenSearch is reachable');
FlussoTest::is_consistent($node, $db, 't3-late', 'the late index');
FlussoTest::is_consistent($node, $db, $_, 'after the outage') for qw(t3-skip t3-dead-letter t3-stop);
$node->stop;

# --- a document over OpenSearch's http.max_content_length ----------------------
# A second OpenSearch that takes requests of at most 100kb: the document is
# under flusso.batch_bytes, OpenSearch answers 413, the batch is split until
# the document is alone, and the document goes to the policy.
my $smalldir = "$ENV{TESTDIR}/os-small";
my $small_url = `$launcher start --dir $smalldir -E http.max_content_length=100kb`;
chomp $small_url;
ok($small_url =~ m{^http://}, 'an OpenSearch with http.max_content_length = 100kb');
my $snode = FlussoTest::new_node('small', database => $db, 'flusso.opensearch_url' => "'$small_url'");
$snode->safe_psql($db, q{CREATE TABLE notes (id int PRIMARY KEY, body text);
	INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 20) i;
	SELECT flusso.create_index('t3-small', '{"table": "notes", "on_error": "dead_letter"}')});
ok(FlussoTest::wait_synced($snode, $db), 'the small OpenSearch syncs');
$snode->safe_psql($db, q{BEGIN; INSERT INTO notes VALUES (21, 'before');
	INSERT INTO notes VALUES (22, repeat('x', 300000)); INSERT INTO notes VALUES (23, 'after'); COMMIT});
ok(FlussoTest::wait_synced($snode, $db), 'a document over the limit does not stall the pipeline');
like($snode->safe_psql($db, q{SELECT error FROM flusso.dead_letters WHERE document_id = '22'}),
	qr/HTTP 413: the document is larger than OpenSearch's http.max_content_length/, 'it is a dead letter, with the reason');
FlussoTest::os_request('POST', '/t3-small/_refresh', undef, $small_url);
my ($code, $hits) = FlussoTest::os_request('GET', '/t3-small/_count', undef, $small_url);
is($hits->{count}, 22, 'its neighbours in the batch arrived');
$snode->stop;
system($launcher, 'stop', '--dir', $smalldir, '--clean');

# --- the dry-run sink: no URL, documents in the log -------------------------------
my $dry = FlussoTest::new_node('dryrun', database => 'dry', 'flusso.opensearch_url' => "''",
	'flusso.pretty' => 'on');

$dry->safe_psql('dry', q{CREATE TABLE notes (id int PRIMARY KEY, body text);
	INSERT INTO notes VALUES (1, 'hello');
	SELECT flusso.create_index('t3-notes', '{"table": "notes"}')});
ok(FlussoTest::wait_synced($dry, 'dry'), 'the dry run syncs');
$dry->safe_psql('dry', q{UPDATE notes SET body = 'changed' WHERE id = 1});
ok(FlussoTest::wait_synced($dry, 'dry'), 'and streams');
$dry->safe_psql('dry', q{DELETE FROM notes});
ok(FlussoTest::wait_synced($dry, 'dry'), 'deletes too');
is(FlussoTest::status($dry, 'dry')->{opensearch}, 'dry run', 'status says dry run');
my $log = slurp_file($dry->logfile);
like($log, qr/flusso dry run: \{"index":\{"_index":"t3-notes_1","_id":"1"/, 'documents are logged');
like($log, qr/"body": "changed"/, 'pretty-printed');
like($log, qr/flusso dry run: \{"delete":\{"_index":"t3-notes_1","_id":"1"/, 'deletes are logged');

my ($status) = FlussoTest::os_request('HEAD', '/t3-notes_1');
is($status, 404, 'nothing reached OpenSearch');
$dry->stop;

done_testing();
