# The sync worker's lifecycle: start, status, reload, crash, terminate,
# DROP DATABASE, CREATE/DROP EXTENSION, OpenSearch reachability, and the
# refusal to load outside shared_preload_libraries.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = FlussoTest::new_node('lifecycle');

# --- the worker starts and shows in status -------------------------------
ok(FlussoTest::wait_for(sub { FlussoTest::status($node)->{phase} eq 'live' },
		'phase live'), 'worker reaches phase live');
my $st = FlussoTest::status($node);
is($st->{database}, 'flusso_test', 'status names the database');
like($st->{worker_pid}, qr/^\d+$/, 'status shows the worker pid');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'flusso sync'}),
	'1', 'pg_stat_activity shows one "flusso sync" backend');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'flusso launcher'}),
	'1', 'and one "flusso launcher"');

# --- OpenSearch reachable ----------------------------------------------------
ok(FlussoTest::wait_for(sub { FlussoTest::status($node)->{opensearch} eq 'reachable' },
		'OpenSearch reachable'), 'status shows OpenSearch reachable');
my ($engine, $engine_version) = FlussoTest::engine();
is(FlussoTest::status($node)->{opensearch_version}, $engine_version,
	'status shows the engine\'s version');
is(FlussoTest::status($node)->{search_engine}, $engine, 'status shows which engine answers');
is(FlussoTest::status($node)->{search_version}, $engine_version, 'and its version');

# --- SIGHUP: a changed setting is seen in status --------------------------
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.opensearch_tls_verify = off});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::status($node)->{opensearch_tls_verify} eq '0' },
		'tls_verify off in status'), 'reload: status shows TLS verification off');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.opensearch_tls_verify});

# --- OpenSearch unreachable, then reachable again -----------------------------
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.opensearch_url = 'http://127.0.0.1:9'});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::status($node)->{opensearch} eq 'unreachable' },
		'unreachable'), 'status shows OpenSearch unreachable');
like(FlussoTest::status($node)->{opensearch_error}, qr/connect/i,
	'with the connection error');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET flusso.opensearch_url});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::status($node)->{opensearch} eq 'reachable' },
		'reachable again'), 'reachable again after a reload');

# --- a bad value is refused, with a clear detail, and the old one kept ---------
my ($ret, $out, $err) = $node->psql('postgres',
	q{ALTER SYSTEM SET flusso.opensearch_url = 'ftp://example.com'});
isnt($ret, 0, 'ALTER SYSTEM refuses a bad URL');
like($err, qr/not a usable OpenSearch URL/, 'with a detail saying why');

# --- kill -9: the postmaster restarts everything, status is readable ---------
my $pid = FlussoTest::worker_pid($node);
kill 'KILL', $pid;
ok(FlussoTest::wait_for(sub {
			my $new = FlussoTest::worker_pid($node);
			$new ne '' && $new ne $pid && FlussoTest::status($node)->{phase} eq 'live'
		}, 'worker back after kill -9'), 'worker restarted after kill -9');

# --- pg_terminate_backend: restarted by the launcher, counters kept ----------
$pid = FlussoTest::worker_pid($node);
my $started = FlussoTest::status($node)->{started_at};
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(FlussoTest::wait_for(sub {
			my $new = FlussoTest::worker_pid($node);
			$new ne '' && $new ne $pid
		}, 'worker back after pg_terminate_backend'),
	'worker restarted after pg_terminate_backend');
isnt(FlussoTest::status($node)->{started_at}, $started, 'with a new start time');
ok(scalar(FlussoTest::log_lines($node, qr/flusso sync worker for database "flusso_test" exited; restarting/)) >= 1,
	'the launcher logs the restart');

# --- DROP / CREATE EXTENSION are picked up without a restart -----------------
$node->safe_psql('flusso_test', 'DROP EXTENSION flusso');
ok(FlussoTest::wait_for(sub {
			scalar(FlussoTest::log_lines($node, qr/flusso extension dropped from database "flusso_test"/)) >= 1
		}, 'drop noticed'), 'DROP EXTENSION is noticed');
$node->safe_psql('flusso_test', 'CREATE EXTENSION flusso');
ok(FlussoTest::wait_for(sub { FlussoTest::status($node)->{phase} eq 'live' }, 'live again'),
	'CREATE EXTENSION is picked up without a restart');

# --- waiting for CREATE EXTENSION logs once, not once a second ---------------
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.database = 'flusso_test, other'});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::worker_pid($node, 'other') ne '' }, 'second worker'),
	'a database added to flusso.database gets a worker on reload');
sleep 3;
is(scalar(FlussoTest::log_lines($node, qr/waits for CREATE EXTENSION flusso in database "other"/)),
	1, 'waiting for the extension is logged once');

# --- DROP DATABASE of a synced database is not blocked -----------------------
my $t0 = time;
($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE other');
is($ret, 0, 'DROP DATABASE of a synced database succeeds') or diag($err);
cmp_ok(time - $t0, '<', 5, 'without waiting for the worker');
sleep 1;
is(FlussoTest::worker_pid($node, 'other'), '', 'and no worker comes back for it');
ok(FlussoTest::wait_for(sub {
			scalar(FlussoTest::log_lines($node, qr/flusso waits for database "other", which does not exist/)) == 1
		}, 'missing database logged'), 'the launcher says once that the database is missing');

# --- SIGTERM: a fast shutdown is prompt --------------------------------------
$t0 = time;
$node->stop('fast');
cmp_ok(time - $t0, '<', 10, 'fast shutdown is prompt');

# --- not preloaded: a clear error and hint -----------------------------------
my $plain = FlussoTest::new_node('plain', preload => 0, create_extension => 0);
($ret, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION flusso');
isnt($ret, 0, 'CREATE EXTENSION fails when flusso is not preloaded');
like($err, qr/flusso must be loaded via shared_preload_libraries/, 'with a clear message');
like($err, qr/HINT:.*Add flusso to shared_preload_libraries/, 'and a hint saying how');
$plain->stop;

done_testing();
