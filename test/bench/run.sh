#!/usr/bin/env bash
# flusso benchmark: flusso against a plain _bulk loader (the raw limit) and
# against PGSync, on the same machine, data and OpenSearch, in one run.
#
# It installs what it needs (Debian packages through test/install-deps.sh
# --bench, PGSync from PyPI into a virtualenv under the work dir), builds and
# installs flusso, and starts everything itself: a throw-away PostgreSQL 15
# with flusso, a real OpenSearch 2.19 node (test/opensearch), Redis (on a free
# port, not the system service) and PGSync.  Every process it started is
# stopped at the end, also on failure.  Logs of every component stay under
# the work dir.
#
# Phases (test/bench/dataset.sql with N users; index definition: users with
# addresses, orders with items, company and tags, the largest one PGSync can
# express too, test/bench/users_common_index.json = test/bench/pgsync_schema.json;
# flusso's full test/bench/users_index.json is backfilled once as well):
#   1. flusso backfill on the freshly started OpenSearch (cold); the documents
#      of flusso.documents('users') exported as NDJSON and loaded once by
#      test/bench/bulkload.py to warm OpenSearch up; then BENCH_ROUNDS rounds
#      of a flusso backfill and the raw limit (bulkload.py with flusso's batch,
#      1000, and concurrency, 4), each into a fresh index: docs/s and wall time
#      until _count (after _refresh) is N, the best round of each tool kept;
#      last, flusso's full definition once
#   2. flusso idle CPU (60 s); latency with nothing else writing (probes
#      commit markers, one poller reads them back with realtime _mget every
#      5 ms); live throughput (60 s of load that pauses while the tool's
#      backlog is over a bound, so it settles at what the tool sustains);
#      latency at 100, 1000 and 5000 commits/s (pgbench -R plus the probes;
#      rates above 1.5x the sustained rate are not run); peak RSS of the
#      worker in one 2,000,000-row UPDATE
#   3. flusso off; PGSync bootstrap + initial sync, then the PGSync daemon
#      through the same idle, latency, live and footprint phases
#   4. with --scale: flusso backfill at N = 2,000,000 (a separate database)
# It prints one table and writes it, with the machine, the versions, PGSync's
# settings and the command, to BENCHMARKS.md (test/bench/report.py).
#
# Usage: test/bench/run.sh [--n N] [--scale] [--scale-only] [--scale-n N]
#                          [--no-pgsync] [--no-write] [--keep]
#   --n N          users in the dataset (default 200000, env BENCH_N)
#   --scale        also measure flusso's backfill at --scale-n users (long)
#   --scale-only   only the scale measurement (results merge into the last run's)
#   --scale-n N    default 2000000 (env BENCH_SCALE_N)
#   --no-pgsync    skip PGSync (flusso and the raw limit only)
#   --no-write     print the table but do not write BENCHMARKS.md
#   --keep         leave the servers running at the end
# Env: BENCH_DIR (default /tmp/flusso-bench), OPENSEARCH_HEAP (default 2g),
#      BENCH_LIVE_SECONDS (60), BENCH_LATENCY_SECONDS (20), BENCH_IDLE_SECONDS (60),
#      BENCH_RATES ("100 1000 5000"), BENCH_FOOTPRINT_ROWS (2000000),
#      BENCH_PGSYNC_WINDOW (60: how long PGSync is watched after the big UPDATE),
#      BENCH_DRAIN_MAX (300: longest wait for a tool to catch up),
#      BENCH_ROUNDS (2: backfill rounds of flusso and the raw loader on the warm node),
#      PGSYNC_VERSION (7.3.0)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
source test/lib/pg.sh

N=${BENCH_N:-200000}
SCALE_N=${BENCH_SCALE_N:-2000000}
scale=0
scale_only=0
pgsync=1
write=1
keep=0
argv=("$@")
while [ $# -gt 0 ]; do
	case $1 in
		--n) N=$2; shift 2 ;;
		--scale) scale=1; shift ;;
		--scale-only) scale=1; scale_only=1; shift ;;
		--scale-n) SCALE_N=$2; shift 2 ;;
		--no-pgsync) pgsync=0; shift ;;
		--no-write) write=0; shift ;;
		--keep) keep=1; shift ;;
		-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		*) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

dir=${BENCH_DIR:-/tmp/flusso-bench}
LIVE_S=${BENCH_LIVE_SECONDS:-60}
LAT_S=${BENCH_LATENCY_SECONDS:-20}
IDLE_S=${BENCH_IDLE_SECONDS:-60}
RATES=${BENCH_RATES:-100 1000 5000}
FOOT_ROWS=${BENCH_FOOTPRINT_ROWS:-2000000}
PGSYNC_WINDOW=${BENCH_PGSYNC_WINDOW:-60}
DRAIN_MAX=${BENCH_DRAIN_MAX:-300}
ROUNDS=${BENCH_ROUNDS:-2}
PGSYNC_VERSION=${PGSYNC_VERSION:-7.3.0}
export OPENSEARCH_HEAP=${OPENSEARCH_HEAP:-2g}
PROBE_RATE=20          # latency probes per second (part of each fixed rate)
PROBE_IDLE_RATE=5      # probes per second of the "probe only" step
FLUSSO_LIMIT=20000     # live phase: backlog (row changes) at which the load pauses
PGSYNC_LIMIT=20        # the same for PGSync (changes not yet written; it works through them in groups of 5)

venv=$dir/venv
py=$venv/bin/python
logs=$dir/logs
results=$dir/results.json
DB=bench
ITEMS=$((N * 15))
LOAD_N=$((N - 1000))     # the load updates users 1..N-1000; the probes use the last 1000
PROBE_FIRST=$((N - 999))
SENTINEL=$N
pids=()
t_run0=$(date +%s)

log() { printf '\n[%s] == %s\n' "$(date +%T)" "$*" | tee -a "$logs/run.log" >&2; }
note() { printf '   %s\n' "$*" | tee -a "$logs/run.log" >&2; }
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
sql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$DB" -At "$@"; }
dsn() { echo "host=127.0.0.1 port=$port user=postgres dbname=$DB"; }
bench() { "$py" "$here/bench.py" "$@"; }
put() { bench put "$results" "$@"; }
cpu_of() { bench cpu "$logs/procmon.jsonl" --since "$1" --until "$2"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
os_count() {
	curl -s -XPOST "$url/$1/_refresh" >/dev/null
	curl -s "$url/$1/_count" | jq -r '.count // 0'
}
# wait_count INDEX EXPECTED TIMEOUT: until _count after _refresh reaches EXPECTED
wait_count() {
	local deadline=$((SECONDS + $3)) c
	while :; do
		c=$(os_count "$1")
		[ "$c" -ge "$2" ] && return 0
		[ $SECONDS -ge $deadline ] && { note "timed out: $1 has $c of $2 documents"; return 1; }
		sleep 0.2
	done
}

cleanup() {
	local rc=$?
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	[ -f "$dir/pgsync.pid" ] && kill "$(cat "$dir/pgsync.pid")" 2>/dev/null && rm -f "$dir/pgsync.pid"
	if [ "$keep" = 1 ] && [ $rc = 0 ]; then
		echo "servers left running (--keep): PostgreSQL port ${port:-?}, OpenSearch ${url:-?}, Redis ${rport:-?}" >&2
		return
	fi
	[ -f "$dir/redis/redis.pid" ] && kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null
	[ -d "$dir/pg/data" ] && pg_cluster_stop "$dir/pg" fast
	[ -d "$dir/opensearch" ] && as_pg test/opensearch/opensearch.sh stop --dir "$dir/opensearch" >/dev/null 2>&1
	sleep 1
	local left
	left=$(ps -eo pid,args | grep -E "$dir/(pg/data|opensearch|redis|venv)|bench\.py (live|probe|procmon)|pgbench .*latency_load|redis-server 127.0.0.1:${rport:-x}" | grep -v grep || true)
	if [ -n "$left" ]; then
		echo "still running after cleanup:" >&2
		echo "$left" >&2
	else
		echo "all benchmark processes stopped" >&2
	fi
	[ $rc != 0 ] && echo "benchmark FAILED (rc $rc); logs in $logs" >&2
}

# ---------------------------------------------------------------- setup

setup() {
	mkdir -p "$dir"
	chmod 0777 "$dir"
	rm -rf "$dir/pg" "$dir/opensearch" "$dir/redis" "$dir/pgsync" "$logs" "$dir/pgsync.pid"
	mkdir -p "$logs" "$dir/pgsync" "$dir/redis"
	chmod 0777 "$logs"
	if [ "$scale_only" = 0 ]; then
		rm -f "$results"
	fi
	trap cleanup EXIT
	trap 'exit 143' TERM INT

	log "installing dependencies, building flusso"
	test/install-deps.sh --bench
	make -s >"$logs/build.log" 2>&1 || { tail -n 30 "$logs/build.log" >&2; exit 1; }
	make -s install >>"$logs/build.log" 2>&1
	test/opensearch/opensearch.sh build

	local have=""
	[ -x "$py" ] && have=$("$venv/bin/pip" show pgsync 2>/dev/null | sed -n 's/^Version: //p')
	if [ "$have" != "$PGSYNC_VERSION" ]; then
		log "installing PGSync $PGSYNC_VERSION into $venv"
		rm -rf "$venv"
		/usr/bin/python3 -m venv "$venv"
		"$venv/bin/pip" install -q --disable-pip-version-check "pgsync==$PGSYNC_VERSION" >"$logs/pip.log" 2>&1 ||
			{ tail -n 30 "$logs/pip.log" >&2; exit 1; }
	fi

	log "starting OpenSearch (heap $OPENSEARCH_HEAP)"
	url=$(as_pg test/opensearch/opensearch.sh start --dir "$dir/opensearch")
	note "OpenSearch $url"

	log "starting PostgreSQL"
	port=$(free_port)
	pg_cluster_start "$dir/pg" "$port" \
		"flusso.database = '$DB'" \
		"flusso.opensearch_url = '$url'" \
		"max_wal_size = '8GB'" \
		"checkpoint_timeout = '30min'" \
		"log_autovacuum_min_duration = 0" \
		"log_checkpoints = on"
	note "PostgreSQL port $port (psql -h 127.0.0.1 -p $port -U postgres $DB)"

	if [ "$pgsync" = 1 ] && [ "$scale_only" = 0 ]; then
		log "starting Redis"
		rport=$(free_port)
		redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
			--pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" --dir "$dir/redis" >/dev/null
		for _ in $(seq 50); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
		note "Redis port $rport"
	fi

	"$py" "$here/bench.py" procmon --out "$logs/procmon.jsonl" --interval 0.5 --venv "$venv" \
		--root "postgres:$(head -n 1 "$dir/pg/data/postmaster.pid")" \
		--root "opensearch:$(cat "$dir/opensearch/node1.pid")" \
		${rport:+--root "redis:$(cat "$dir/redis/redis.pid")"} \
		--root "harness:$$" >"$logs/procmon.log" 2>&1 &
	pids+=($!)
}

record_meta() {
	local cpu_model ram_gib osv pgv pgsyncv redisv
	cpu_model=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
	ram_gib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
	osv=$(curl -s "$url" | jq -r .version.number)
	pgv=$(DB=postgres sql -c "SHOW server_version")
	pgsyncv=$("$venv/bin/pip" show pgsync 2>/dev/null | sed -n 's/^Version: //p')
	redisv=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
	jq -n --arg cpu "$cpu_model" --arg cores "$(nproc)" --arg ram "$ram_gib" --arg os "$osv" \
		--arg pg "$pgv" --arg pgsync "$pgsyncv" --arg redis "$redisv" --arg heap "$OPENSEARCH_HEAP" \
		--arg n "$N" --arg cmd "test/bench/run.sh${argv[*]:+ ${argv[*]}}" --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" \
		--arg kernel "$(uname -r)" --arg commit "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
		--arg dirty "$(git -C "$root" status --porcelain -- src sql Makefile flusso.control 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')" \
		--arg py "$("$py" --version 2>&1)" \
		'{date: $date, n: ($n|tonumber), command: $cmd, commit: $commit, uncommitted: $dirty,
		  machine: {cpu: $cpu, cores: ($cores|tonumber), ram_gib: ($ram|tonumber), kernel: $kernel},
		  versions: {postgresql: $pg, opensearch: $os, pgsync: $pgsync, redis: $redis, python: $py},
		  opensearch_heap: $heap}' | put meta
}

load_dataset() { # N; sets LOAD_S
	log "loading the dataset (N = $1 users: $1 users, $(($1 * 3 / 2)) addresses, $(($1 * 5)) orders, $(($1 * 15)) order items)"
	local t0 t1
	t0=$(now)
	sql -v n="$1" -f test/bench/dataset.sql >"$logs/dataset-$1.log" 2>&1 ||
		{ tail -n 5 "$logs/dataset-$1.log" >&2; echo "loading the dataset failed" >&2; exit 1; }
	sql -c "VACUUM ANALYZE" >/dev/null
	t1=$(now)
	LOAD_S=$(sub "$t0" "$t1")
	note "loaded in $LOAD_S s"
}

# ---------------------------------------------------------------- flusso

flusso_wait_worker() {
	for _ in $(seq 300); do
		W=$(sql -c "SELECT worker_pid FROM flusso.status WHERE database = current_database() AND worker_pid IS NOT NULL" 2>/dev/null || true)
		[ -n "$W" ] && [ -d "/proc/$W" ] && return 0
		sleep 0.2
	done
	echo "the flusso worker did not start" >&2
	return 1
}

# flusso_drop NAME: drop the index here and in OpenSearch, and wait until both are gone
flusso_drop() {
	sql -c "SELECT flusso.drop_index('$1', true)" >/dev/null
	for _ in $(seq 600); do
		[ "$(sql -c "SELECT count(*) FROM flusso.index_status WHERE name = '$1'")" = 0 ] &&
			[ "$(curl -s "$url/_cat/indices/$1_*?h=index" | wc -l)" = 0 ] && return 0
		sleep 0.1
	done
	echo "index $1 was not dropped within 60 s" >&2
	return 1
}

# flusso_backfill KEY NAME DEFINITION EXPECTED
flusso_backfill() {
	local key=$1 name=$2 def=$3 expected=$4 t0 t1 t2 st
	log "flusso backfill: index \"$name\" ($def), $expected documents"
	t0=$(now)
	sql -c "SELECT flusso.create_index('$name', \$def\$$(cat "$def")\$def\$)" >/dev/null
	# the worker builds a new generation; wait until it is live, then until it is searchable
	for _ in $(seq 36000); do
		st=$(sql -c "SELECT coalesce(generation, 0) >= 1 AND building_generation IS NULL FROM flusso.index_status WHERE name = '$name'")
		[ "$st" = t ] && break
		sleep 0.1
	done
	t1=$(now)
	wait_count "$name" "$expected" 600
	t2=$(now)
	local done_rows docs_s
	done_rows=$(sql -c "SELECT backfill_rows_done FROM flusso.index_status WHERE name = '$name'")
	docs_s=$(awk -v n="$expected" -v s="$(sub "$t0" "$t2")" 'BEGIN { printf "%.1f", n / s }')
	note "$expected documents searchable after $(sub "$t0" "$t2") s: $docs_s docs/s (built and acknowledged after $(sub "$t0" "$t1") s)"
	jq -n --argjson docs "$expected" --argjson wall "$(sub "$t0" "$t2")" --argjson live "$(sub "$t0" "$t1")" \
		--argjson rows "${done_rows:-0}" --argjson cpu "$(cpu_of "$t0" "$t2")" \
		'{docs: $docs, wall_s: $wall, acked_s: $live, docs_per_s: ($docs / $wall), backfill_rows_done: $rows, cpu: $cpu}' |
		put "$key"
}

raw_export() { # NAME: its documents and index body, for the raw loader
	local name=$1 t0 t1 n
	log "raw limit: exporting flusso.documents('$name') for test/bench/bulkload.py"
	t0=$(now)
	sql -F $'\t' -c "SELECT id, document FROM flusso.documents('$name')" >"$dir/docs.tsv"
	t1=$(now)
	n=$(wc -l <"$dir/docs.tsv")
	note "exported $n documents in $(sub "$t0" "$t1") s (flusso.documents: the SQL build alone)"
	jq -n --argjson docs "$n" --argjson s "$(sub "$t0" "$t1")" --arg bytes "$(stat -c %s "$dir/docs.tsv")" \
		'{docs: $docs, seconds: $s, docs_per_s: ($docs / $s), bytes: ($bytes|tonumber)}' | put export
	sql -c "SELECT flusso.index_body('$name')" >"$dir/index_body.json"
}
raw_load() { # KEY: the exported documents into a fresh index by the plain loader
	local t0 t1
	log "raw limit ($1): test/bench/bulkload.py, batch 1000, 4 in flight"
	t0=$(now)
	bench_py_raw >"$logs/raw.json"
	t1=$(now)
	jq --argjson cpu "$(cpu_of "$t0" "$t1")" '. + {cpu: $cpu}' "$logs/raw.json" | put "$1"
	note "raw: $(jq -r '"\(.docs) docs in \(.send_s) s: \(.docs_per_s) docs/s, searchable after \(.searchable_s) s"' "$logs/raw.json")"
	curl -s -XDELETE "$url/raw_users" >/dev/null
}
# best_round TOOL KEY: the round of TOOL with the most docs/s, stored at KEY
best_round() {
	jq -c --arg t "$1" '.rounds[$t] | to_entries | map(.value + {round: .key}) | max_by(.docs_per_s)' "$results" | put "$2"
}
bench_py_raw() {
	python3 "$here/bulkload.py" --url "$url" --index raw_users --docs "$dir/docs.tsv" \
		--body "$dir/index_body.json" --batch 1000 --concurrency 4
}

# idle_cpu KEY SECONDS PID... : CPU of these processes over SECONDS, nothing else running
idle_cpu() {
	local key=$1 secs=$2 t0 t1 a=0 b=0 p
	shift 2
	for p in "$@"; do a=$((a + $(ticks "$p"))); done
	t0=$(now)
	sleep "$secs"
	t1=$(now)
	for p in "$@"; do b=$((b + $(ticks "$p"))); done
	local hz cpu_s
	hz=$(getconf CLK_TCK)
	cpu_s=$(awk -v d=$((b - a)) -v hz="$hz" 'BEGIN { printf "%.2f", d / hz }')
	note "idle for $(sub "$t0" "$t1") s: $cpu_s CPU-seconds in pids $*"
	jq -n --argjson s "$(sub "$t0" "$t1")" --argjson c "$cpu_s" --arg pids "$*" --argjson cpu "$(cpu_of "$t0" "$t1")" \
		'{seconds: $s, cpu_s: $c, pct_of_core: (100 * $c / $s), pids: $pids, cpu: $cpu}' | put "$key"
}

# drain TOOL INDEX: wait until the tool caught up; prints the seconds it took
drain() {
	local tool=$1 index=$2 t0 left
	t0=$(now)
	# flusso: wait_synced, then a marker committed now must become readable;
	# PGSync: see bench.py pgsync-drain
	if [ "$tool" = flusso ]; then
		sql -c "SELECT flusso.wait_synced('${DRAIN_MAX} s')" >/dev/null
		if ! bench sentinel --dsn "$(dsn)" --url "$url" --index "$index" --id "$SENTINEL" \
			--timeout "$DRAIN_MAX" >>"$logs/sentinel.log" 2>&1; then
			echo "-1"
			return
		fi
	elif ! bench pgsync-drain --dsn "$(dsn)" --url "$url" --index "$index" --id "$SENTINEL" \
		--pgsync-log "$logs/pgsync-daemon.log" --redis-port "$rport" --redis-key "$qkey" \
		--base "${pgsync_base:-0}" --timeout "$DRAIN_MAX" >>"$logs/sentinel.log" 2>&1; then
		echo "-1"
		return
	fi
	sub "$t0" "$(now)"
}

# live TOOL INDEX LIMIT
live_phase() {
	local tool=$1 index=$2 limit=$3 t0 t_end dr
	log "$tool live throughput: $LIVE_S s of transactions of 5 root + 5 child updates, paused while the backlog is over $limit"
	drain "$tool" "$index" >/dev/null
	t0=$(now)
	bench live --dsn "$(dsn)" --tool "$tool" ${rport:+--redis-port "$rport"} ${qkey:+--redis-key "$qkey"} \
		--pgsync-log "$logs/pgsync-daemon.log" \
		--seconds "$LIVE_S" --n "$LOAD_N" --items "$ITEMS" --limit "$limit" >"$logs/live-$tool.json"
	t_end=$(now)
	dr=$(drain "$tool" "$index")
	local t_d
	t_d=$(now)
	bench verify --dsn "$(dsn)" --url "$url" --index "$index" --sample 500 --like "L${tool:0:1}%" \
		>"$logs/verify-live-$tool.json" || echo '{}' >"$logs/verify-live-$tool.json"
	jq --argjson drain "$dr" --argjson cpu "$(cpu_of "$t0" "$t_end")" --slurpfile v "$logs/verify-live-$tool.json" \
		'del(.series) + {drain_s: $drain, verify: $v[0], cpu: $cpu,
		  drained: ($drain >= 0),
		  sustained_per_s: (if $drain >= 0 then .changes / (.seconds + $drain) else .processed_rate end)}' \
		"$logs/live-$tool.json" | put "live.$tool"
	note "$(jq -r '"\(.changes) row changes in \(.commits) commits over \(.seconds) s; processed \(.processed_rate)/s during the load; max backlog \(.backlog_max)"' "$logs/live-$tool.json"); drained $dr s after; verify: $(jq -c '{checked, mismatches}' "$logs/verify-live-$tool.json")"
}

# wait_quiet: until OpenSearch and PostgreSQL are quiet (< 0.25 core over
# 2 s, e.g. merges after a write-heavy phase), at most 30 s
wait_quiet() {
	local t0 busy
	t0=$SECONDS
	while [ $((SECONDS - t0)) -lt 30 ]; do
		sleep 2
		busy=$(bench cpu "$logs/procmon.jsonl" --since "$(awk -v t="$(now)" 'BEGIN { printf "%.3f", t - 2 }')" |
			jq '((.cores.opensearch // 0) + (.cores.postgres // 0) + (.cores.flusso_worker // 0) + (.cores.pgsync // 0))')
		awk -v b="$busy" 'BEGIN { exit !(b < 0.25) }' && return 0
	done
	note "not quiet after 30 s (busy $busy cores); going on"
}

# os_stats INDEX: OpenSearch's refresh, merge and indexing counters (primaries)
os_stats() {
	curl -s "$url/$1/_stats/refresh,merge,indexing" |
		jq -c '._all.primaries | {refreshes: .refresh.total, merges: .merges.total, indexed: .indexing.index_total}' 2>/dev/null ||
		echo '{}'
}
flusso_batches() {
	[ "$1" = flusso ] && sql -c "SELECT batches FROM flusso.status WHERE database = current_database()" 2>/dev/null || echo 0
}

# latency_step TOOL INDEX RATE ("probe": markers alone, at a rate the tool
# takes easily; otherwise RATE commits/s in all, pgbench making up the rest)
latency_step() {
	local tool=$1 index=$2 rate=$3 t0 dr pgb prate=$PROBE_RATE psecs=$LAT_S bgpid=""
	local s0 s1 b0 b1
	drain "$tool" "$index" >/dev/null
	wait_quiet
	s0=$(os_stats "$index")
	b0=$(flusso_batches "$tool")
	t0=$(now)
	if [ "$rate" = probe ]; then
		# one marker first; then at most PROBE_IDLE_RATE/s and at most a fifth of 1/its delay
		local first
		first=$(bench sentinel --dsn "$(dsn)" --url "$url" --index "$index" --id "$SENTINEL" --timeout 120 | jq -r '.visible_s // 1')
		prate=$(awk -v r="$PROBE_IDLE_RATE" -v l="$first" 'BEGIN { x = 0.2 / (l > 0.001 ? l : 0.001); if (x > r) x = r; if (x < 0.1) x = 0.1; printf "%.2f", x }')
		psecs=$(awk -v d="$LAT_S" -v r="$prate" 'BEGIN { x = 6 / r; if (x > 60) x = 60; if (x < d) x = d; printf "%d", x }')
	else
		"$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$port" -U postgres -c 4 -j 2 -R "$((rate - PROBE_RATE))" -T "$LAT_S" \
			-f "$here/latency_load.sql" -D n="$LOAD_N" -D items="$ITEMS" "$DB" >"$logs/pgbench-$tool-$rate.log" 2>&1 &
		bgpid=$!
		pids+=($bgpid)
	fi
	bench probe --dsn "$(dsn)" --url "$url" --index "$index" --rate "$prate" --seconds "$psecs" \
		--first-user "$PROBE_FIRST" --users 500 --timeout 30 --samples "$logs/probes-$tool-$rate.json" \
		>"$logs/probe-$tool-$rate.json"
	pgb=0
	if [ -n "$bgpid" ]; then
		wait "$bgpid" || true
		pgb=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$logs/pgbench-$tool-$rate.log" | head -n 1)
		pgb=${pgb:-0}
	fi
	s1=$(os_stats "$index")
	b1=$(flusso_batches "$tool")
	dr=$(drain "$tool" "$index")
	# refreshes: a realtime GET of a document indexed since the last refresh
	# makes OpenSearch refresh the shard, so the probes themselves cause some
	jq --argjson bg "$pgb" --argjson drain "$dr" --arg rate "$rate" --argjson cpu "$(cpu_of "$t0" "$(now)")" \
		--argjson s0 "$s0" --argjson s1 "$s1" --argjson b "$((${b1:-0} - ${b0:-0}))" \
		'. + {target_rate: $rate, background_tps: $bg, commit_rate: ($bg + .probe_rate), drain_s: $drain, cpu: $cpu,
		      os_refreshes: (($s1.refreshes // 0) - ($s0.refreshes // 0)), os_merges: (($s1.merges // 0) - ($s0.merges // 0)),
		      os_indexed: (($s1.indexed // 0) - ($s0.indexed // 0)), tool_batches: $b}' \
		"$logs/probe-$tool-$rate.json" | put "latency.$tool.r$rate"
	note "$rate: $(jq -r '"\(.probes) probes at \(.probe_rate)/s, p50 \(.p50_ms) ms, p95 \(.p95_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms, timeouts \(.timeouts)"' "$logs/probe-$tool-$rate.json"); background $pgb commits/s; drained in $dr s"
	# fell behind: a probe timed out, the delay kept growing, or no catch-up
	if jq -e '.timeouts > 0 or ((.p50_second_half_ms // 0) > 2 * (.p50_first_half_ms // 0) + 1000)' \
		"$logs/probe-$tool-$rate.json" >/dev/null || [ "$dr" = -1 ]; then
		return 1
	fi
}

# latency_rates TOOL INDEX: each fixed commit rate the tool can take
latency_rates() {
	local tool=$1 index=$2 sustained rate behind=0
	sustained=$(jq -r ".live.$tool.sustained_per_s // 0" "$results")
	log "$tool latency at fixed commit rates ($RATES): probes commit markers and read them back with realtime _mget every 5 ms"
	for rate in $RATES; do
		local why=""
		if [ "$(jq -r ".live.$tool.drain_s" "$results")" = -1 ]; then
			why="not run: $tool had not caught up with the live phase after ${DRAIN_MAX} s"
		elif [ "$behind" = 1 ]; then
			why="not run: $tool fell behind at a lower rate"
		elif awk -v r="$rate" -v s="$sustained" 'BEGIN { exit !(r > 1.5 * s) }'; then
			why="not run: above 1.5 x the $(printf %.0f "$sustained") changes/s $tool sustained"
		fi
		if [ -n "$why" ]; then
			jq -n --arg why "$why" '{skipped: $why}' | put "latency.$tool.r$rate"
			note "$rate commits/s: $why"
			continue
		fi
		latency_step "$tool" "$index" "$rate" || behind=1
	done
}

flusso_footprint() {
	local rows t0 t1 t2 b0 b1 c0 c1
	rows=$((FOOT_ROWS < ITEMS ? FOOT_ROWS : ITEMS))
	log "flusso footprint: one UPDATE of $rows order_items rows; peak RSS of the worker"
	flusso_wait_worker
	sql -c "SELECT flusso.wait_synced('${DRAIN_MAX} s')" >/dev/null
	echo 5 >"/proc/$W/clear_refs"   # resets VmHWM to the current RSS
	local before
	before=$(bench peak-rss "$W")
	b0=$(sql -c "SELECT documents_built FROM flusso.status WHERE database = current_database()")
	c0=$(sql -c "SELECT changes_captured FROM flusso.status WHERE database = current_database()")
	local g0 g1
	g0=$(sql -c "SELECT generation FROM flusso.index_status WHERE name = 'users'")
	t0=$(now)
	sql -c "UPDATE order_items SET qty = qty + 1 WHERE id <= $rows" >/dev/null
	t1=$(now)
	sql -c "SELECT flusso.wait_synced('30 min')" >/dev/null
	t2=$(now)
	local after
	after=$(bench peak-rss "$W")
	b1=$(sql -c "SELECT documents_built FROM flusso.status WHERE database = current_database()")
	c1=$(sql -c "SELECT changes_captured FROM flusso.status WHERE database = current_database()")
	g1=$(sql -c "SELECT generation FROM flusso.index_status WHERE name = 'users'")
	local rebuilt=0
	[ "$g1" != "$g0" ] && rebuilt=$(sql -c "SELECT backfill_rows_done FROM flusso.index_status WHERE name = 'users'")
	jq -n --argjson g0 "$g0" --argjson g1 "$g1" --argjson rebuilt "${rebuilt:-0}" \
		--argjson rows "$rows" --argjson up "$(sub "$t0" "$t1")" --argjson proc "$(sub "$t1" "$t2")" \
		--argjson docs $((b1 - b0)) --argjson changes $((c1 - c0)) --argjson before "$before" --argjson after "$after" \
		--argjson cpu "$(cpu_of "$t0" "$t2")" --arg pid "$W" \
		'{rows: $rows, update_s: $up, sync_after_commit_s: $proc, documents_built: $docs, changes_captured: $changes,
		  generation_before: $g0, generation_after: $g1, rebuilt_documents: $rebuilt,
		  handled_as: (if $g1 != $g0 then "a rebuild into a new generation" else "live batches" end),
		  worker_pid: $pid, before: $before.sum_kb, after: $after.sum_kb,
		  vmhwm_mb: ($after.sum_kb.VmHWM / 1024), cpu: $cpu}' | put footprint.flusso
	note "UPDATE took $(sub "$t0" "$t1") s, flusso synced it $(sub "$t1" "$t2") s after the commit ($((b1 - b0)) documents built live, generation $g0 -> $g1, $rebuilt rebuilt); worker VmHWM $(jq -r '.sum_kb.VmHWM / 1024 | floor' <<<"$after") MB"
}

flusso_off() {
	log "flusso off (drop its indexes, stop its worker, drop its slot), VACUUM"
	sql -c "SELECT flusso.drop_index('users', true)" >/dev/null
	sql -c "SELECT flusso.wait_synced('60 s')" >/dev/null || true
	sql -c "ALTER SYSTEM SET flusso.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 100); do
		[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'flusso sync'")" = 0 ] && break
		sleep 0.1
	done
	sql -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'flusso%' AND NOT active" >/dev/null
	sql -c "VACUUM ANALYZE" >/dev/null
	curl -s -XDELETE "$url/users*" >/dev/null
}

# ---------------------------------------------------------------- PGSync

pgsync_env() {
	# PGSync reads its settings from the environment (pgsync/settings.py).
	export PG_HOST=127.0.0.1 PG_PORT=$port PG_USER=postgres
	export OPENSEARCH=true ELASTICSEARCH_HOST=127.0.0.1 ELASTICSEARCH_PORT=${url##*:} ELASTICSEARCH_SCHEME=http
	export REDIS_HOST=127.0.0.1 REDIS_PORT=$rport REDIS_CHECKPOINT=true
	export CHECKPOINT_PATH=$dir/pgsync
	# throughput settings (the defaults are kept where the documentation gives no better value):
	export ELASTICSEARCH_TIMEOUT=120        # the default 10 s bulk timeout fails the initial sync on this machine
	export PG_WORK_MEM=16MB                  # documented for the LATERAL-join sync queries
	export POLL_TIMEOUT=0.01                 # documented: "reduce to increase throughput"
	export ELASTICSEARCH_CHUNK_SIZE=5000 ELASTICSEARCH_THREAD_COUNT=4 ELASTICSEARCH_QUEUE_SIZE=4
	export QUERY_CHUNK_SIZE=10000 NUM_WORKERS=2 REDIS_READ_CHUNK_SIZE=1000 REDIS_WRITE_CHUNK_SIZE=500
	export CONSOLE_LOGGING_HANDLER_MIN_LEVEL=WARNING
	env | grep -E '^(OPENSEARCH=|ELASTICSEARCH_|PG_WORK|POLL_|QUERY_|NUM_WORKERS|REDIS_(READ|WRITE|CHECK)|CHECKPOINT)' |
		sort | jq -R 'split("=") | {(.[0]): .[1]}' | jq -s 'add + {mode: "daemon (-d): triggers + LISTEN/NOTIFY + Redis queue"}' |
		put meta.pgsync_settings
}

pgsync_backfill() {
	local t0 t1 t2 t3
	log "PGSync bootstrap + initial sync into a fresh index \"users_pgsync\" ($N documents)"
	pgsync_env
	curl -s -XDELETE "$url/users_pgsync" >/dev/null
	t0=$(now)
	(cd "$dir/pgsync" && "$venv/bin/bootstrap" --config "$here/pgsync_schema.json") >"$logs/pgsync-bootstrap.log" 2>&1
	t1=$(now)
	(cd "$dir/pgsync" && "$venv/bin/pgsync" --config "$here/pgsync_schema.json") >"$logs/pgsync-initial.log" 2>&1
	t2=$(now)
	wait_count users_pgsync "$N" 600
	t3=$(now)
	jq -n --argjson docs "$N" --argjson boot "$(sub "$t0" "$t1")" --argjson sync "$(sub "$t1" "$t2")" \
		--argjson wall "$(sub "$t0" "$t3")" --argjson cpu "$(cpu_of "$t0" "$t3")" \
		'{docs: $docs, bootstrap_s: $boot, sync_s: $sync, wall_s: $wall, docs_per_s: ($docs / $wall), cpu: $cpu}' |
		put backfill.pgsync
	note "bootstrap $(sub "$t0" "$t1") s, initial sync $(sub "$t1" "$t2") s, searchable after $(sub "$t0" "$t3") s"
	qkey=queue:${DB}_users_pgsync
	log "starting the PGSync daemon"
	(cd "$dir/pgsync" && exec "$venv/bin/pgsync" --config "$here/pgsync_schema.json" --daemon) \
		>"$logs/pgsync-daemon.log" 2>&1 &
	echo $! >"$dir/pgsync.pid"
	for _ in $(seq 300); do grep -q "^Sync " "$logs/pgsync-daemon.log" 2>/dev/null && break; sleep 0.2; done
	sleep 3
	pgsync_base=$(bench pgsync-lag --pgsync-log "$logs/pgsync-daemon.log" | jq -r '.lag // 0')
	note "PGSync daemon up: $(bench pgsync-lag --pgsync-log "$logs/pgsync-daemon.log")"
}

pgsync_pids() { pgrep -f "$venv/bin/(pgsync|bootstrap|parallel_sync)" | tr '\n' ' '; }

pgsync_footprint() {
	local rows t0 t1 t2 left finished=false p
	rows=$((FOOT_ROWS < ITEMS ? FOOT_ROWS : ITEMS))
	log "PGSync footprint: the same UPDATE of $rows order_items rows; peak RSS of PGSync's processes (watched ${PGSYNC_WINDOW} s)"
	DRAIN_MAX=60 drain pgsync users_pgsync >/dev/null
	local pp
	pp=$(pgsync_pids)
	for p in $pp $(cat "$dir/redis/redis.pid"); do echo 5 >"/proc/$p/clear_refs"; done
	t0=$(now)
	sql -c "UPDATE order_items SET qty = qty + 1 WHERE id <= $rows" >/dev/null
	t1=$(now)
	# finished when PGSync caught up (bench.py pgsync-drain) within the window
	if bench pgsync-drain --dsn "$(dsn)" --url "$url" --index users_pgsync --id "$SENTINEL" \
		--pgsync-log "$logs/pgsync-daemon.log" --redis-port "$rport" --redis-key "$qkey" \
		--base "${pgsync_base:-0}" --timeout "$PGSYNC_WINDOW" >>"$logs/sentinel.log" 2>&1; then
		finished=true
	fi
	t2=$(now)
	left=$(redis-cli -p "$rport" llen "$qkey")
	jq -n --argjson rows "$rows" --argjson up "$(sub "$t0" "$t1")" --argjson watched "$(sub "$t1" "$t2")" \
		--argjson finished "$finished" --argjson left "$left" \
		--argjson pg "$(bench peak-rss $pp)" --argjson redis "$(bench peak-rss "$(cat "$dir/redis/redis.pid")")" \
		--argjson cpu "$(cpu_of "$t0" "$t2")" \
		'{rows: $rows, update_s: $up, watched_after_commit_s: $watched, finished: $finished, queue_left: $left,
		  pgsync: $pg.sum_kb, redis: $redis.sum_kb, vmhwm_mb: ($pg.sum_kb.VmHWM / 1024),
		  redis_vmhwm_mb: ($redis.sum_kb.VmHWM / 1024), cpu: $cpu}' | put footprint.pgsync
	note "UPDATE took $(sub "$t0" "$t1") s; after $(sub "$t1" "$t2") s PGSync finished: $finished (queue $left); VmHWM PGSync $(jq -r '.footprint.pgsync.vmhwm_mb | floor' "$results") MB, Redis $(jq -r '.footprint.pgsync.redis_vmhwm_mb | floor' "$results") MB"
}

# ---------------------------------------------------------------- scale

scale_phase() {
	log "scale: flusso backfill at N = $SCALE_N (database \"scale\")"
	df -h "$dir" | tee -a "$logs/run.log" >&2
	[ -f "$dir/pgsync.pid" ] && { kill "$(cat "$dir/pgsync.pid")" 2>/dev/null || true; rm -f "$dir/pgsync.pid"; }
	DB=postgres sql -c "DROP DATABASE IF EXISTS scale" -c "CREATE DATABASE scale" >/dev/null
	DB=postgres sql -c "ALTER SYSTEM SET flusso.database = 'scale'" -c "ALTER SYSTEM SET flusso.enabled = on" \
		-c "SELECT pg_reload_conf()" >/dev/null
	local saved=$DB
	DB=scale
	load_dataset "$SCALE_N"
	sql -c "CREATE EXTENSION IF NOT EXISTS flusso" >/dev/null
	flusso_wait_worker
	curl -s -XDELETE "$url/users*" >/dev/null
	# the node is fresh here too: warm it up with the first N users first (see 1.)
	jq '. + {filter: "id <= '"$N"'"}' test/bench/users_common_index.json >"$dir/warmup_index.json"
	flusso_backfill scale.warmup users_warmup "$dir/warmup_index.json" "$N"
	flusso_drop users_warmup
	flusso_backfill scale.flusso users test/bench/users_common_index.json "$SCALE_N"
	put scale.n "$SCALE_N"
	put scale.load_s "$LOAD_S"
	put scale.command "\"test/bench/run.sh${argv[*]:+ ${argv[*]}}\""
	put scale.date "\"$(date -u +%Y-%m-%dT%H:%MZ)\""
	DB=$saved
}

# ---------------------------------------------------------------- main

setup
[ "$scale_only" = 0 ] && record_meta
put meta.flusso_settings "$(DB=postgres sql -c "SELECT json_object_agg(name, setting) FROM pg_settings WHERE name LIKE 'flusso.%' AND name NOT LIKE '%password%'")"

if [ "$scale_only" = 0 ]; then
	DB=postgres sql -c "CREATE DATABASE $DB" >/dev/null
	load_dataset "$N"
	put meta.dataset_load_s "$LOAD_S"
	sql -c "CREATE EXTENSION flusso" >/dev/null
	flusso_wait_worker

	# 1. backfills and the raw limit.  A freshly started OpenSearch indexes
	# with cold code (its JIT compiles the indexing path as it goes): the
	# first ~200,000 documents cost it 2-2.5x the CPU of later ones, whoever
	# sends them.  The first backfill, on the cold node, is a figure of its
	# own; the comparisons are made on the warmed node, in $ROUNDS rounds of
	# flusso then the raw loader, each tool's best round kept.
	flusso_backfill backfill.flusso_cold users test/bench/users_common_index.json "$N"
	raw_export users
	raw_load raw_warmup
	for r in $(seq "$ROUNDS"); do
		flusso_drop users
		flusso_backfill "rounds.flusso.r$r" users test/bench/users_common_index.json "$N"
		raw_load "rounds.raw.r$r"
	done
	rm -f "$dir/docs.tsv"
	best_round flusso backfill.flusso
	best_round raw raw
	full_expected=$(sql -c "SELECT count(*) FROM users WHERE deleted_at IS NULL")
	flusso_backfill backfill.flusso_full users_full test/bench/users_index.json "$full_expected"
	flusso_drop users_full

	# 2. flusso live
	flusso_wait_worker
	sql -c "SELECT flusso.wait_synced('60 s')" >/dev/null
	log "flusso idle CPU (${IDLE_S} s)"
	idle_cpu idle.flusso "$IDLE_S" "$W"
	log "flusso latency with nothing else running"
	latency_step flusso users probe || true
	live_phase flusso users "$FLUSSO_LIMIT"
	latency_rates flusso users
	flusso_footprint

	# 3. PGSync
	if [ "$pgsync" = 1 ]; then
		flusso_off
		pgsync_backfill
		log "PGSync idle CPU (${IDLE_S} s; PGSync's processes, Redis separately)"
		redis_before=$(ticks "$(cat "$dir/redis/redis.pid")")
		idle_cpu idle.pgsync "$IDLE_S" $(pgsync_pids)
		put idle.redis_cpu_s "$(awk -v d=$(($(ticks "$(cat "$dir/redis/redis.pid")") - redis_before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz }')"
		log "PGSync latency with nothing else running"
		latency_step pgsync users_pgsync probe || true
		live_phase pgsync users_pgsync "$PGSYNC_LIMIT"
		latency_rates pgsync users_pgsync
		pgsync_footprint
		kill "$(cat "$dir/pgsync.pid")" 2>/dev/null || true
		rm -f "$dir/pgsync.pid"
	fi
fi

[ "$scale" = 1 ] && scale_phase

if [ "$scale_only" = 1 ]; then put scale.run_s "$(($(date +%s) - t_run0))"; else put meta.run_s "$(($(date +%s) - t_run0))"; fi
log "results"
args=(--results "$results")
[ "$write" = 1 ] && args+=(--write "$root/BENCHMARKS.md")
python3 "$here/report.py" "${args[@]}"
