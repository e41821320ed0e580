# Helpers shared by flusso's Perl TAP tests (PostgreSQL::Test::Cluster).
#
#   my $node = FlussoTest::new_node('main', database => 'app');
#   FlussoTest::wait_for(sub { ... }, 'what we wait for');
#   my ($code, $json) = FlussoTest::os_request('GET', '/_cat/indices');
#
# The OpenSearch URL comes from FLUSSO_OPENSEARCH_URL, set by test/check.sh.
package FlussoTest;

use strict;
use warnings;
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our $OS_URL = $ENV{FLUSSO_OPENSEARCH_URL} // '';
my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 1);
my $json = JSON::PP->new->canonical->allow_nonref;

# A started cluster with flusso preloaded; extra settings as key => value.
sub new_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	my $database = delete $opt{database} // 'flusso_test';
	my $preload = delete $opt{preload} // 1;
	my $create = delete $opt{create_extension} // 1;
	my %settings = (
		'flusso.opensearch_url' => "'$OS_URL'",
		'flusso.database' => "'$database'",
		'flusso.lag_poll_interval' => "'1s'",
		%opt);
	$node->init(allows_streaming => 'logical');
	my $conf = "max_worker_processes = 16\nmax_replication_slots = 10\nrestart_after_crash = on\n";
	$conf .= "shared_preload_libraries = 'flusso'\n" if $preload;
	$conf .= "$_ = $settings{$_}\n" for sort keys %settings;
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	if ($create && $preload)
	{
		$node->safe_psql('postgres', qq{CREATE DATABASE "$database"})
		  unless $database eq 'postgres';
		$node->safe_psql($database, 'CREATE EXTENSION flusso');
	}
	return $node;
}

# Poll $cond every 50 ms until it returns true or $timeout seconds pass.
sub wait_for
{
	my ($cond, $what, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		my $ok = eval { $cond->() };
		return 1 if $ok;
		usleep(50_000);
	}
	diag("timed out after ${timeout}s waiting for: $what");
	return 0;
}

# One row of flusso.status, as a hash.
sub status
{
	my ($node, $database) = @_;
	$database //= 'flusso_test';
	my $out = $node->safe_psql($database,
		q{SELECT row_to_json(s) FROM flusso.status s WHERE database = current_database()});
	return $out eq '' ? {} : $json->decode($out);
}

sub worker_pid
{
	my ($node, $database) = @_;
	$database //= 'flusso_test';
	return $node->safe_psql('postgres',
		qq{SELECT pid FROM pg_stat_activity WHERE backend_type = 'flusso sync' AND datname = '$database'});
}

# An HTTP request to OpenSearch; returns (status, decoded body or text).
sub os_request
{
	my ($method, $path, $body, $url) = @_;
	my %args = (headers => { 'Content-Type' => 'application/json' });
	if (defined $body)
	{
		$args{content} = ref $body ? $json->encode($body) : $body;
		$args{headers}{'Content-Type'} = 'application/x-ndjson' unless ref $body;
	}
	my $res = $http->request($method, ($url // $OS_URL) . $path, \%args);
	my $content = $res->{content} // '';
	my $decoded = eval { $json->decode($content) } // $content;
	return ($res->{status}, $decoded);
}

# Lines of the node's server log that match a regex.
sub log_lines
{
	my ($node, $re) = @_;
	return grep { /$re/ } split /\n/, slurp_file($node->logfile);
}


# Run the consistency checker for an index; returns its report (a hash).
sub consistency
{
	my ($node, $database, $index) = @_;
	my $root = $ENV{FLUSSO_ROOT};
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGUSER} = $ENV{USER} // 'postgres';
	my $out = `$root/test/consistency.pl --url $OS_URL --index $index --dbname $database --json 2>&1`;
	my $report = eval { $json->decode($out) };
	return $report // { error => $out, missing => -1, stale => -1, extra => -1 };
}

# Assert that an index matches PostgreSQL exactly (0 missing, stale, extra).
sub is_consistent
{
	my ($node, $database, $index, $what) = @_;
	my $r = consistency($node, $database, $index);
	my $ok = Test::More::ok(
		defined $r->{missing} && $r->{missing} == 0 && $r->{stale} == 0 && $r->{extra} == 0,
		"$what: $index consistent (" . ($r->{expected} // '?') . " documents)");
	Test::More::diag(JSON::PP->new->canonical->encode($r)) unless $ok;
	return $ok;
}

# flusso.wait_synced() in the given database, true or false.
sub wait_synced
{
	my ($node, $database, $timeout) = @_;
	$timeout //= '60 s';
	return $node->safe_psql($database, "SELECT flusso.wait_synced('$timeout')") eq 't';
}

# One OpenSearch document's _source (realtime GET through the alias), or undef.
sub os_doc
{
	my ($index, $id) = @_;
	my ($code, $body) = os_request('GET', "/$index/_doc/$id");
	return $code == 200 ? $body->{_source} : undef;
}

# Remove indexes left over from an earlier run of a test in this OpenSearch,
# one by one: Elasticsearch refuses a wildcard DELETE (action.destructive_requires_name).
sub os_clean
{
	my ($pattern) = @_;
	my ($code, $found) = os_request('GET', "/$pattern?expand_wildcards=all");
	return unless $code == 200 && ref $found eq 'HASH';
	os_request('DELETE', "/$_") for sort keys %$found;
}

# The engine under test: (engine, version), e.g. ('elasticsearch', '8.17.0'),
# as opensearch.sh recorded it in its directory, else from FLUSSO_ENGINE.
sub engine
{
	my $spec = $ENV{FLUSSO_ENGINE} || 'opensearch';
	if ($ENV{FLUSSO_OPENSEARCH_DIR} && open(my $fh, '<', "$ENV{FLUSSO_OPENSEARCH_DIR}/engine"))
	{
		chomp($spec = <$fh> // $spec);
		close $fh;
	}
	my ($name, $version) = split /:/, $spec;
	$version ||= $name eq 'elasticsearch' ? '8.17.0' : '2.19.6';
	return ($name, $version);
}

# A regular expression for "the document does not fit its mapping", on any engine.
sub parsing_exception { return qr/(?:mapper|document)_parsing_exception/ }

1;
