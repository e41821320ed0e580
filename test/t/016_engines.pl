# The search engine itself, on whichever engine check.sh started
# (--engine opensearch:2.19.6, opensearch:3.3.0, elasticsearch:8.17.0):
#   - detection: status and metrics name the engine and version GET / gave;
#   - vectors: pgvector's vector(n) and halfvec(n) synced as vector fields
#     of the engine (dense_vector on Elasticsearch, with a k-NN search, also
#     after a change and a reindex; knn_vector on OpenSearch, which needs the
#     k-NN plugin); sparsevec, unsized and lists of vectors refused; a
#     knn_vector method chosen in the definition: translated to dense_vector
#     on Elasticsearch, or refused naming its definition path;
#   - refusal: an engine flusso does not support (a stand-in answering GET /
#     as Elasticsearch 7, OpenSearch 1, or as nothing it knows) gets nothing
#     but GET /, and the error says what was found and what is supported;
#     back on the real engine, everything arrives;
#   - k-NN on OpenSearch: when check.sh's engine is an OpenSearch without the
#     k-NN plugin, a node of OpenSearch 2.19.1 with the plugin (Maven Central's
#     opensearch-knn 2.19.1.0) is started beside it, flusso is pointed at it,
#     and the vectors are synced and searched there with the definition's
#     method (the lucene engine: the plugin's native faiss and nmslib
#     libraries are not on Maven Central).
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
my $knn_plugin;    # the engine has the k-NN plugin
# the k-NN method a definition chooses: HNSW built by Lucene, which runs in the JVM (the k-NN plugin's native
# faiss and nmslib engines, OpenSearch's defaults, need libraries that are not on Maven Central)
my $lucene_hnsw = { name => 'hnsw', engine => 'lucene', space_type => 'l2', parameters => { m => 16, ef_construction => 100 } };
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

	# documents carry vectors as arrays of numbers; on OpenSearch with the plugin (check.sh --engine
	# opensearch:2.19.1+knn), mapped with the lucene method: the test node has no native engine
	my (undef, $plugins) = FlussoTest::os_request('GET', '/_cat/plugins?format=json');
	$knn_plugin = ref $plugins eq 'ARRAY' && grep { ($_->{component} // '') =~ /knn/ } @$plugins;
	$node->safe_psql($db, qq{SELECT flusso.create_index('t16-docs', '${\ vector_definition($knn_plugin ? $lucene_hnsw : undef)}')});
	my $preview = $json->decode($node->safe_psql($db, q{SELECT flusso.preview('t16-docs', '2')}));
	is_deeply([ $preview->{embedding}, $preview->{half} ], [ [ 0, 1, 0 ], [ 0, 1, 0 ] ],
		'preview: vector and halfvec are arrays of numbers');

	if ($engine eq 'elasticsearch' || $knn_plugin)
	{
		vectors_synced_and_searched($engine eq 'elasticsearch' ?
			  ([ 'dense_vector', 3, 'l2_norm' ]) : ([ 'knn_vector', 3, 'lucene' ], $lucene_hnsw));
	}
	else
	{
		# OpenSearch from Maven jars has no k-NN plugin unless started with
		# --plugins knn: the engine refuses the index, flusso says so
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
		$node->safe_psql($db, q{SELECT flusso.drop_index('t16-docs')});
	}
	knn_method_on_elasticsearch() if $engine eq 'elasticsearch';
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

# --- k-NN on OpenSearch with the k-NN plugin, in a node of its own -----------------
SKIP:
{
	skip 'pgvector is not installed', 1 unless $has_vector;
	skip "$engine $version has k-NN search itself (tested above)", 1 if $engine eq 'elasticsearch' || $knn_plugin;
	skip "OpenSearch with the k-NN plugin cannot be had: $ENV{FLUSSO_KNN_UNAVAILABLE}", 1
	  if $ENV{FLUSSO_KNN_UNAVAILABLE};
	my $knn_dir = "$PostgreSQL::Test::Utils::tmp_check/knn-opensearch";
	my ($knn_url, $start_err) = ('', '');
	my $started = IPC::Run::run([ "$ENV{FLUSSO_ROOT}/test/opensearch/opensearch.sh", 'start', '--plugins', 'knn',
			'--dir', $knn_dir ], '<', \undef, '>', \$knn_url, '2>', \$start_err);
	chomp $knn_url;
	skip "OpenSearch with the k-NN plugin cannot be had: the plugin could not be downloaded ($start_err)", 1
	  if !$started && $start_err =~ /could not download the k-NN plugin|maven build of .* failed/;
	ok($started && $knn_url =~ m{^http://}, "OpenSearch 2.19.1 with the k-NN plugin started: $knn_url")
	  or diag($start_err);
	skip 'no k-NN node', 1 unless $started;

	local $FlussoTest::OS_URL = $knn_url;
	$node->safe_psql($db, qq{ALTER SYSTEM SET flusso.opensearch_url = '$knn_url'});
	$node->reload;
	ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{search_version} // '') eq '2.19.1' }, 'the k-NN node'),
		'flusso detects OpenSearch 2.19.1 behind the new URL');
	vectors_synced_and_searched([ 'knn_vector', 3, 'lucene' ], $lucene_hnsw);

	$node->safe_psql($db, q{ALTER SYSTEM RESET flusso.opensearch_url});
	$node->reload;
	ok(FlussoTest::wait_for(sub { (FlussoTest::status($node, $db)->{search_version} // '') eq $version }, 'back'),
		"back on $engine $version");
	system("$ENV{FLUSSO_ROOT}/test/opensearch/opensearch.sh", 'stop', '--dir', $knn_dir) == 0
	  or diag('could not stop the k-NN node');
}

$node->stop;
done_testing();

# The vector index t16-docs synced and searched on the engine at $FlussoTest::OS_URL: the mapping (type, dimension
# or dims, and similarity on Elasticsearch or the method's engine on OpenSearch), the documents, the two nearest by
# the engine's k-NN search before and after a change, and after a reindex; a vector of zeros. With $method, the
# definition maps both vector fields as knn_vector with that method. Drops the index and restores the rows.
sub vectors_synced_and_searched
{
	my ($mapping, $method) = @_;
	$node->safe_psql($db, qq{SELECT flusso.create_index('t16-docs', '${\ vector_definition($method)}')})
	  unless $node->safe_psql($db, q{SELECT count(*) FROM flusso.indexes WHERE name = 't16-docs'});
	ok(FlussoTest::wait_synced($node, $db), 'vectors synced');
	my (undef, $map) = FlussoTest::os_request('GET', '/t16-docs/_mapping');
	my ($physical) = keys %$map;
	my $props = $map->{$physical}{mappings}{properties};
	my @keys = $mapping->[0] eq 'dense_vector' ? qw(type dims similarity) : qw(type dimension);
	my @got = map { [ @{ $props->{$_} }{@keys}, $method ? $props->{$_}{method}{engine} : () ] } qw(embedding half);
	is_deeply(\@got, [ $mapping, $mapping ], "mapping: @$mapping");
	if ($mapping->[0] eq 'knn_vector')
	{
		my (undef, $settings) = FlussoTest::os_request('GET', "/$physical/_settings");
		is($settings->{$physical}{settings}{index}{knn}, 'true', 'index.knn is set');
	}
	is_deeply(FlussoTest::os_doc('t16-docs', 3)->{embedding}, [ 0, 0, 1 ], 'the document has the vector');
	ok(!defined FlussoTest::os_doc('t16-docs', 5)->{embedding}, 'a NULL vector is left out (null)');
	is_deeply(knn_nearest('t16-docs', [ 0.2, 0.9, 0.1 ], 2), [ 2, 1 ], 'k-NN search: the two nearest documents');

	$node->safe_psql($db, q{UPDATE t16_docs SET embedding = '[0.1,0.9,0.1]' WHERE id = 3});
	ok(FlussoTest::wait_synced($node, $db), 'a changed vector synced');
	FlussoTest::os_request('POST', '/t16-docs/_refresh');
	is_deeply(knn_nearest('t16-docs', [ 0.2, 0.9, 0.1 ], 2), [ 3, 2 ], 'k-NN search after the change');
	$node->safe_psql($db, q{SELECT flusso.reindex('t16-docs', wait => true)});
	my (undef, $alias) = FlussoTest::os_request('GET', '/_alias/t16-docs');
	ok(exists $alias->{'t16-docs_2'}, 'reindex: the alias points at generation 2');
	FlussoTest::os_request('POST', '/t16-docs/_refresh');
	is_deeply(knn_nearest('t16-docs', [ 0.2, 0.9, 0.1 ], 2), [ 3, 2 ], 'k-NN search after the reindex');
	FlussoTest::is_consistent($node, $db, 't16-docs', 'vectors');

	# a vector of zeros: Elasticsearch's default similarity (cosine) would refuse it
	$node->safe_psql($db, q{INSERT INTO t16_docs VALUES (6, 'zero', '[0,0,0]', '[0,0,0]')});
	ok(FlussoTest::wait_synced($node, $db), 'a vector of zeros synced');
	is_deeply(FlussoTest::os_doc('t16-docs', 6)->{embedding}, [ 0, 0, 0 ], 'and indexed');
	is($node->safe_psql($db, q{SELECT count(*) FROM flusso.dead_letters WHERE index_name = 't16-docs'}), 0,
		'no dead letter');
	$node->safe_psql($db, q{
		SELECT flusso.drop_index('t16-docs');
		DELETE FROM t16_docs WHERE id = 6;
		UPDATE t16_docs SET embedding = '[0,0,1]' WHERE id = 3;
	});
}

# The definition of t16-docs, as JSON; with $method, both vector fields are mapped as knn_vector with that method.
sub vector_definition
{
	my ($method) = @_;
	my $definition = { table => 't16_docs' };
	$definition->{opensearch}{mappings}{properties}{$_} = { type => 'knn_vector', dimension => 3, method => $method }
	  for $method ? qw(embedding half) : ();
	return $json->encode($definition);
}

# Elasticsearch: a knn_vector with a method (as a definition written for OpenSearch has) becomes a dense_vector of
# the same space and HNSW parameters; one it cannot say is refused, naming the field's definition path.
sub knn_method_on_elasticsearch
{
	my $definition = { table => 't16_docs', columns => [ 'id', 'embedding' ],
		opensearch => { mappings => { properties => { embedding => { type => 'knn_vector', dimension => 3, method => $lucene_hnsw } } } } };
	$node->safe_psql($db, qq{SELECT flusso.create_index('t16-method', '${\ $json->encode($definition)}')});
	ok(FlussoTest::wait_synced($node, $db), 'knn_vector with a method: synced on Elasticsearch');
	my (undef, $map) = FlussoTest::os_request('GET', '/t16-method/_mapping');
	my ($physical) = keys %$map;
	my $field = $map->{$physical}{mappings}{properties}{embedding};
	is_deeply([ @$field{qw(type dims similarity)}, @{ $field->{index_options} // {} }{qw(type m ef_construction)} ],
		[ 'dense_vector', 3, 'l2_norm', 'hnsw', 16, 100 ],
		'as a dense_vector: space l2 → l2_norm, m and ef_construction → index_options');
	is_deeply(knn_nearest('t16-method', [ 0.2, 0.9, 0.1 ], 2), [ 2, 1 ], 'and searched with knn');
	$node->safe_psql($db, q{SELECT flusso.drop_index('t16-method')});

	$definition->{opensearch}{mappings}{properties}{embedding}{method}{space_type} = 'l1';
	$node->safe_psql($db, qq{SELECT flusso.create_index('t16-l1', '${\ $json->encode($definition)}')});
	my $error = qr/could not create index "t16-l1_1": the knn_vector field at opensearch\.mappings\.properties\.embedding has no Elasticsearch counterpart: the space_type "l1"/;
	ok(FlussoTest::wait_for(sub {
				($node->safe_psql($db, q{SELECT last_error FROM flusso.index_status WHERE name = 't16-l1'}) // '') =~ $error
			}, 'the refusal'),
		'a space Elasticsearch does not have: refused, naming the definition path');
	my ($code) = FlussoTest::os_request('GET', '/t16-l1_1');
	is($code, 404, 'and no index was created');
	$node->safe_psql($db, q{SELECT flusso.drop_index('t16-l1')});
}

# The ids of the $k documents of $index nearest to a vector, nearest first, by the engine's own k-NN search.
sub knn_nearest
{
	my ($index, $vector, $k) = @_;
	my $query = $engine eq 'elasticsearch' ?
	  { knn => { field => 'embedding', query_vector => $vector, k => $k, num_candidates => 10 }, size => $k } :
	  { size => $k, query => { knn => { embedding => { vector => $vector, k => $k } } } };
	my ($code, $res) = FlussoTest::os_request('POST', "/$index/_search", $query);
	diag($json->encode($res)) unless $code == 200;
	return $code == 200 ? [ map { $_->{_id} } @{ $res->{hits}{hits} } ] : undef;
}
