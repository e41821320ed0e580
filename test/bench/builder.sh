#!/usr/bin/env bash
# Builder benchmark: every document of test/bench/users_index.json built
#   (a) by flusso's generated statements, chunk by chunk in key order as the
#       backfill builds them (flusso.documents('users')), and
#   (b) by the best hand-written single statement for the same JSON
#       (test/bench/builder_handwritten.sql),
# side by side in one run on the same data.  Prints docs/s for both and the
# ratio, after checking that both produced exactly the same documents.
#
# Usage: test/bench/builder.sh [N]      (N users, default 200000)
# Env:   BENCH_DIR (default /tmp/flusso-builder), ROUNDS (default 3)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source test/lib/pg.sh
n=${1:-200000}
dir=${BENCH_DIR:-/tmp/flusso-builder}
rounds=${ROUNDS:-3}

test/install-deps.sh
make -s >/dev/null && make -s install >/dev/null

pg_cluster_stop "$dir/pg" immediate >/dev/null 2>&1 || true
rm -rf "$dir"
port=$(free_port)
# no OpenSearch and no synced database: only the builder runs
pg_cluster_start "$dir/pg" "$port" "flusso.database = 'none'" \
	"shared_buffers = '1GB'" "work_mem = '64MB'" "jit = off"
trap 'pg_cluster_stop "$dir/pg" >/dev/null 2>&1 || true' EXIT
q() { pg_psql "$dir/pg" "$port" -d bench "$@"; }
pg_psql "$dir/pg" "$port" -c "CREATE DATABASE bench" >/dev/null

echo "generating the dataset (N = $n)" >&2
q -v n="$n" -f test/bench/dataset.sql >/dev/null 2>&1
q -c "CREATE EXTENSION flusso" >/dev/null
q -c "SELECT flusso.create_index('users', \$\$$(cat test/bench/users_index.json)\$\$)" >/dev/null 2>&1
q -c "VACUUM ANALYZE" >/dev/null

hand="SELECT count(*), sum(length(doc)) FROM ($(cat test/bench/builder_handwritten.sql)) h"
gen="SELECT count(*), sum(length(document::text)) FROM flusso.documents('users')"

echo "checking that both build the same documents" >&2
a=$(q -At -c "SELECT md5(string_agg(md5(document::text), '' ORDER BY id)) FROM flusso.documents('users')")
b=$(q -At -c "SELECT md5(string_agg(md5(doc), '' ORDER BY id)) FROM ($(cat test/bench/builder_handwritten.sql)) h")
if [ "$a" != "$b" ]; then
	echo "the builder and the hand-written statement built different documents" >&2
	exit 1
fi
docs=$(q -At -c "SELECT count(*) FROM flusso.document_ids('users')")

time_ms() {
	local t0 t1
	t0=$(date +%s%N)
	q -At -c "$1" >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

best_gen=0
best_hand=0
for r in $(seq "$rounds"); do
	g=$(time_ms "$gen")
	h=$(time_ms "$hand")
	echo "round $r: builder ${g} ms, hand-written ${h} ms" >&2
	if [ "$best_gen" = 0 ] || [ "$g" -lt "$best_gen" ]; then best_gen=$g; fi
	if [ "$best_hand" = 0 ] || [ "$h" -lt "$best_hand" ]; then best_hand=$h; fi
done

python3 - "$docs" "$best_gen" "$best_hand" <<'EOF'
import sys
docs, g, h = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"{'documents':<32}{docs:>12}")
print(f"{'flusso builder (docs/s)':<32}{docs / (g / 1000):>12.0f}   best of rounds, {g} ms")
print(f"{'hand-written statement (docs/s)':<32}{docs / (h / 1000):>12.0f}   best of rounds, {h} ms")
print(f"{'builder / hand-written':<32}{h / g:>12.2f}   target >= 0.80")
EOF
