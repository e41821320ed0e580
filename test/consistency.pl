#!/usr/bin/env perl
# flusso consistency checker: compares every document of an index in
# OpenSearch with the document flusso builds for it from PostgreSQL now,
# and reports missing, stale and extra documents.
#
#   test/consistency.pl --url http://127.0.0.1:9200 --index users [--dbname app]
#                       [--host H] [--port P] [--user U] [--json] [--show 5]
#
# PostgreSQL is reached with psql (PGHOST, PGPORT, ... or the options);
# the documents come from flusso.documents(index), the ones in OpenSearch
# from a scroll over the index's alias after a refresh.  Exit status 0 when
# both sides agree, 1 when they differ, 2 on a usage or connection error.
use strict;
use warnings;
use Getopt::Long;
use HTTP::Tiny;
use JSON::PP;

my ($url, $index, $dbname, $host, $port, $user, $as_json, $show) =
  ($ENV{FLUSSO_OPENSEARCH_URL}, undef, $ENV{PGDATABASE}, undef, undef, undef, 0, 5);
GetOptions(
	'url=s' => \$url,
	'index=s' => \$index,
	'dbname=s' => \$dbname,
	'host=s' => \$host,
	'port=s' => \$port,
	'user=s' => \$user,
	'json' => \$as_json,
	'show=i' => \$show)
  or exit 2;
die "usage: $0 --url URL --index NAME [--dbname DB]\n" unless $url && $index;
$url =~ s{/+$}{};

my $json = JSON::PP->new->canonical(1)->allow_nonref;
my $http = HTTP::Tiny->new(timeout => 120, keep_alive => 1);

sub canonical { return $json->encode($_[0]) }

# --- what PostgreSQL says the documents are ---------------------------------
sub expected_documents
{
	my @cmd = ('psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1');
	push @cmd, '-h', $host if defined $host;
	push @cmd, '-p', $port if defined $port;
	push @cmd, '-U', $user if defined $user;
	push @cmd, '-d', $dbname if defined $dbname;
	(my $lit = $index) =~ s/'/''/g;
	push @cmd, '-c',
	  "SELECT json_build_object('i', id, 'd', document) FROM flusso.documents('$lit')";
	open(my $fh, '-|', @cmd) or die "cannot run psql: $!\n";
	my %docs;
	while (my $line = <$fh>)
	{
		chomp $line;
		next if $line eq '';
		my $row = $json->decode($line);
		$docs{ $row->{i} } = canonical($row->{d});
	}
	close($fh) or die "psql failed reading flusso.documents('$index')\n";
	return \%docs;
}

# --- what OpenSearch holds ---------------------------------------------------
sub os
{
	my ($method, $path, $body) = @_;
	my $res = $http->request($method, "$url$path",
		{ headers => { 'Content-Type' => 'application/json' },
		  defined $body ? (content => $json->encode($body)) : () });
	die "OpenSearch $method $path: $res->{status} $res->{content}\n"
	  unless $res->{success};
	return $json->decode($res->{content});
}

sub actual_documents
{
	my %docs;
	os('POST', "/$index/_refresh");
	my $page = os('POST', "/$index/_search?scroll=2m",
		{ size => 1000, sort => ['_doc'], query => { match_all => {} } });
	while (@{ $page->{hits}{hits} })
	{
		$docs{ $_->{_id} } = canonical($_->{_source}) for @{ $page->{hits}{hits} };
		$page = os('POST', '/_search/scroll', { scroll => '2m', scroll_id => $page->{_scroll_id} });
	}
	eval { os('DELETE', '/_search/scroll', { scroll_id => $page->{_scroll_id} }) };
	return \%docs;
}

my ($expected, $actual) = eval { (expected_documents(), actual_documents()) };
if ($@)
{
	print STDERR "consistency check failed to run: $@";
	exit 2;
}

my (@missing, @stale, @extra);
for my $id (sort keys %$expected)
{
	if (!exists $actual->{$id}) { push @missing, $id }
	elsif ($actual->{$id} ne $expected->{$id}) { push @stale, $id }
}
for my $id (sort keys %$actual)
{
	push @extra, $id unless exists $expected->{$id};
}

my %report = (
	index => $index,
	expected => scalar(keys %$expected),
	actual => scalar(keys %$actual),
	missing => scalar(@missing),
	stale => scalar(@stale),
	extra => scalar(@extra),
	missing_ids => [ @missing[ 0 .. ($#missing < $show - 1 ? $#missing : $show - 1) ] ],
	stale_ids => [ @stale[ 0 .. ($#stale < $show - 1 ? $#stale : $show - 1) ] ],
	extra_ids => [ @extra[ 0 .. ($#extra < $show - 1 ? $#extra : $show - 1) ] ]);

if ($as_json)
{
	print $json->encode(\%report), "\n";
}
else
{
	printf "index %s: %d documents expected, %d in OpenSearch; missing %d, stale %d, extra %d\n",
	  $index, $report{expected}, $report{actual}, $report{missing}, $report{stale}, $report{extra};
	for my $kind (qw(missing stale extra))
	{
		my @ids = @{ $report{"${kind}_ids"} };
		print "  $kind: @ids\n" if @ids;
	}
	if (@stale)
	{
		my $id = $stale[0];
		print "  first stale document $id\n    expected: $expected->{$id}\n    actual:   $actual->{$id}\n";
	}
}
exit(@missing || @stale || @extra ? 1 : 0);
