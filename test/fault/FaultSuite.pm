# The fault suite's common parts: a node with the benchmark dataset and
# two indexes (users, with children, grandchildren and a link table; and a
# canary), a live pgbench load that survives server restarts, the canary
# sampler (test/fault/sampler.py), and the verdict that every scenario
# repetition ends with:
#
#   * flusso.wait_synced(), then test/consistency.pl on every index:
#     zero missing, zero stale, zero extra documents;
#   * the slot was never confirmed past what OpenSearch acknowledged
#     (the sampler's checks);
#   * database writes never failed, and their worst latency during the
#     outage windows;
#   * no server process died of anything but the kills the scenario did.
#
# Each verdict is appended as a JSON line to $FLUSSO_FAULT_RESULTS (for
# test/fault/report.pl and TESTING.md).  FLUSSO_FAULT_MODE=full runs each
# scenario as many times as TESTING.md's table says; the default, short,
# once.
package FaultSuite;

use strict;
use warnings;
use FlussoTest;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

our $ROOT = $ENV{FLUSSO_ROOT};
our $MODE = $ENV{FLUSSO_FAULT_MODE} // 'short';
our $RESULTS = $ENV{FLUSSO_FAULT_RESULTS} // "$ENV{TESTDIR}/fault-results.jsonl";
our $LAUNCHER = "$ROOT/test/opensearch/opensearch.sh";
our $PROXY = "$ROOT/test/faultproxy/faultproxy.sh";
my $json = JSON::PP->new->canonical;

my %FULL = (
	worker_kill => 20, pg_restart => 10, os_kill => 10, proxy_status => 5,
	proxy_items => 5, proxy_drop => 10, os_freeze => 5, three_nodes => 5,
	flood_stage => 3, ddl => 1, restart_backfill => 5, restart_reindex => 5);

# How many repetitions of a scenario this run makes.
sub reps
{
	my ($scenario) = @_;
	die "unknown scenario $scenario" unless $FULL{$scenario};
	return $MODE eq 'full' ? $FULL{$scenario} : 1;
}

# A node syncing the dataset: $s->{node}, {db}, {prefix}, {os} (the URLs
# OpenSearch is read at), {indexes}.
#   users => N (dataset size), url => what flusso talks to (default the
#   shared OpenSearch), os => direct URL(s) for checks, replicas => 1,
#   settings => {...}
sub setup
{
	my (%o) = @_;
	my $name = $o{name};
	my $prefix = $o{prefix};
	my $os = $o{os} // $FlussoTest::OS_URL;
	my $s = bless {
		name => $name, prefix => $prefix, db => 'app', os => $os,
		users => $o{users} // 2000, dir => "$ENV{TESTDIR}/$name",
		kills => 0, log_offset => 0,
	}, __PACKAGE__;
	mkdir $s->{dir};
	$s->os_call(sub { FlussoTest::os_clean("$prefix-*") });
	$s->{node} = FlussoTest::new_node($name, database => $s->{db},
		'flusso.opensearch_url' => "'" . ($o{url} // $os) . "'",
		'flusso.request_timeout' => "'5s'",
		'flusso.retry_max_interval' => "'2s'",
		'log_min_messages' => 'log',
		%{ $o{settings} // {} });
	my $node = $s->{node};
	$node->command_ok(['psql', '-X', '-q', '-v', "n=$s->{users}", '-d', $s->{db},
		'-f', "$ROOT/test/bench/dataset.sql"], "$name: dataset of $s->{users} users");
	$node->command_ok(['psql', '-X', '-q', '-d', $s->{db}, '-f', "$ROOT/test/load_step.sql"],
		"$name: load function");
	($s->{nusers}, $s->{norders}) = split /\|/, $node->safe_psql($s->{db},
		q{SELECT (SELECT max(id) FROM users), (SELECT max(id) FROM orders)});
	$node->safe_psql($s->{db}, q{CREATE TABLE fault_canary (id int PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO fault_canary VALUES (1, 0)});
	my $def = $json->decode(slurp_file("$ROOT/test/bench/users_index.json"));
	$def->{opensearch} = { settings => { number_of_replicas => $o{replicas} } } if $o{replicas};
	my $canary = { table => 'fault_canary' };
	$canary->{opensearch} = $def->{opensearch} if $o{replicas};
	$s->create_index("$prefix-users", $def);
	$s->create_index("$prefix-canary", $canary);
	ok(FlussoTest::wait_synced($node, $s->{db}, '300 s'), "$name: backfilled");
	return $s;
}

sub create_index
{
	my ($s, $index, $def) = @_;
	my $text = ref $def ? $json->encode($def) : $def;
	$s->{node}->safe_psql($s->{db}, "SELECT flusso.create_index('$index', \$\$$text\$\$)");
	$s->{indexes}{$index} = 1;
}

# Run code with FlussoTest's OpenSearch URL pointing at this scenario's.
sub os_call
{
	my ($s, $code) = @_;
	local $FlussoTest::OS_URL = (split /,/, $s->{os})[0];
	return $code->();
}

sub psql { my ($s, $sql) = @_; return $s->{node}->safe_psql($s->{db}, $sql) }

sub worker_pid { my ($s) = @_; return FlussoTest::worker_pid($s->{node}, $s->{db}) }

# kill -9 the sync worker; true once a new one runs.
sub kill_worker
{
	my ($s) = @_;
	my $pid = $s->worker_pid;
	return 0 unless $pid;
	kill 'KILL', $pid;
	$s->{kills}++;
	return FlussoTest::wait_for(sub { my $p = $s->worker_pid; $p ne '' && $p ne $pid }, 'worker back', 60);
}

# The load: pgbench at a fixed rate, started again after a server restart,
# for $seconds; every transaction's latency is logged.
sub start_load
{
	my ($s, $seconds, $rate) = @_;
	$rate //= 100;
	my $node = $s->{node};
	my $logs = "$s->{dir}/load." . time;
	mkdir $logs;
	$s->{load_logs} = $logs;
	my $pgbench = join ' ', 'pgbench', '-n', '-h', $node->host, '-p', $node->port,
	  '-c', 2, '-j', 1, '-R', $rate, '--max-tries=20', '-l', "--log-prefix=$logs/tx",
	  '-D', "nusers=$s->{nusers}", '-D', "norders=$s->{norders}",
	  '-f', "$ROOT/test/fault/step.pgbench", $s->{db};
	my $script = qq{end=\$((SECONDS+$seconds)); n=0; while [ \$SECONDS -lt \$end ]; do }
	  . qq{n=\$((n+1)); $pgbench -T \$((end-SECONDS)) >>$logs/pgbench.out 2>&1 || sleep 0.3; done};
	$s->{load} = IPC::Run::start(['bash', '-c', $script]);
	$s->{load_started} = time;
	return $s->{load};
}

sub wait_load
{
	my ($s) = @_;
	$s->{load}->finish if $s->{load};
	delete $s->{load};
}

# The canary sampler, against the slot and OpenSearch directly.
sub start_sampler
{
	my ($s) = @_;
	my $node = $s->{node};
	$s->{samples} = "$s->{dir}/samples." . time . ".jsonl";
	my $dsn = "host=" . $node->host . " port=" . $node->port . " dbname=$s->{db} user=" . ($ENV{USER} // 'postgres');
	$s->{sampler} = IPC::Run::start(['/usr/bin/python3', "$ROOT/test/fault/sampler.py",
		'--dsn', $dsn, '--os-url', $s->{os}, '--index', "$s->{prefix}-canary",
		'--out', $s->{samples}], '>', "$s->{dir}/sampler.out", '2>&1');
}

sub stop_sampler
{
	my ($s) = @_;
	return { checks => 0, violations => 0 } unless $s->{sampler};
	$s->{sampler}->signal('TERM');
	$s->{sampler}->finish;
	delete $s->{sampler};
	my @lines = split /\n/, slurp_file($s->{samples});
	my $summary = eval { $json->decode($lines[-1])->{summary} } // { checks => 0, violations => -1 };
	$summary->{first_violation} = (grep { /"ok":false/ } @lines)[0];
	return $summary;
}

# Transactions of the load (pgbench -l logs): count, failures, and the
# worst latency of those that overlapped one of the windows.
sub load_figures
{
	my ($s, @windows) = @_;
	my %f = (transactions => 0, failed => 0, worst_ms => 0, worst_outage_ms => 0);
	for my $file (glob "$s->{load_logs}/tx*")
	{
		for (split /\n/, slurp_file($file))
		{
			my ($client, $no, $lat, $script, $epoch, $us, $lag) = split ' ';
			next unless defined $us;
			$f{transactions}++;
			if ($lat !~ /^\d+$/)
			{
				$f{failed}++ if $lat eq 'failed';
				next;
			}
			my $end = $epoch + $us / 1e6;
			my $ms = ($lat - ($lag // 0)) / 1000;	# without the rate limiter's lag
			$f{worst_ms} = $ms if $ms > $f{worst_ms};
			for my $w (@windows)
			{
				$f{worst_outage_ms} = $ms
				  if $end >= $w->[0] && $end - $ms / 1000 <= $w->[1] && $ms > $f{worst_outage_ms};
			}
		}
	}
	my $out = -f "$s->{load_logs}/pgbench.out" ? slurp_file("$s->{load_logs}/pgbench.out") : '';
	$f{failed} += () = $out =~ /client \d+ aborted/g;
	$f{$_} = sprintf('%.1f', $f{$_}) + 0 for qw(worst_ms worst_outage_ms);
	return \%f;
}

# Server processes that died since the last verdict: kills by signal 9 are
# the scenario's own; anything else is a defect.
sub deaths
{
	my ($s) = @_;
	my $log = slurp_file($s->{node}->logfile);
	my $new = substr($log, $s->{log_offset});
	$s->{log_offset} = length $log;
	my @bad = grep { /terminated by signal (?!9:)|PANIC:|TRAP:|was terminated by exception/ } split /\n/, $new;
	return @bad;
}

# The end of one repetition.
sub verdict
{
	my ($s, $scenario, $rep, %o) = @_;
	my $what = "$scenario #$rep";
	$s->wait_load;
	my $node = $s->{node};
	my $synced = FlussoTest::wait_synced($node, $s->{db}, $o{sync_timeout} // '300 s');
	ok($synced, "$what: wait_synced");
	diag($s->psql(q{SELECT name, state, last_error FROM flusso.index_status})) unless $synced;
	my $canary = $s->stop_sampler;
	my %r = (scenario => $scenario, rep => $rep, mode => $MODE, documents => 0,
		missing => 0, stale => 0, extra => 0);
	for my $index (sort keys %{ $s->{indexes} })
	{
		my $c = $s->os_call(sub { FlussoTest::consistency($node, $s->{db}, $index) });
		my $clean = defined $c->{missing} && $c->{missing} == 0 && $c->{stale} == 0 && $c->{extra} == 0;
		ok($clean, "$what: $index consistent (" . ($c->{expected} // '?') . ' documents)')
		  or diag($json->encode($c));
		$r{documents} += $c->{expected} // 0;
		$r{$_} += ($c->{$_} // 0) < 0 ? 1 : ($c->{$_} // 0) for qw(missing stale extra);
	}
	if ($s->{samples})
	{
		cmp_ok($canary->{checks}, '>', 0, "$what: the canary was checked");
		is($canary->{violations}, 0, "$what: the slot was never confirmed past what OpenSearch acknowledged")
		  or diag($canary->{first_violation} // '');
	}
	my $load = $s->load_figures(@{ $o{windows} // [] });
	is($load->{failed}, 0, "$what: no database write failed") unless $o{server_restarts};
	cmp_ok($load->{transactions}, '>', 0, "$what: the load ran");
	my @deaths = $s->deaths;
	is(scalar(@deaths), 0, "$what: no server process crashed") or diag(join "\n", @deaths);
	%r = (%r, %$load,
		canary_checks => $canary->{checks}, canary_violations => $canary->{violations},
		crashes => scalar(@deaths), outage_s => $o{outage_s}, note => $o{note});
	open(my $fh, '>>', $RESULTS) or die "cannot append to $RESULTS: $!";
	print $fh $json->encode(\%r), "\n";
	close $fh;
	return \%r;
}

sub teardown
{
	my ($s) = @_;
	$s->wait_load;
	$s->stop_sampler if $s->{sampler};
	$s->{node}->stop('fast');
}

# A pause of a random length in [$from, $to) seconds.
sub pause
{
	my ($from, $to) = @_;
	usleep(int(1e6 * ($from + rand($to - $from))));
}

1;
