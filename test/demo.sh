#!/usr/bin/env bash
# The flusso demo: a local PostgreSQL 15 with flusso and a local OpenSearch,
# a sample shop schema synced into an index, live changes found by search,
# and flusso.status shown.  It installs what it needs and leaves both
# servers running; `test/demo.sh stop` stops them.
#
# Usage: test/demo.sh [stop]      Env: DEMO_DIR (default /tmp/flusso-demo), DEMO_USERS (2000)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source test/lib/pg.sh
dir=${DEMO_DIR:-/tmp/flusso-demo}
users=${DEMO_USERS:-2000}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${1:-}" = stop ]; then
	pg_cluster_stop "$dir/pg"
	as_pg test/opensearch/opensearch.sh stop --dir "$dir/opensearch" >/dev/null 2>&1 || true
	echo "demo stopped (data kept in $dir)"
	exit 0
fi

say "installing and building"
test/install-deps.sh
make -s >/dev/null
make -s install >/dev/null

say "starting OpenSearch"
mkdir -p "$dir"
chmod 0777 "$dir"
test/opensearch/opensearch.sh build
url=$(as_pg test/opensearch/opensearch.sh url --dir "$dir/opensearch" 2>/dev/null ||
	as_pg test/opensearch/opensearch.sh start --dir "$dir/opensearch")
echo "OpenSearch: $url"

say "starting PostgreSQL with flusso"
if [ -f "$dir/pg/port" ]; then port=$(cat "$dir/pg/port"); else port=$(free_port); fi
pg_cluster_stop "$dir/pg" >/dev/null 2>&1 || true
pg_cluster_start "$dir/pg" "$port" \
	"flusso.database = 'demo'" \
	"flusso.opensearch_url = '$url'" \
	"flusso.lag_poll_interval = '1s'"
echo "$port" >"$dir/pg/port"
# a cluster kept from an earlier run knows an earlier OpenSearch port
pg_psql "$dir/pg" "$port" -q -c "ALTER SYSTEM SET flusso.opensearch_url = '$url'" -c "SELECT pg_reload_conf()" >/dev/null
psql_demo() { pg_psql "$dir/pg" "$port" -d demo "$@"; }
echo "PostgreSQL: psql -h $dir/pg -p $port -U postgres demo"

say "loading the sample schema ($users users with addresses, orders, items, companies, tags)"
pg_psql "$dir/pg" "$port" -c "DROP DATABASE IF EXISTS demo WITH (FORCE)" >/dev/null
pg_psql "$dir/pg" "$port" -c "CREATE DATABASE demo" >/dev/null
psql_demo -v n="$users" -f test/bench/dataset.sql >/dev/null 2>&1
psql_demo -c "CREATE EXTENSION flusso"
curl -s -X DELETE "$url/users_*" >/dev/null

say "creating the index \"users\" (definition: test/bench/users_index.json)"
start=$(date +%s.%N)
psql_demo -c "SELECT flusso.create_index('users', \$\$$(cat test/bench/users_index.json)\$\$)" >/dev/null
psql_demo -At -c "SELECT flusso.wait_synced('300 s')" | grep -q t
end=$(date +%s.%N)
docs=$(psql_demo -At -c "SELECT backfill_rows_done FROM flusso.index_status WHERE name = 'users'")
python3 -c "print('backfilled %d documents in %.2f s: %.0f documents/s' % ($docs, $end - $start, $docs / ($end - $start)))"

say "a live change, and the time until OpenSearch serves it"
marker="Ada Lovelace $(date +%s%N)"
t0=$(date +%s%N)
psql_demo -c "UPDATE users SET name = '$marker' WHERE id = 42" >/dev/null
until curl -s "$url/users/_doc/42" | grep -q "$marker"; do sleep 0.002; done
t1=$(date +%s%N)
echo "commit to readable in OpenSearch: $(( (t1 - t0) / 1000000 )) ms (realtime GET, including psql's own start)"
psql_demo -c "INSERT INTO orders VALUES (99999001, 42, 1234.50, 'paid', now())" >/dev/null
psql_demo -At -c "SELECT flusso.wait_synced()" >/dev/null
curl -s -X POST "$url/users/_refresh" >/dev/null

say "searching OpenSearch for it"
curl -s "$url/users/_search" -H 'Content-Type: application/json' -d '{
  "query": {"match": {"name": "Lovelace"}},
  "_source": ["id", "name", "order_count", "total_spent", "company.name", "tags"]}' |
	python3 -c 'import json,sys; r=json.load(sys.stdin); [print(json.dumps(h["_source"])) for h in r["hits"]["hits"]]'

say "flusso.status"
psql_demo -x -c "SELECT database, phase, activity, changes_captured, changes_committed, changes_in_flight,
	documents_built, batches, slot_lag_bytes, errors, last_error, opensearch, opensearch_version
	FROM flusso.status"
say "flusso.index_status"
psql_demo -c "SELECT name, state, generation, documents_upserted, documents_deleted, errors, backfill_percent
	FROM flusso.index_status"

say "the demo keeps running"
cat <<EOF
  psql -h $dir/pg -p $port -U postgres demo        # change rows, then SELECT * FROM flusso.status;
  curl '$url/users/_search?q=name:Lovelace&pretty'
  test/demo.sh stop
EOF
