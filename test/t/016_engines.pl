# The search engine itself, on whichever engine check.sh started
# (--engine opensearch:2.19.6, opensearch:3.3.0, elasticsearch:8.17.0):
#   - detection: status and metrics name the engine and version GET / gave;
#   - vectors: pgvector's vector(n) and halfvec(n) synced as vector fields
#     of the engine (dense_vector on Elasticsearch, with a k-NN search, also
#     after a reindex; knn_vector on OpenSearch, which needs the k-NN
#     plugin); sparsevec, unsized and lists of vectors refused;
#   - refusal: an engine flusso does not support (a stand-in answering GET /
#     as Elasticsearch 7, OpenSearch 1, or as nothing it knows) gets nothing
#     but GET /, and the error says what was found and what is supported;
#     back on the real engine, everything arrives.
use strict;
use warnings;
use lib "$ENV{FLUSSO_ROOT}/test/perl";
use FlussoTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IPC::Run;

my ($engine, $version) = FlussoTest::engine();
my $db = 'engines';
FlussoTest::os_clean('t16*');
my $node = FlussoTest::new_node('engines', database => $db);
my $json = JSON::PP->new->canonical;

# --- detection -----------------------------------------------------------------
ok(FlussoTest::wait_for(sub { FlussoTest::status($node, $db)->{opensearch} eq 'reachable' }, 'reachable'),
	"$engine $version is reachable");
my $st = FlussoTest::status($node, $db);
is($st->{search_engine}, $engine, 'status: search_engine');
is($st->{search_version}, $version, 'status: search_version');
is($st->{opensearch_version}, $version, 'status: opensearch_version, as before');
like($node->safe_psql($db, 'SELECT flusso.metrics()'),
	qr/^flusso_search_engine_info\{database="$db",engine="$engine",version="\Q$version\E"\} 1$/m,
	'metrics: the engine as labels of flusso_search_engine_info');

# a plain index, synced on every engine
$node->safe_psql($db, q{
	CREATE TABLE t16_plain (id int PRIMARY KEY, name text NOT NULL);
	INSERT INTO t16_plain SELECT g, 'name ' || g FROM generate_series(1, 50) g;
	SELECT flusso.create_index('t16-plain', '{"table": "t16_plain"}');
});
ok(FlussoTest::wait_synced($node, $db), 'a plain index syncs');
FlussoTest::is_consistent($node, $db, 't16-plain', "on $engine");

# --- vectors -------------------------------------------------------------------
my $has_vector = eval { $node->safe_psql($db, 'CREATE EXTENSION vector'); 1 };
SKIP:
{
	skip 'pgvector is not installed (test/install-deps.sh installs it)', 1 unless $has_vector;

	$node->safe_psql($db, q{
		CREATE TABLE t16_docs (id int PRIMARY KEY, title text, embedding vector(3), half halfvec(3));
		INSERT INTO t16_docs VALUES
			(1, 'x', '[1,0,0]', '[1,0,0]'), (2, 'y', '[0,1,0]', '[0,1,0]'),
			(3, 'z', '[0,0,1]', '[0,0,1]'), (4, 'far', '[5,5,5]', '[5,5,5]'),
			(5, 'none', NULL, NULL);
		CREATE TABLE t16_sparse (id int PRIMARY KEY, s sparsevec(5));
		CREATE TABLE t16_unsized (id int PRIMARY KEY, v vector);
		CREATE TABLE t16_parts (id int PRIMARY KEY, doc_id int NOT NULL REFERENCES t16_docs, v vector(3));
	});

	# refused, each with what to do
	my ($ret, $out, $err) = $node->psql($db, q{SELECT flusso.create_index('t16-sparse', '{"table": "t16_sparse"}')});
	like($err, qr/ERROR:  the sparsevec at .*\(column s\) cannot be indexed/, 'sparsevec: refused');
	like($err, qr/HINT:  Index it as a dense vector with an expression .*::vector\(1000\)/,
		'sparsevec: the hint names the cast');
	($ret, $out, $err) = $node->psql($db, q{SELECT flusso.create_index('t16-sparse', '{"table": "t16_sparse", "columns": ["id", {"name": "s", "expr": "s::vector(5)"}]}')});
	is($ret, 0, 'sparsevec: accepted once cast to vector(5)') or diag($err);
	($ret, $out, $err) = $node->psql($db, q{SELECT flusso.create_index('t16-unsized', '{"table": "t16_unsized"}')});
	like($err, qr/ERROR:  the vector at .* has no dimension.*HINT:  Declare the column as vector\(n\)/s,
		'vector without a dimension: refused, with the fix');
	($ret, $out, $err) = $node->psql($db, q{SELECT flusso.create_index('t16-lists', '{"table": "t16_docs", "columns": ["id"], "children": [{"name": "parts", "type": "many", "table": "t16_parts", "value": "v"}]}')});
	like($err, qr/ERROR:  the vectors at children\[0\]\.value are not one vector per field/,
		'a list of vectors: refused');
	$node->safe_psql($db, q{SELECT flusso.drop_index('t16-sparse')});

	# documents carry vectors as arrays of numbers
	$node->safe_psql($db, q{SELECT flusso.create_index('t16-docs', '{"table": "t16_docs"}')});
	my $preview = $json->decode($node->safe_psql($db, q{SELECT flusso.preview('t16-docs', '2')}));
	is_deeply([ $preview->{embedding}, $preview->{half} ], [ [ 0, 1, 0 ], [ 0, 1, 0 ] ],
		'preview: vector and halfvec are arrays of numbers');

	my (undef, $plugins) = FlussoTest::os_request('GET', '/_cat/plugins?format=json');
	my $knn_plugin = ref $plugins eq 'ARRAY' && grep { ($_->{component} // '') =~ /knn/ } @$plugins;
	if ($engine eq 'elasticsearch' || $knn_plugin)
	{
		ok(FlussoTest::wait_synced($node, $db), 'vectors synced');
		my (undef, $map) = FlussoTest::os_request('GET', '/t16-docs/_mapping');
		my ($physical) = keys %$map;
		my $props = $map->{$physical}{mappings}{properties};
		if ($engine eq 'elasticsearch')
		{
			is_deeply([ map { [ @{ $props->{$_} }{qw(type dims similarity)} ] } qw(embedding half) ],
				[ [ 'dense_vector', 3, 'l2_norm' ], [ 'dense_vector', 3, 'l2_norm' ] ],
				'mapping: dense_vector, dims 3, l2_norm');
		}
		else
		{
			is_deeply([ map { [ @{ $props->{$_} }{qw(type dimension)} ] } qw(embedding half) ],
				[ [ 'knn_vector', 3 ], [ 'knn_vector', 3 ] ], 'mapping: knn_vector, dimension 3');
		}
		is_deeply(FlussoTest::os_doc('t16-docs', 3)->{embedding}, [ 0, 0, 1 ], 'the document has the vector');
		ok(!defined FlussoTest::os_doc('t16-docs', 5)->{embedding}, 'a NULL vector is left out (null)');
		is(knn_nearest([ 0.1, 0.9, 0.1 ]), 2, 'k-NN search: the nearest document');

		$node->safe_psql($db, q{UPDATE t16_docs SET embedding = '[0.1,0.9,0.1]' WHERE id = 3});
		ok(FlussoTest::wait_synced($node, $db), 'a changed vector synced');
		$node->safe_psql($db, q{SELECT flusso.reindex('t16-docs', wait => true)});
		my (undef, $alias) = FlussoTest::os_request('GET', '/_alias/t16-docs');
		ok(exists $alias->{'t16-docs_2'}, 'reindex: the alias points at generation 2');
		FlussoTest::os_request('POST', '/t16-docs/_refresh');
		is(knn_nearest([ 0.1, 0.9, 0.1 ]), 3, 'k-NN search after the change and the reindex');
		FlussoTest::is_consistent($node, $db, 't16-docs', 'vectors');

		# a vector of zeros: Elasticsearch's default similarity (cosine) would refuse it
		$node->safe_psql($db, q{INSERT INTO t16_docs VALUES (6, 'zero', '[0,0,0]', '[0,0,0]')});
		ok(FlussoTest::wait_synced($node, $db), 'a vector of zeros synced');
		is_deeply(FlussoTest::os_doc('t16-docs', 6)->{embedding}, [ 0, 0, 0 ], 'and indexed');
		is($node->safe_psql($db, q{SELECT count(*) FROM flusso.dead_letters WHERE index_name = 't16-docs'}), 0,
			'no dead letter');
	}
	else
	{
		# OpenSearch from Maven jars has no k-NN plugin (it is a native plugin,
		# not on Maven Central): the engine refuses the index, flusso says so
		ok(FlussoTest::wait_for(sub {
					($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't16-docs'}) // '')
					  =~ /index\.knn|knn_vector/
				}, 'the k-NN error'),
			'OpenSearch without the k-NN plugin: the index error names what is missing');
		like($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't16-docs'}),
			qr/could not create OpenSearch index "t16-docs_1".*(?:unknown setting \[index\.knn\]|No handler for type \[knn_vector\])/,
			'the engine\'s own answer');
		isnt($node->safe_psql($db, q{SELECT state FROM flusso.index_status WHERE name = 't16-docs'}), 'seeded',
			'and the index is not seeded');
	}
	$node->safe_psql($db, q{SELECT flusso.drop_index('t16-docs')});
}

# --- refusal: an engine flusso does not support ----------------------------------
my $answer = "$PostgreSQL::Test::Utils::tmp_check/t16_answer.json";
my $log = "$PostgreSQL::Test::Utils::tmp_check/t16_requests.log";
sub claim { my ($body) = @_; open my $fh, '>', $answer or die; print $fh $json->encode($body); close $fh; }
claim({ name => 'es7', version => { number => '7.17.0', build_flavor => 'default' }, tagline => 'You Know, for Search' });
my ($fake_out, $fake_err) = ('', '');
my $fake = IPC::Run::start([ 'python3', "$ENV{FLUSSO_ROOT}/test/engines/unsupported.py", $answer, $log ],
	'>', \$fake_out, '2>', \$fake_err);
FlussoTest::wait_for(sub { $fake->pump_nb; $fake_out =~ /^http/ }, 'the stand-in answers');
chomp(my $fake_url = $fake_out);

$node->safe_psql($db, qq{ALTER SYSTEM SET flusso.opensearch_url = '$fake_url'});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::status($node, $db)->{opensearch} eq 'unsupported' }, 'unsupported'),
	'Elasticsearch 7.17.0: status says unsupported');
$st = FlussoTest::status($node, $db);
my $says = qr/the search engine is Elasticsearch 7\.17\.0, which flusso does not support; flusso supports OpenSearch 2\.x and 3\.x, Elasticsearch 8\.x/;
like($st->{opensearch_error}, $says, 'opensearch_error names what was found and what is supported');
is("$st->{search_engine} $st->{search_version}", 'elasticsearch 7.17.0', 'search_engine and search_version');
is($st->{healthy}, JSON::PP::false, 'not healthy');
like($node->safe_psql($db, 'SELECT flusso.metrics()'),
	qr/^flusso_search_engine_info\{database="$db",engine="elasticsearch",version="7\.17\.0"\} 0$/m,
	'metrics: the engine info is 0');

my $synced_before = $node->safe_psql($db, q{SELECT synced_lsn FROM flusso.status WHERE database = current_database()});
$node->safe_psql($db, q{INSERT INTO t16_plain VALUES (51, 'while refused'); UPDATE t16_plain SET name = 'changed while refused' WHERE id = 1});
ok(!FlussoTest::wait_synced($node, $db, '4 s'), 'nothing is confirmed while the engine is refused');
like(FlussoTest::status($node, $db)->{last_error}, $says, 'last_error says why');
is($node->safe_psql($db, q{SELECT synced_lsn FROM flusso.status WHERE database = current_database()}),
	$synced_before, 'synced_lsn did not move');
ok(scalar(FlussoTest::log_lines($node, qr/flusso: the search engine is Elasticsearch 7\.17\.0/)) >= 1,
	'the server log says it once');

claim({ version => { distribution => 'opensearch', number => '1.3.20' } });
ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{opensearch_error} // '') =~ /OpenSearch 1\.3\.20, which flusso does not support/ },
		'OpenSearch 1'), 'OpenSearch 1.3.20: refused');
claim({ version => { distribution => 'opensearch', number => '7.10.2' } });
ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{opensearch_error} // '') =~ /compatibility\.override_main_response_version/ },
		'OpenSearch in compatibility mode'), 'OpenSearch reporting 7.10.2: refused, naming the setting');
claim({ version => { number => '8.17.0' } });
ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{opensearch_error} // '') =~ /does not say which engine it is/ },
		'an unknown engine'), 'a version without an engine: refused');
claim({ version => { number => '9.1.5', build_flavor => 'default' }, tagline => 'You Know, for Search' });
ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{opensearch_error} // '') =~ /Elasticsearch 9\.1\.5, which flusso does not support/ },
		'Elasticsearch 9'), 'Elasticsearch 9.1.5: refused (not tested here)');

my @sent = grep { $_ ne 'GET /' } split /\n/, slurp_file($log);
is_deeply(\@sent, [], 'the refused engine got nothing but GET /');

# back on the real engine: everything arrives
$node->safe_psql($db, q{ALTER SYSTEM RESET flusso.opensearch_url});
$node->reload;
ok(FlussoTest::wait_for(sub { FlussoTest::status($node, $db)->{opensearch} eq 'reachable' }, 'reachable again'),
	"back on $engine: reachable");
is(FlussoTest::status($node, $db)->{search_version}, $version, 'and detected again');
ok(FlussoTest::wait_synced($node, $db), 'what waited is synced');
is(FlussoTest::os_doc('t16-plain', 51)->{name}, 'while refused', 'the row inserted while refused arrived');
FlussoTest::is_consistent($node, $db, 't16-plain', 'after the refusal');

$fake->kill_kill;
$node->stop;
done_testing();

# The id of the document nearest to a vector, by the engine's own k-NN search.
sub knn_nearest
{
	my ($vector) = @_;
	my $query = $engine eq 'elasticsearch' ?
	  { knn => { field => 'embedding', query_vector => $vector, k => 1, num_candidates => 10 } } :
	  { size => 1, query => { knn => { embedding => { vector => $vector, k => 1 } } } };
	my ($code, $res) = FlussoTest::os_request('POST', '/t16-docs/_search', $query);
	diag($json->encode($res)) unless $code == 200;
	return $code == 200 && @{ $res->{hits}{hits} } ? $res->{hits}{hits}[0]{_id} : undef;
}
