#!/usr/bin/env perl
# Summarizes the fault suite's results (one JSON line per repetition) as
# the Markdown table TESTING.md shows.
#   perl test/fault/report.pl /tmp/flusso-check/fault/fault-results.jsonl
use strict;
use warnings;
use JSON::PP;

my @order = qw(worker_kill pg_restart os_kill proxy_status proxy_items proxy_drop
  os_freeze three_nodes flood_stage ddl restart_backfill restart_reindex);
my %s;
while (my $line = <>)
{
	my $r = eval { decode_json($line) } or next;
	my $t = $s{ $r->{scenario} } //= { reps => 0, documents => 0, missing => 0, stale => 0, extra => 0,
		worst => 0, checks => 0, violations => 0, crashes => 0, transactions => 0, failed => 0 };
	$t->{reps}++;
	$t->{$_} += $r->{$_} // 0 for qw(documents missing stale extra crashes transactions failed);
	$t->{checks} += $r->{canary_checks} // 0;
	$t->{violations} += $r->{canary_violations} // 0;
	$t->{worst} = $r->{worst_outage_ms} if ($r->{worst_outage_ms} // 0) > $t->{worst};
}
print "| scenario | repetitions | documents checked | missing | stale | extra | slot checks | confirmed past acknowledged | transactions | failed | worst commit latency during the outage | crashes |\n";
print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
for my $name ((grep { $s{$_} } @order), (grep { my $n = $_; !grep { $_ eq $n } @order } sort keys %s))
{
	my $t = $s{$name};
	printf "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %d |\n", $name, @$t{qw(reps documents missing stale extra checks violations transactions failed)},
	  $t->{worst} ? sprintf('%.0f ms', $t->{worst}) : 'n/a', $t->{crashes};
}
