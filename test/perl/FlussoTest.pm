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
use Cwd ();
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our $OS_URL = $ENV{FLUSSO_OPENSEARCH_URL} // '';
my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 1);
my $json = JSON::PP->new->canonical->allow_nonref;

# A started cluster with flusso preloaded; extra settings as key => value.
# Options: database (default flusso_test), preload, create_extension,
# start (0: initialized and configured only), install_path (a PostgreSQL
# installation other than PATH's, such as a private copy of an older
# version: test/lib/pgprivate.sh), initdb (extra initdb arguments).
sub new_node
{
	my ($name, %opt) = @_;
	my $install_path = delete $opt{install_path};
	my $node = PostgreSQL::Test::Cluster->new($name,
		$install_path ? (install_path => $install_path) : ());
	my $database = delete $opt{database} // 'flusso_test';
	my $preload = delete $opt{preload} // 1;
	my $create = delete $opt{create_extension} // 1;
	my $start = delete $opt{start} // 1;
	my $initdb = delete $opt{initdb};
	my %settings = (
		'flusso.opensearch_url' => "'$OS_URL'",
		'flusso.database' => "'$database'",
		'flusso.lag_poll_interval' => "'1s'",
		%opt);
	$node->init(allows_streaming => 'logical', $initdb ? (extra => $initdb) : ());
	drop_unknown_settings($node) if $install_path;
	my $conf = "max_worker_processes = 16\nmax_replication_slots = 10\nrestart_after_crash = on\n";
	$conf .= "shared_preload_libraries = 'flusso'\n" if $preload;
	$conf .= "$_ = $settings{$_}\n" for sort keys %settings;
	$node->append_conf('postgresql.conf', $conf);
	return $node unless $start;
	$node->start;
	if ($create && $preload)
	{
		$node->safe_psql('postgres', qq{CREATE DATABASE "$database"})
		  unless $database eq 'postgres';
		$node->safe_psql($database, 'CREATE EXTENSION flusso');
	}
	return $node;
}

# PostgreSQL::Test::Cluster writes the settings of the version it comes with
# (18's: autovacuum_worker_slots); an older server refuses to start with a
# setting it does not know.  Remove those from an older node's configuration.
sub drop_unknown_settings
{
	my ($node) = @_;
	my %known = map { lc((split /\t/)[0]) => 1 }
	  split /\n/, `'${\ $node->install_path}/bin/postgres' --describe-config`;
	my $file = $node->data_dir . '/postgresql.conf';
	my (@kept, @dropped);
	for (split /\n/, slurp_file($file))
	{
		if (/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/ && !$known{ lc $1 }) { push @dropped, $1 }
		else { push @kept, $_ }
	}
	Test::More::note('left out for ' . $node->name . ': ' . join(', ', @dropped)) if @dropped;
	open(my $fh, '>', $file) or die "$file: $!";
	print $fh join("\n", @kept), "\n";
	close $fh;
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

# The benchmark dataset (test/bench/dataset.sql, N users) and the load
# function (test/load_step.sql) in a database; returns the highest user and
# order ids, which the load's steps pick rows by.
sub load_dataset
{
	my ($node, $database, $users) = @_;
	my $root = $ENV{FLUSSO_ROOT};
	$node->command_ok(['psql', '-X', '-q', '-v', "n=$users", '-d', $database,
		'-f', "$root/test/bench/dataset.sql"], "a dataset of $users users");
	$node->command_ok(['psql', '-X', '-q', '-d', $database, '-f', "$root/test/load_step.sql"],
		'the load function');
	return split /\|/, $node->safe_psql($database,
		q{SELECT (SELECT max(id) FROM users), (SELECT max(id) FROM orders)});
}

# A live load in the background: pgbench running test/fault/step.pgbench
# (one random change per transaction: inserts, updates, deletes,
# re-parenting) at $rate transactions a second for $seconds; its output
# goes to $log.  Returns the IPC::Run handle (finish it, or kill_kill it).
sub start_load
{
	my ($node, $database, $nusers, $norders, %o) = @_;
	my $root = $ENV{FLUSSO_ROOT};
	my $log = $o{log} // "$ENV{TESTDIR}/load." . $node->name . ".log";
	return IPC::Run::start(['pgbench', '-n', '-h', $node->host, '-p', $node->port,
		'-c', 2, '-j', 1, '-R', $o{rate} // 50, '-T', $o{seconds} // 10,
		'-D', "nusers=$nusers", '-D', "norders=$norders",
		'-f', "$root/test/fault/step.pgbench", $database], '>>', $log, '2>&1');
}

# Where an index's alias points: its generation number, or undef.
sub alias_generation
{
	my ($index) = @_;
	my ($code, $body) = os_request('GET', "/_alias/$index");
	return undef unless $code == 200 && ref $body;
	my ($physical) = keys %$body;
	return $physical && $physical =~ /_(\d+)$/ ? $1 : undef;
}

# One count through an index's alias, and the generation it came from:
# (count, generation) when the alias pointed at the same generation before
# and after the search, (count, undef) when it moved meanwhile, () when the
# search failed.  For tests that search while an index is rebuilt.
sub count_through_alias
{
	my ($index) = @_;
	my $before = alias_generation($index) // 0;
	my ($code, $body) = os_request('GET', "/$index/_count");
	my $after = alias_generation($index) // 0;
	return () unless $code == 200 && ref $body;
	return ($body->{count}, $before == $after ? $after : undef);
}

# The major version of the PostgreSQL the tests run on (check.sh --pg N).
sub pg_major
{
	return $ENV{FLUSSO_PG_MAJOR} // 15;
}

# pg_upgrade from $old to $new (both stopped), as the PostgreSQL under test
# runs it: each side's binaries from its own installation (a private copy
# for an older version), so each loads its own flusso.so.  Runs in
# TESTDIR, which pg_upgrade may write to.  Returns pg_upgrade's exit
# status, its output and the path of its log directory.
sub pg_upgrade
{
	my ($old, $new, @extra) = @_;
	my $bindir = sub {
		my ($node) = @_;
		return $node->install_path . '/bin' if $node->install_path;
		for my $dir (split /:/, $ENV{PATH})
		{
			return $dir if -x "$dir/postgres";
		}
		die 'no postgres in PATH';
	};
	my @cmd = ('pg_upgrade', '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir->($old), '-B', $bindir->($new),
		'-s', $new->host, '-p', $old->port, '-P', $new->port, @extra);
	my $cwd = Cwd::getcwd();
	chdir $ENV{TESTDIR} or die "chdir $ENV{TESTDIR}: $!";
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
	chdir $cwd;
	Test::More::note(join(' ', @cmd) . "\n$stdout$stderr");
	return ($ok, "$stdout$stderr", $new->data_dir . '/pg_upgrade_output.d');
}

# The old cluster of a pg_upgrade test: PostgreSQL $version from the
# private installation $install (this tree's flusso: test/lib/pgprivate.sh),
# the data set of load_dataset() in $database and two indexes backfilled,
# "$prefix-users" (test/bench/users_index.json) and "$prefix-companies".
# Returns the node and the highest user and order ids.
sub upgrade_source
{
	my ($name, $version, $install, $database, $prefix) = @_;
	my $node = new_node($name, database => $database, install_path => $install,
		'flusso.batch_size' => '100');
	like($node->safe_psql('postgres', 'SELECT version()'), qr/^PostgreSQL $version\./,
		"the old cluster is PostgreSQL $version");
	is($node->safe_psql('postgres', q{SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'}),
		"$install/lib", "and loads this tree's flusso.so");
	my ($nusers, $norders) = load_dataset($node, $database, 500);
	my $def = slurp_file("$ENV{FLUSSO_ROOT}/test/bench/users_index.json");
	$node->safe_psql($database, "SELECT flusso.create_index('$prefix-users', \$\$$def\$\$)");
	$node->safe_psql($database, qq{SELECT flusso.create_index('$prefix-companies', '{"table": "companies"}')});
	ok(wait_synced($node, $database), "backfilled on $version");
	return ($node, $nusers, $norders);
}

# pg_upgrade from $old to $new as a test (--retain, and @extra): passes
# when it succeeds and its kept server log shows no flusso worker in the
# servers it started (-b).  Returns whether pg_upgrade succeeded; on a
# failure its logs go to the test's output.
sub pg_upgrade_ok
{
	my ($old, $new, @extra) = @_;
	my ($major_old, $major_new) = map { $_->pg_version->major } $old, $new;
	my ($ok, $out, $logs) = pg_upgrade($old, $new, '--retain', @extra);
	ok($ok, "pg_upgrade from $major_old to $major_new") or diag($out);
	unless ($ok)
	{
		diag(`tail -n 30 $logs/*/log/*.log 2>/dev/null`);
		return 0;
	}
	my $server_log = `cat $logs/*/log/pg_upgrade_server.log 2>/dev/null`;
	like($server_log, qr/database system is ready to accept connections/, "pg_upgrade's server log is kept");
	unlike($server_log, qr/background worker "flusso|flusso extension found in database|flusso is syncing/,
		'no flusso worker ran in the servers pg_upgrade started');
	return 1;
}

# PostgreSQL 15.20 and 17.12 keep an attribute option pg_attver on every
# column; 18.6 (released before them) does not know it, and its pg_dump
# carries it into the new cluster, where restoring the schema fails
# ("unrecognized parameter "pg_attver""), whatever the tables are.  When the
# old server has it and the new one refuses it, it is removed from the old
# cluster's user columns (PGVERSIONS.md).  $new must be stopped; $old running.
sub strip_attver
{
	my ($old, $new, @databases) = @_;
	my $has = $old->safe_psql('postgres',
		q{SELECT count(*) > 0 FROM pg_attribute WHERE attoptions::text LIKE '%pg_attver=%'});
	return 0 unless $has eq 't';
	$new->start;
	my ($ret) = $new->psql('postgres',
		q{CREATE TEMP TABLE attver_probe (a int); ALTER TABLE attver_probe ALTER a SET (pg_attver = 1)});
	$new->stop;
	return 0 if $ret == 0;
	for my $database (@databases)
	{
		$old->safe_psql($database, q{
			SET allow_system_table_mods = on;
			UPDATE pg_catalog.pg_attribute
			   SET attoptions = NULLIF(ARRAY(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg_attver=%'), '{}')
			 WHERE attrelid >= 16384 AND attoptions::text LIKE '%pg_attver=%'});
	}
	return 1;
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
	$version =~ s/\+.*// if defined $version;	# opensearch:2.19.1+knn: the engine with a plugin
	$version ||= $name eq 'elasticsearch' ? '8.17.0' : '2.19.6';
	return ($name, $version);
}

# A regular expression for "the document does not fit its mapping", on any engine.
sub parsing_exception { return qr/(?:mapper|document)_parsing_exception/ }

1;
