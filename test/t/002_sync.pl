# End to end: backfill of existing rows, then every kind of live change on
# root, child, grandchild and link tables, checked against OpenSearch with
# the consistency checker after each phase.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $db = 'shop';
my $ix = 't2-users';
FlussoTest::os_clean("$ix*");
my $node = FlussoTest::new_node('sync', database => $db, 'flusso.batch_size' => '200');
my $root = $ENV{FLUSSO_ROOT};

# --- an existing dataset, then the index: backfill ----------------------------
$node->command_ok(['psql', '-X', '-q', '-v', 'n=600', '-d', $db, '-f', "$root/test/bench/dataset.sql"],
	'load a dataset of 600 users');
my $def = slurp_file("$root/test/bench/users_index.json");
$node->safe_psql($db, "SELECT flusso.create_index('$ix', \$\$$def\$\$)");
ok(FlussoTest::wait_synced($node, $db), 'backfill completes');
my $st = $node->safe_psql($db, "SELECT state, backfill_rows_done, generation FROM flusso.index_status WHERE name = '$ix'");
is($st, 'seeded|588|1', 'index seeded with every matching root row (600 minus 12 filtered)');
my ($code, $alias) = FlussoTest::os_request('GET', "/_alias/$ix");
ok(exists $alias->{"$ix\_1"}, 'the alias points at generation 1');
FlussoTest::is_consistent($node, $db, $ix, 'after backfill');

# --- root: insert, update, delete, primary-key change ---------------------------
$node->safe_psql($db, q{
	INSERT INTO users VALUES (100001, 'New', 'new@example.com', 1, now(), NULL);
	UPDATE users SET name = 'Changed' WHERE id = 3;
	DELETE FROM user_tags WHERE user_id = 4; DELETE FROM addresses WHERE user_id = 4;
	DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id = 4);
	DELETE FROM orders WHERE user_id = 4; DELETE FROM users WHERE id = 4;
	UPDATE users SET id = 100002 WHERE id = 5 AND NOT EXISTS (SELECT FROM orders WHERE user_id = 5);
});
# id 5 has orders: change the key of a user without children instead
$node->safe_psql($db, q{UPDATE users SET id = 100003 WHERE id = 100001});
ok(FlussoTest::wait_synced($node, $db), 'root changes synced');
is(FlussoTest::os_doc($ix, 3)->{name}, 'Changed', 'an update is visible');
ok(!defined FlussoTest::os_doc($ix, 4), 'a deleted root row is deleted');
ok(!defined FlussoTest::os_doc($ix, 100001), 'a primary-key change deletes the old document');
is(FlussoTest::os_doc($ix, 100003)->{name}, 'New', 'and writes the new one');
FlussoTest::is_consistent($node, $db, $ix, 'after root changes');

# --- child, grandchild, link table, many-to-one -------------------------------
$node->safe_psql($db, q{
	INSERT INTO orders VALUES (9000001, 6, 77.70, 'paid', now());
	INSERT INTO order_items VALUES (9000001, 9000001, 'NEW-SKU', 3, 1.00);
	UPDATE order_items SET qty = 42 WHERE id = (SELECT min(id) FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id = 7));
	DELETE FROM addresses WHERE id = (SELECT min(id) FROM addresses WHERE user_id = 8);
	INSERT INTO user_tags VALUES (9, 199) ON CONFLICT DO NOTHING;
	DELETE FROM user_tags WHERE user_id = 10;
	UPDATE tags SET name = 'renamed-tag' WHERE id = 199;
	UPDATE companies SET name = 'Renamed Co' WHERE id = 3;
});
ok(FlussoTest::wait_synced($node, $db), 'child changes synced');
my $d6 = FlussoTest::os_doc($ix, 6);
ok((grep { $_->{id} == 9000001 && $_->{items}[0]{sku} eq 'NEW-SKU' } @{ $d6->{orders} }),
	'a new child with a grandchild appears');
is(FlussoTest::os_doc($ix, 10)->{tags}, [], 'deleting link rows empties the array') if 0;
is(scalar @{ FlussoTest::os_doc($ix, 10)->{tags} }, 0, 'deleting link rows empties the array');
FlussoTest::is_consistent($node, $db, $ix, 'after child, grandchild, link and many-to-one changes');

# --- re-parenting: both parents rebuilt --------------------------------------------
my $moved = $node->safe_psql($db, q{SELECT min(id) FROM orders WHERE user_id = 12});
$node->safe_psql($db, "UPDATE orders SET user_id = 13 WHERE id = $moved");
ok(FlussoTest::wait_synced($node, $db), 're-parenting synced');
ok(!(grep { $_->{id} == $moved } @{ FlussoTest::os_doc($ix, 12)->{orders} }), 'the old parent lost the order');
ok((grep { $_->{id} == $moved } @{ FlussoTest::os_doc($ix, 13)->{orders} }), 'the new parent has it');
FlussoTest::is_consistent($node, $db, $ix, 'after re-parenting');

# --- a row leaving and re-entering the filter; aggregates ---------------------------
$node->safe_psql($db, q{UPDATE users SET deleted_at = now() WHERE id = 14});
ok(FlussoTest::wait_synced($node, $db), 'filter exit synced');
ok(!defined FlussoTest::os_doc($ix, 14), 'a row leaving the filter is deleted');
$node->safe_psql($db, q{UPDATE users SET deleted_at = NULL WHERE id = 14});
$node->safe_psql($db, q{UPDATE orders SET status = 'cancelled' WHERE user_id = 15});
ok(FlussoTest::wait_synced($node, $db), 'filter re-entry synced');
ok(defined FlussoTest::os_doc($ix, 14), 'a row re-entering the filter is written again');
is(FlussoTest::os_doc($ix, 15)->{total_spent}, 0, 'the sum follows its filter');
is(FlussoTest::os_doc($ix, 15)->{order_count}, 5, 'the count does not filter');
FlussoTest::is_consistent($node, $db, $ix, 'after filter and aggregate changes');

# --- TRUNCATE of a child, then of the root -------------------------------------
$node->safe_psql($db, 'TRUNCATE order_items');
ok(FlussoTest::wait_synced($node, $db, '120 s'), 'child truncate synced');
is(scalar @{ FlussoTest::os_doc($ix, 6)->{orders}[0]{items} }, 0, 'items are gone after TRUNCATE of the child');
FlussoTest::is_consistent($node, $db, $ix, 'after TRUNCATE of a child');
my $gen = $node->safe_psql($db, "SELECT generation FROM flusso.index_status WHERE name = '$ix'");
cmp_ok($gen, '>', 1, 'the TRUNCATE was handled by a rebuild into a new generation');
$node->safe_psql($db, 'TRUNCATE users CASCADE');
ok(FlussoTest::wait_synced($node, $db, '120 s'), 'root truncate synced');
($code, my $count) = FlussoTest::os_request('GET', "/$ix/_count");
is($count->{count}, 0, 'TRUNCATE of the root empties the index');
FlussoTest::is_consistent($node, $db, $ix, 'after TRUNCATE of the root');

# --- json values arrive whole: whitespace inside strings kept, one line per
# document in the _bulk body even when a json column holds newlines --------------
FlussoTest::os_clean('t2-notes*');
$node->safe_psql($db, <<'SQL');
CREATE TABLE notes (id int PRIMARY KEY, body json, tags jsonb, txt text);
INSERT INTO notes VALUES (1, '{"a" :
  "x  y\n z",
 "b": [1, 2,	3], "q": "say \"hi\"  ", "e": {  }}', '{"k": "v w"}', 'line one
line  two "quoted" \ end');
SELECT flusso.create_index('t2-notes', '{"table": "public.notes", "columns": ["body", "tags", "txt"]}');
SQL
ok(FlussoTest::wait_synced($node, $db), 'the notes index is synced');
is_deeply(FlussoTest::os_doc('t2-notes', 1),
	{ body => { a => "x  y\n z", b => [1, 2, 3], q => 'say "hi"  ', e => {} },
	  tags => { k => 'v w' }, txt => "line one\nline  two \"quoted\" \\ end" },
	'json and text values arrive exactly');
$node->safe_psql($db, q{SELECT flusso.drop_index('t2-notes', true)});

# --- status counters ------------------------------------------------------------
my $s = FlussoTest::status($node, $db);
cmp_ok($s->{changes_committed}, '>', 0, 'changes_committed counts');
is($s->{changes_in_flight}, 0, 'nothing in flight when synced');
cmp_ok($s->{documents_built}, '>', 0, 'documents_built counts');
cmp_ok($s->{batches}, '>', 0, 'batches counts');
is($s->{phase}, 'live', 'phase live');
my $captured = $s->{changes_captured};
my $pid = FlussoTest::worker_pid($node, $db);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(FlussoTest::wait_for(sub { my $p = FlussoTest::worker_pid($node, $db); $p ne '' && $p ne $pid }, 'restart'),
	'worker restarted');
cmp_ok(FlussoTest::status($node, $db)->{changes_captured}, '>=', $captured,
	'counters survive a worker restart');

# --- idle after a restart and after a reload: the worker sleeps ---------------------
# (an idle index whose OpenSearch side was not prepared yet used to wake
# the worker every millisecond until its next change)
my $idle_wakeups = sub {
	my $wpid = FlussoTest::worker_pid($node, $db);
	my $n = sub { slurp_file("/proc/$wpid/status") =~ /^voluntary_ctxt_switches:\s*(\d+)/m; $1 };
	usleep(1_000_000);
	my $before = $n->();
	usleep(3_000_000);
	return $n->() - $before;
};
my $spent = $idle_wakeups->();
cmp_ok($spent, '<', 50, "idle after a restart: the worker slept $spent times in 3 s");
$node->safe_psql($db, q{SELECT flusso.create_index('t2-idle', '{"table": "public.tags", "columns": ["name"]}')});
ok(FlussoTest::wait_synced($node, $db), 'another index backfilled');
$node->safe_psql($db, q{SELECT flusso.drop_index('t2-idle', true)});
ok(FlussoTest::wait_for(sub { $node->safe_psql($db, q{SELECT count(*) FROM flusso.index_status WHERE name = 't2-idle'}) eq '0' },
	'drop'), 'and dropped');
$spent = $idle_wakeups->();
cmp_ok($spent, '<', 50, "idle after a reload: the worker slept $spent times in 3 s");

$node->stop;
done_testing();
