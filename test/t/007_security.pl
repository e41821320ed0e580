# Security: secrets never show (log, views, settings), the password file,
# the worker's role, and TLS against OpenSearch behind an nginx with a CA
# made here (verification, host name, verification off, mutual TLS).
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{FLUSSO_ROOT};
my $db = 'sec';
FlussoTest::os_clean('t7-*');
my @secrets = ('Url-S3cret-Pw', 'Guc-S3cret-Pw', 'Later-S3cret-Pw', 'File-S3cret-Pw');

# --- secrets: an unreachable OpenSearch with credentials everywhere -----------------
my $node = FlussoTest::new_node('security', database => $db,
	'flusso.opensearch_url' => "'http://flusso:$secrets[0]\@127.0.0.1:9'",
	'flusso.opensearch_user' => "'flusso'",
	'flusso.opensearch_password' => "'$secrets[1]'",
	'log_statement' => "'all'");
$node->safe_psql($db, q{CREATE TABLE docs (id int PRIMARY KEY, body text);
	INSERT INTO docs VALUES (1, 'one');
	SELECT flusso.create_index('t7-docs', '{"table": "docs"}')});
ok(FlussoTest::wait_for(sub { FlussoTest::status($node, $db)->{opensearch} eq 'unreachable' }, 'errors'),
	'connection errors happen');
$node->safe_psql('postgres', "ALTER SYSTEM SET flusso.opensearch_password = '$secrets[2]'");
$node->reload;
my ($ret, $out, $err) = $node->psql('postgres', q{SET flusso.opensearch_url = 'nonsense'});
sleep 2;

is($node->safe_psql('postgres', 'SHOW flusso.opensearch_password'), '********',
	'SHOW masks the password, even for a superuser');
is($node->safe_psql('postgres', 'SHOW flusso.opensearch_url'), 'http://flusso:***@127.0.0.1:9',
	'and the password in the URL');
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN; CREATE ROLE watcher LOGIN IN ROLE pg_monitor');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name IN ('flusso.opensearch_url',
		'flusso.opensearch_user', 'flusso.opensearch_password', 'flusso.opensearch_password_file',
		'flusso.opensearch_ca_file', 'flusso.opensearch_client_cert', 'flusso.opensearch_client_key')},
		extra_params => ['-U', 'plain']), '0', 'other roles do not see the OpenSearch settings in pg_settings');
my $seen = '';
for my $q ('SELECT * FROM flusso.status', 'SELECT * FROM flusso.index_status', 'SELECT flusso.metrics()',
	q{SELECT * FROM pg_settings WHERE name LIKE 'flusso.%'})
{
	$seen .= $node->safe_psql($db, $q) . "\n";
	$seen .= $node->safe_psql($db, $q, extra_params => ['-U', 'watcher']) . "\n";
}
like($seen, qr/unreachable/, 'the views show the connection error');
my $log = slurp_file($node->logfile);
for my $s (@secrets[0 .. 2])
{
	unlike($seen, qr/\Q$s\E/, "the views never show the secret $s");
	unlike($log, qr/\Q$s\E/, "the server log never shows the secret $s");
}

# --- any password characters, any spelling of the statement -------------------------
my @spelled = ('Semi;Quote', "Quote'At", 'Slash/Pw', 'UpperCase-S3cret', 'Dollar-S3cret', 'QuotedIdent-S3cret',
	'Doubled', 'EscapedA-S3cret', 'SetConfig-S3cret');
$node->safe_psql('postgres', q{ALTER SYSTEM SET flusso.opensearch_url = 'http://flusso:Semi;Quote''At@Slash/Pw@127.0.0.1:9'});
$node->reload;
sleep 1;
is($node->safe_psql('postgres', 'SHOW flusso.opensearch_url'), 'http://flusso:***@127.0.0.1:9',
	'a URL password holding ; \' @ / is masked whole');
for my $stmt (q{ALTER SYSTEM SET FLUSSO.OPENSEARCH_PASSWORD = 'UpperCase-S3cret'},
	q{ALTER SYSTEM SET flusso.opensearch_password = $$Dollar-S3cret$$},
	q{ALTER SYSTEM SET flusso.opensearch_password = $tag$Dollar-S3cret$tag$},
	q{ALTER SYSTEM SET "flusso.opensearch_password" = 'QuotedIdent-S3cret'},
	q{ALTER SYSTEM SET flusso.opensearch_password = 'Doubled''Quote-S3cret'},
	q{ALTER SYSTEM SET flusso.opensearch_password = E'Escaped\x41-S3cret'},
	q{SELECT set_config('flusso.opensearch_password', 'SetConfig-S3cret', false)})
{
	$node->psql('postgres', $stmt);
}
$node->reload;
sleep 1;
$seen = '';
for my $q ('SELECT * FROM flusso.status', 'SELECT * FROM flusso.index_status', 'SHOW flusso.opensearch_url',
	q{SELECT * FROM pg_settings WHERE name LIKE 'flusso.%'})
{
	$seen .= $node->safe_psql($db, $q) . "\n";
	$seen .= $node->safe_psql($db, $q, extra_params => ['-U', 'watcher']) . "\n";
}
$log = slurp_file($node->logfile);
for my $s (@spelled)
{
	unlike($log, qr/\Q$s\E/, "the server log never shows \"$s\"");
	unlike($seen, qr/\Q$s\E/, "nor do the views and settings");
}
like($log, qr/ALTER SYSTEM SET FLUSSO.OPENSEARCH_PASSWORD = '\*\*\*'/, 'the statement is logged, masked');
is($node->safe_psql('postgres', 'SHOW flusso.opensearch_url', extra_params => ['-U', 'watcher']), '(hidden)',
	'pg_monitor does not see the URL');
is($node->safe_psql('postgres', 'SHOW flusso.opensearch_user', extra_params => ['-U', 'watcher']), '(hidden)',
	'nor the user name');

# --- the password file ---------------------------------------------------------------
my $file = "$ENV{TESTDIR}/t7-password";
open(my $fh, '>', $file) or die;
print $fh "$secrets[3]\n";
close $fh;
chmod 0644, $file;
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET flusso.opensearch_password_file = '$file'");
isnt($ret, 0, 'a password file readable by others is refused');
like($err, qr/is readable by its group or by others \(mode 0644\)/, 'with the reason');
like($err, qr/HINT:  Run chmod 600 on it/, 'and the fix');
chmod 0600, $file;
($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET flusso.opensearch_password_file = '$file'");
is($ret, 0, 'a password file readable by its owner only is accepted');
$node->reload;
sleep 2;
unlike(slurp_file($node->logfile), qr/\Q$secrets[3]\E/, 'the file password never reaches the log');
$node->stop;

# --- TLS: OpenSearch behind nginx, with a CA made here ----------------------------------
my $tlsdir = "$ENV{TESTDIR}/t7-tls";
my ($tls, $mtls) = split ' ', `$root/test/tls/tls.sh start --upstream $FlussoTest::OS_URL --dir $tlsdir`;
ok($tls && $mtls, 'nginx terminates TLS in front of OpenSearch');
my $tnode = FlussoTest::new_node('tls', database => $db,
	'flusso.opensearch_url' => "'https://localhost:$tls'",
	'flusso.opensearch_ca_file' => "'$tlsdir/ca.crt'");
# Reload, then wait until the status satisfies $until (or 20 s pass).
my $reach = sub {
	my ($what, $until) = @_;
	$tnode->reload;
	FlussoTest::wait_for(sub { $until->(FlussoTest::status($tnode, $db)) }, $what, 20);
	return FlussoTest::status($tnode, $db);
};
my $down = sub { $_[0]->{opensearch} eq 'unreachable' };
my $up = sub { $_[0]->{opensearch} eq 'reachable' };
sub set { $tnode->safe_psql('postgres', "ALTER SYSTEM SET $_[0] = '$_[1]'") }
sub reset_setting { $tnode->safe_psql('postgres', "ALTER SYSTEM RESET $_[0]") }

ok(FlussoTest::wait_for(sub { FlussoTest::status($tnode, $db)->{opensearch} eq 'reachable' }, 'tls'),
	'verification succeeds with the CA');
$tnode->safe_psql('postgres', 'CREATE ROLE watcher LOGIN IN ROLE pg_monitor');
is($tnode->safe_psql('postgres', 'SHOW flusso.opensearch_ca_file', extra_params => ['-U', 'watcher']), '(hidden)',
	'pg_monitor does not see the CA file path');
is($tnode->safe_psql('postgres', 'SHOW flusso.opensearch_ca_file'), "$tlsdir/ca.crt", 'a superuser does');
$tnode->safe_psql($db, q{CREATE TABLE docs (id int PRIMARY KEY, body text);
	INSERT INTO docs SELECT i, 'doc ' || i FROM generate_series(1, 50) i;
	SELECT flusso.create_index('t7-tls', '{"table": "docs"}')});
ok(FlussoTest::wait_synced($tnode, $db), 'an index syncs over https');
FlussoTest::is_consistent($tnode, $db, 't7-tls', 'over https');

set('flusso.opensearch_ca_file', '');
my $s = $reach->('without the CA', $down);
is($s->{opensearch}, 'unreachable', 'without the CA verification fails');
like($s->{opensearch_error}, qr/certificate/i, 'and says it is the certificate');

set('flusso.opensearch_ca_file', "$tlsdir/ca.crt");
set('flusso.opensearch_url', "https://127.0.0.1:$tls");
$s = $reach->('host name mismatch', sub { ($_[0]->{opensearch_error} // '') =~ /127\.0\.0\.1/ });
is($s->{opensearch}, 'unreachable', 'a host-name mismatch fails');
like($s->{opensearch_error}, qr/(subject name|host ?name).*127\.0\.0\.1|127\.0\.0\.1.*(subject|host)/i,
	'and says so');

set('flusso.opensearch_tls_verify', 'off');
$s = $reach->('verification off', $up);
is($s->{opensearch}, 'reachable', 'with verification explicitly off it connects');
is($s->{opensearch_tls_verify}, 0, 'and status says verification is off');
reset_setting('flusso.opensearch_tls_verify');

set('flusso.opensearch_url', "http://localhost:$tls");
$s = $reach->('http to an https port', $down);
is($s->{opensearch}, 'unreachable', 'no silent fallback between http and https');

set('flusso.opensearch_url', "https://localhost:$mtls");
my $before = $s->{opensearch_error};
$s = $reach->('mtls without a client certificate', sub { $down->($_[0]) && $_[0]->{opensearch_error} ne $before });
is($s->{opensearch}, 'unreachable', 'mutual TLS without a client certificate fails');
set('flusso.opensearch_client_cert', "$tlsdir/client.crt");
set('flusso.opensearch_client_key', "$tlsdir/client.key");
$s = $reach->('mtls', $up);
is($s->{opensearch}, 'reachable', 'mutual TLS works with the client certificate');
$tnode->safe_psql($db, q{UPDATE docs SET body = 'over mutual TLS' WHERE id = 5});
ok(FlussoTest::wait_synced($tnode, $db), 'and syncs');
is(FlussoTest::os_doc('t7-tls', 5)->{body}, 'over mutual TLS', 'the change arrived');
$tnode->stop;
system("$root/test/tls/tls.sh", 'stop', '--dir', $tlsdir);

# --- the worker's role -------------------------------------------------------------------
my $rnode = FlussoTest::new_node('role', database => $db, 'flusso.role' => "'flusso_reader'");
$rnode->safe_psql($db, q{CREATE ROLE flusso_reader;
	CREATE TABLE open_t (id int PRIMARY KEY, v text); INSERT INTO open_t VALUES (1, 'a');
	CREATE TABLE closed_t (id int PRIMARY KEY, v text); INSERT INTO closed_t VALUES (1, 'b');
	GRANT SELECT ON open_t TO flusso_reader;
	SELECT flusso.create_index('t7-open', '{"table": "open_t"}')});
# create_index checks the role at once (#14.18) ...
my (undef, undef, $create_err) = $rnode->psql($db, q{SELECT flusso.create_index('t7-closed', '{"table": "closed_t"}')});
like($create_err, qr/role "flusso_reader" has no SELECT on table public.closed_t/, 'create_index refuses a table the role cannot read');
# ... and the worker when a grant goes after the index was made
$rnode->safe_psql($db, q{GRANT SELECT ON closed_t TO flusso_reader;
	SELECT flusso.create_index('t7-closed', '{"table": "closed_t"}');
	REVOKE SELECT ON closed_t FROM flusso_reader;
	INSERT INTO closed_t VALUES (2, 'c')});
ok(FlussoTest::wait_for(sub {
			$rnode->safe_psql($db, q{SELECT state FROM flusso.index_status WHERE name = 't7-closed'}) eq 'stopped'
		}, 'stopped'), 'an index on a table the role cannot read stops');
like($rnode->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't7-closed'}),
	qr/role "flusso_reader" has no SELECT on table public.closed_t/, 'with an error naming the table');
ok(FlussoTest::wait_for(sub {
			$rnode->safe_psql($db, q{SELECT state FROM flusso.index_status WHERE name = 't7-open'}) eq 'seeded'
		}, 'seeded'), 'the others sync');
my $restarts = () = slurp_file($rnode->logfile) =~ /exited; restarting/g;
is($restarts, 0, 'no crash loop');
$rnode->safe_psql($db, q{GRANT SELECT ON closed_t TO flusso_reader; SELECT flusso.resume('t7-closed')});
ok(FlussoTest::wait_synced($rnode, $db), 'after GRANT and resume it syncs');
FlussoTest::is_consistent($rnode, $db, 't7-closed', 'after the grant');
$rnode->stop;

done_testing();
