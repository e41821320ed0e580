#!/usr/bin/env bash
# flusso soak: the sync worker's memory after 10^5 and after 10^6 synced
# transactions, for the same load, to see that it does not grow with the
# work done.
#
# It builds and installs flusso, starts a throw-away PostgreSQL 15 and a real
# OpenSearch (test/opensearch), loads test/bench/dataset.sql with N users,
# creates the index of test/bench/users_index.json (users with addresses,
# orders with items, company, tags, count and sum) and waits for its
# backfill.  Then pgbench (2 clients) commits single-row UPDATEs, one
# transaction each, alternately to the root (users) and to a child (orders),
# until --first transactions, waits for flusso.wait_synced(), and measures;
# then goes on to --total transactions, waits, and measures again.  A
# measure is the worker's memory contexts (pg_log_backend_memory_contexts,
# read back from the server log: TopMemoryContext's own size and the grand
# total of all contexts) and its RssAnon and VmRSS (/proc/PID/status); one is
# taken after the backfill too.  Everything it started is stopped at the end.
#
# Usage: test/bench/soak.sh [--n N] [--first T] [--total T] [--no-build] [--keep]
#   --n N        users in the dataset (default 10000, env SOAK_N)
#   --first T    transactions of the first measure (default 100000)
#   --total T    transactions of the second measure (default 1000000)
#   --no-build   use the flusso installed already
#   --keep       leave the servers running at the end
# Env: SOAK_DIR (default /tmp/flusso-soak), PG_BIN and PG_CONFIG (another
#      PostgreSQL 15 installation), OPENSEARCH_HEAP (default 1g).
# It prints a table and writes the measures to $SOAK_DIR/soak.json.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
pg_config_given=${PG_CONFIG:-}
source test/lib/pg.sh

N=${SOAK_N:-10000}
FIRST=100000
TOTAL=1000000
build=1
keep=0
while [ $# -gt 0 ]; do
	case $1 in
		--n) N=$2; shift 2 ;;
		--first) FIRST=$2; shift 2 ;;
		--total) TOTAL=$2; shift 2 ;;
		--no-build) build=0; shift ;;
		--keep) keep=1; shift ;;
		-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done
[ "$TOTAL" -gt "$FIRST" ] || { echo "--total must be more than --first" >&2; exit 2; }

dir=${SOAK_DIR:-/tmp/flusso-soak}
export OPENSEARCH_HEAP=${OPENSEARCH_HEAP:-1g}
DB=soak
results=$dir/soak.json
done_txns=0
export PGOPTIONS="-c client_min_messages=warning"

log() { printf '[%s] == %s\n' "$(date +%T)" "$*" >&2; }
sql() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$dir/pg" -p "$port" -U postgres -d "$DB" -At "$@"; }

cleanup() {
	local rc=$?
	set +e
	if [ "$keep" = 1 ] && [ $rc = 0 ]; then
		echo "servers left running (--keep): PostgreSQL port ${port:-?} (socket in $dir/pg), OpenSearch ${url:-?}" >&2
		return
	fi
	[ -d "$dir/pg/data" ] && pg_cluster_stop "$dir/pg" fast
	[ -d "$dir/opensearch" ] && as_pg test/opensearch/opensearch.sh stop --dir "$dir/opensearch" >/dev/null 2>&1
	[ $rc != 0 ] && echo "soak FAILED (rc $rc); logs in $dir" >&2
}

# measure LABEL: the worker's memory, one JSON line appended to $results
measure() {
	local pid m
	pid=$(sql -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'flusso sync' AND datname = '$DB'")
	m=$(python3 "$here/bench.py" memory --dsn "host=$dir/pg port=$port user=postgres dbname=$DB" \
		--pid "$pid" --log "$dir/pg/server.log" --psql "$PG_BIN/psql")
	jq -c --arg what "$1" --argjson txns "$done_txns" '{"label": $what, "transactions": $txns} + .' <<<"$m" >>"$results"
	log "$1: $(jq -r '"TopMemoryContext \(.top_used) used (\(.top_total) total), all contexts \(.grand_used) used, RssAnon \(.RssAnon) kB"' <<<"$m")"
}

# load_to T: pgbench until T transactions in all, then wait until flusso synced them
load_to() {
	local per_client=$((($1 - done_txns) / 2)) t0
	log "pgbench: $((per_client * 2)) single-row transactions (2 clients), to $1 in all"
	t0=$SECONDS
	as_pg pgbench -n -h "$dir/pg" -p "$port" -U postgres -c 2 -j 2 -t "$per_client" \
		-f "$dir/root.sql@1" -f "$dir/child.sql@1" "$DB" >"$dir/pgbench-$1.log" 2>&1 ||
		{ tail -n 20 "$dir/pgbench-$1.log" >&2; exit 1; }
	done_txns=$((done_txns + per_client * 2))
	log "$(grep -m1 '^tps' "$dir/pgbench-$1.log"); waiting for flusso"
	[ "$(sql -c "SELECT flusso.wait_synced('30 min')")" = t ] || { echo "flusso did not catch up" >&2; exit 1; }
	log "synced $((SECONDS - t0)) s after the load started"
}

mkdir -p "$dir"
chmod 0777 "$dir"
rm -rf "$dir/pg" "$dir/opensearch" "$results"
trap cleanup EXIT
trap 'exit 143' TERM INT

if [ "$build" = 1 ]; then
	log "building and installing flusso"
	export PG_CONFIG=${pg_config_given:-$PG_CONFIG}
	make -s >"$dir/build.log" 2>&1 && make -s install >>"$dir/build.log" 2>&1 ||
		{ tail -n 30 "$dir/build.log" >&2; exit 1; }
fi
test/opensearch/opensearch.sh build
log "starting OpenSearch (heap $OPENSEARCH_HEAP) and PostgreSQL"
url=$(as_pg test/opensearch/opensearch.sh start --dir "$dir/opensearch")
port=$(free_port)
pg_cluster_start "$dir/pg" "$port" \
	"flusso.database = '$DB'" \
	"flusso.opensearch_url = '$url'" \
	"max_wal_size = '4GB'" \
	"checkpoint_timeout = '30min'"
DB=postgres sql -c "CREATE DATABASE $DB"

log "dataset of $N users, the users index, its backfill"
sql -v n="$N" -f test/bench/dataset.sql >/dev/null
sql -c "CREATE EXTENSION flusso"
sql -c "SELECT flusso.create_index('users', \$\$$(cat test/bench/users_index.json)\$\$)" >/dev/null
[ "$(sql -c "SELECT flusso.wait_synced('30 min')")" = t ] || { echo "the backfill did not finish" >&2; exit 1; }
measure "after the backfill"

printf '\\set id random(1, %d)\nUPDATE users SET name = %s || :id || %s || :client_id WHERE id = :id;\n' \
	"$N" "'user '" "' '" >"$dir/root.sql"
printf '\\set id random(1, %d)\nUPDATE orders SET total = total + 1 WHERE id = :id;\n' $((5 * N)) >"$dir/child.sql"
chmod 0644 "$dir/root.sql" "$dir/child.sql"

load_to "$FIRST"
measure "after $FIRST transactions"
load_to "$TOTAL"
measure "after $TOTAL transactions"

printf '\n%-34s %14s %14s %14s %10s %10s\n' "worker memory" "transactions" "TopMemoryCtx" "all contexts" "RssAnon" "VmRSS"
printf '%-34s %14s %14s %14s %10s %10s\n' "" "" "used, bytes" "used, bytes" "kB" "kB"
jq -r '[.label, .transactions, .top_used, .grand_used, .RssAnon, .VmRSS] | @tsv' "$results" |
	while IFS=$'\t' read -r label t top grand rss vm; do
		printf '%-34s %14s %14s %14s %10s %10s\n' "$label" "$t" "$top" "$grand" "$rss" "$vm"
	done
jq -s -r '"\ngrowth from \(.[1].transactions) to \(.[2].transactions) transactions: TopMemoryContext \(.[2].top_used - .[1].top_used) bytes, all contexts \(.[2].grand_used - .[1].grand_used) bytes, RssAnon \(.[2].RssAnon - .[1].RssAnon) kB"' "$results"
