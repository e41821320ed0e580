# Authentication to the search engine through test/authproxy (a verifying proxy in
# front of the real OpenSearch): an API key, a bearer token, AWS SigV4 for es and
# for aoss.  Each is refused first the way a wrong key, secret, region or an
# expired token is (status shows the engine's answer, nothing is confirmed, no
# document arrives), then fixed by rewriting the file and reloading, after which
# everything arrives.  Credentials rotate while rows are written; the old
# flusso.opensearch_* names keep working; no secret shows in the log, SHOW or
# pg_settings.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use JSON::PP;
use MIME::Base64 ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $root = $ENV{FLUSSO_ROOT};
my $db = 'auth';
my $index = 't17-docs';
my $json = JSON::PP->new->canonical;
FlussoTest::os_clean('t17-*');

# every secret of the test: none may show in the log, SHOW or pg_settings
my %secret = (
	key => 'Key-S3cret-0001', key2 => 'Key-S3cret-0002', wrong_key => 'Key-Wr0ng-0003',
	token => 'Bearer-S3cret-0001', token2 => 'Bearer-S3cret-0002',
	sk1 => 'Aws/S3cret+Key-0001', sk2 => 'Aws/S3cret+Key-0002', sk3 => 'Aws/S3cret+Key-0003',
	sk4 => 'Aws/S3cret+Key-0004', wrong_sk => 'Aws/Wr0ng+Key-0005',
	st1 => 'Sess10n-T0ken-0001', st2 => 'Sess10n-T0ken-0002', st3 => 'Sess10n-T0ken-0003',
	st4 => 'Sess10n-T0ken-0004');

# --- the proxy -------------------------------------------------------------------------
# Debian's botocore when the system has it (the 17/18 root: no PyPI there), else
# authproxy.sh's venv
$ENV{AUTHPROXY_PYTHON} //= '/usr/bin/python3'
  if system(q{/usr/bin/python3 -c 'import botocore.auth' 2>/dev/null}) == 0;
my $apdir = "$ENV{TESTDIR}/t17-authproxy";
my $proxy = `$root/test/authproxy/authproxy.sh start --upstream $FlussoTest::OS_URL --dir $apdir --mode bearer --token unused 2>$ENV{TESTDIR}/t17-authproxy.err`;
chomp $proxy;
ok($proxy =~ m{^http://}, "the auth proxy runs in front of OpenSearch ($proxy)") or
	BAIL_OUT('no auth proxy: ' . slurp_file("$ENV{TESTDIR}/t17-authproxy.err"));

sub proxy_config
{
	my ($config) = @_;
	my $out = `$root/test/authproxy/authproxy.sh config --dir $apdir '${\ $json->encode($config)}' 2>&1`;
	die "authproxy config: $out" if $?;
}

sub proxy_stats
{
	my $out = `$root/test/authproxy/authproxy.sh stats --dir $apdir`;
	return $json->decode($out);
}

# A file of secrets, owner-only, replaced whole (as an agent writes it).
sub write_secret
{
	my ($path, $content) = @_;
	open(my $fh, '>', "$path.tmp") or die "$path.tmp: $!";
	print $fh $content;
	close $fh;
	chmod 0600, "$path.tmp";
	rename("$path.tmp", $path) or die "rename $path: $!";
}

my $keyfile = "$ENV{TESTDIR}/t17-api-key";
my $tokenfile = "$ENV{TESTDIR}/t17-bearer-token";
my $awsfile = "$ENV{TESTDIR}/t17-aws.json";

sub aws_file
{
	my ($ak, $sk, $st, $expiration) = @_;
	my %c = (Version => 1, AccessKeyId => $ak, SecretAccessKey => $sk);
	$c{Token} = $st if $st;
	$c{Expiration} = $expiration if $expiration;
	write_secret($awsfile, $json->encode(\%c));
}

# --- the node: the old setting names of 0.4, as a postgresql.conf from the last release has them
proxy_config({ mode => 'apikey', credentials => [ { id => 'flusso-id', api_key => $secret{key} } ] });
write_secret($keyfile, "flusso-id:$secret{key}\n");
my $node = FlussoTest::new_node('auth', database => $db,
	'flusso.opensearch_url' => "'$proxy'",
	'flusso.search_api_key_file' => "'$keyfile'",
	'flusso.retry_max_interval' => "'1s'",
	'log_statement' => "'all'");
$node->safe_psql($db, qq{CREATE TABLE docs (id int PRIMARY KEY, body text);
	INSERT INTO docs SELECT i, 'doc ' || i FROM generate_series(1, 20) i;
	SELECT flusso.create_index('$index', '{"table": "docs"}')});

my $next_id = 21;

# Insert n rows; the WAL position after their commit.
sub insert_rows
{
	my ($n) = @_;
	my $from = $next_id;
	$next_id += $n;
	return $node->safe_psql($db, qq{INSERT INTO docs SELECT i, 'doc ' || i FROM generate_series($from, $next_id - 1) i;
		SELECT pg_current_wal_lsn()});
}

sub confirmed
{
	return $node->safe_psql($db, q{SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name LIKE 'flusso%'});
}

sub lsn_before
{
	my ($a, $b) = @_;
	return $node->safe_psql($db, "SELECT '$a'::pg_lsn < '$b'::pg_lsn") eq 't';
}

sub set
{
	my ($name, $value) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET $name = '$value'");
}

sub reset_setting { $node->safe_psql('postgres', "ALTER SYSTEM RESET $_[0]") }

sub reload { $node->safe_psql('postgres', 'SELECT pg_reload_conf()') }

sub synced
{
	my ($what) = @_;
	ok(FlussoTest::wait_synced($node, $db, '90 s'), "$what: synced");
	FlussoTest::is_consistent($node, $db, $index, $what);
}

# Refused: rows written now stay unconfirmed and absent while status shows the answer.
sub refused
{
	my ($what, $answer) = @_;
	my $lsn = insert_rows(5);
	my $ok = FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{opensearch_error} // '') =~ $answer },
		"$what: the answer in status", 60);
	ok($ok, "$what: flusso.status shows the engine's answer")
	  or diag(explain(FlussoTest::status($node, $db)));
	sleep 2;
	ok(lsn_before(confirmed(), $lsn), "$what: the slot is not confirmed past the refused changes");
	is(FlussoTest::os_doc($index, $next_id - 1), undef, "$what: the refused document did not arrive");
}

# --- API key ------------------------------------------------------------------------------
synced('API key as id:api_key, from a file, through the old flusso.opensearch_url');
my $stats = proxy_stats();
ok($stats->{accepted_by}{'flusso-id'}, 'the proxy accepted the API key');

write_secret($keyfile, "flusso-id:$secret{wrong_key}\n");
reload();
refused('wrong API key', qr/HTTP 401: .*unable to authenticate/);
write_secret($keyfile, MIME::Base64::encode_base64("flusso-id:$secret{key}", '') . "\n");
reload();
synced('API key fixed, given base64-encoded');

# --- conflicting methods -----------------------------------------------------------------
my ($ret, $out, $err) = $node->psql($db, "SELECT flusso.check_setting('flusso.search_bearer_token', 'x')");
is($out, 'f', 'check_setting refuses a second authentication method');
like($err, qr/flusso.search_api_key_file and flusso.search_bearer_token are both set/, 'naming both settings');
like($err, qr/HINT:  Keep one of basic authentication/, 'with a hint naming the settings');
set('flusso.search_bearer_token', $secret{token});
reload();
refused('two methods set', qr/are both set: flusso authenticates one way only/);
like(join("\n", FlussoTest::log_lines($node, qr/sends nothing to the search engine/)), qr/both set/,
	'the log says why nothing is sent');
set('flusso.search_api_key_file', '');	# it is in postgresql.conf: RESET would leave it
proxy_config({ mode => 'bearer', credentials => [ { token => $secret{token} } ] });
reload();
synced('bearer token from flusso.search_bearer_token, once the API key is reset');

# --- bearer token: expiry, renewed from the file without a reload -------------------------
write_secret($tokenfile, "$secret{token}\n");
set('flusso.search_bearer_token_file', $tokenfile);
reload();
synced('bearer token from a file');
proxy_config({ mode => 'bearer', credentials => [ { token => $secret{token}, expires => 0 }, { token => $secret{token2} } ] });
refused('expired bearer token', qr/HTTP 401: .*token expired/);
write_secret($tokenfile, "$secret{token2}\n");	# no reload: the next "expired" reads it again
synced('the token file rewritten: read again after the engine said the token expired');
reset_setting('flusso.search_bearer_token');
reset_setting('flusso.search_bearer_token_file');

# --- SigV4, es --------------------------------------------------------------------------------
my $future = '2099-01-01T00:00:00Z';
proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'es', credentials => [
	{ access_key => 'ASIAFLUSSO0001', secret_key => $secret{sk1}, session_token => $secret{st1}, expires => $future } ] });
aws_file('ASIAFLUSSO0001', $secret{sk1}, $secret{st1}, $future);
set('flusso.aws_region', 'eu-west-1');
set('flusso.aws_credentials_file', $awsfile);
reload();
synced('SigV4 for es with a session token');
ok(proxy_stats()->{accepted_by}{'ASIAFLUSSO0001'}, 'the proxy checked the signatures with botocore and accepted them');

aws_file('ASIAFLUSSO0001', $secret{wrong_sk}, $secret{st1}, $future);
reload();
refused('wrong secret key', qr/HTTP 403: .*signature we calculated does not match/);
aws_file('ASIAFLUSSO0001', $secret{sk1}, $secret{st1}, $future);
reload();
synced('secret key fixed');

set('flusso.aws_region', 'us-east-1');
reload();
refused('wrong region', qr/HTTP 403: .*scoped to a valid region, not 'us-east-1'/);
set('flusso.aws_region', 'eu-west-1');
reload();
synced('region fixed');

proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'es', credentials => [
	{ access_key => 'ASIAFLUSSO0001', secret_key => $secret{sk1}, session_token => $secret{st1}, expires => 0 },
	{ access_key => 'ASIAFLUSSO0002', secret_key => $secret{sk2}, session_token => $secret{st2}, expires => $future } ] });
refused('expired session token', qr/HTTP 403: .*security token included in the request is expired/);
aws_file('ASIAFLUSSO0002', $secret{sk2}, $secret{st2}, $future);
reload();
synced('credentials file renewed and reloaded');

# rotation while rows are written: the agent writes new credentials, then the old ones stop
proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'es', credentials => [
	{ access_key => 'ASIAFLUSSO0002', secret_key => $secret{sk2}, session_token => $secret{st2}, expires => $future },
	{ access_key => 'ASIAFLUSSO0003', secret_key => $secret{sk3}, session_token => $secret{st3}, expires => $future } ] });
for my $round (1 .. 20)
{
	insert_rows(10);
	if ($round == 7)
	{
		aws_file('ASIAFLUSSO0003', $secret{sk3}, $secret{st3}, $future);
		reload();
	}
	if ($round == 12)
	{
		proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'es', credentials => [
			{ access_key => 'ASIAFLUSSO0002', secret_key => $secret{sk2}, session_token => $secret{st2}, expires => 0 },
			{ access_key => 'ASIAFLUSSO0003', secret_key => $secret{sk3}, session_token => $secret{st3}, expires => $future },
			{ access_key => 'ASIAFLUSSO0004', secret_key => $secret{sk4}, session_token => $secret{st4}, expires => $future } ] });
	}
	if ($round == 15)
	{
		# the next key is written, and the one in use expires: no reload, the
		# "expired" answer makes flusso read the file again and retry
		aws_file('ASIAFLUSSO0004', $secret{sk4}, $secret{st4}, $future);
		proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'es', credentials => [
			{ access_key => 'ASIAFLUSSO0003', secret_key => $secret{sk3}, session_token => $secret{st3}, expires => 0 },
			{ access_key => 'ASIAFLUSSO0004', secret_key => $secret{sk4}, session_token => $secret{st4}, expires => $future } ] });
	}
	select(undef, undef, undef, 0.2);
}
synced('credentials rotated twice while rows were written (on reload, and on an expired answer)');
ok(proxy_stats()->{accepted_by}{'ASIAFLUSSO0004'}, 'the last credentials are in use');

# an Expiration in the file that has passed: read again before the next request
aws_file('ASIAFLUSSO0004', $secret{sk4}, $secret{st4}, '2000-01-01T00:00:00Z');
reload();
insert_rows(3);
synced('an Expiration in the past does not stop requests while the engine accepts them');
aws_file('ASIAFLUSSO0004', $secret{sk4}, $secret{st4}, $future);

# --- SigV4, aoss ----------------------------------------------------------------------------
proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'aoss', credentials => [
	{ access_key => 'ASIAFLUSSO0004', secret_key => $secret{sk4}, session_token => $secret{st4}, expires => $future } ] });
refused('aoss, signed for es', qr/HTTP 403: .*scoped to correct service: 'aoss'/);
set('flusso.aws_service', 'aoss');
reload();
synced('SigV4 for aoss (x-amz-content-sha256 signed)');
$stats = proxy_stats();
is($stats->{rejected_by_reason}{missing_content_sha256} // 0, 0, 'no request went without x-amz-content-sha256');

# a long-term key without a session token
proxy_config({ mode => 'sigv4', region => 'eu-west-1', service => 'aoss', credentials => [
	{ access_key => 'AKIAFLUSSO0005', secret_key => $secret{sk1} } ] });
aws_file('AKIAFLUSSO0005', $secret{sk1});
reload();
synced('SigV4 with a long-term key, no session token');

# a credentials file that cannot be used: nothing is sent, status says why
write_secret($awsfile, '{"AccessKeyId": "AKIAFLUSSO0005"}');
reload();
refused('credentials file without a secret', qr/has no AccessKeyId or no SecretAccessKey/);
aws_file('AKIAFLUSSO0005', $secret{sk1});
reload();
synced('credentials file fixed');

# --- the old names and the new ones ----------------------------------------------------------
set('flusso.search_url', 'http://127.0.0.1:9');
reload();
ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{opensearch_error} // '') =~ /127\.0\.0\.1 port 9\b/ }, 'new name wins'),
	'flusso.search_url wins over flusso.opensearch_url');
ok(FlussoTest::wait_for(sub { scalar FlussoTest::log_lines($node,
	qr/flusso.search_url and flusso.opensearch_url are set to different values; the engine-neutral name is used/) }, 'warning'),
	'and the log says both are set');
set('flusso.search_url', $proxy);
reload();
synced('both names set to the same URL');
reset_setting('flusso.search_url');
reload();

# --- what shows --------------------------------------------------------------------------------
set('flusso.search_api_key', $secret{key2});
$node->psql('postgres', qq{ALTER SYSTEM SET FLUSSO.SEARCH_API_KEY = 'Upper-$secret{key2}'});
$node->psql('postgres', qq{ALTER SYSTEM SET flusso.search_bearer_token = \$\$Dollar-$secret{token2}\$\$});
$node->psql('postgres', qq{ALTER SYSTEM SET "flusso.search_password" = 'Quoted-$secret{key2}'});
$node->psql('postgres', qq{ALTER SYSTEM SET flusso.opensearch_password = E'Escaped-$secret{key2}'});
reload();
sleep 1;
is($node->safe_psql('postgres', 'SHOW flusso.search_bearer_token'), '********', 'SHOW masks the bearer token');
is($node->safe_psql('postgres', 'SHOW flusso.search_api_key'), '********', 'and the API key');
$node->safe_psql('postgres', 'CREATE ROLE watcher LOGIN IN ROLE pg_monitor');
is($node->safe_psql('postgres', 'SHOW flusso.aws_credentials_file', extra_params => ['-U', 'watcher']), '(hidden)',
	'pg_monitor does not see the credentials file path');
my $seen = '';
for my $q ('SELECT * FROM flusso.status', 'SELECT * FROM flusso.index_status',
	q{SELECT name, setting, reset_val, boot_val FROM pg_settings WHERE name LIKE 'flusso.%'})
{
	$seen .= $node->safe_psql($db, $q) . "\n";
	$seen .= $node->safe_psql($db, $q, extra_params => ['-U', 'watcher']) . "\n";
}
my $log = slurp_file($node->logfile);
like($log, qr/ALTER SYSTEM SET FLUSSO.SEARCH_API_KEY = '\*\*\*'/, 'the statement is logged, masked');
for my $name (sort keys %secret)
{
	unlike($log, qr/\Q$secret{$name}\E/, "the server log never shows $name");
	unlike($seen, qr/\Q$secret{$name}\E/, "nor do the views and settings");
}
my $encoded = MIME::Base64::encode_base64("flusso-id:$secret{key}", '');
unlike($log, qr/\Q$encoded\E/, 'nor the API key as sent');

$node->stop;
system("$root/test/authproxy/authproxy.sh", 'stop', '--dir', $apdir);
done_testing();
