#!/usr/bin/env bash
# Runs every flusso test against a real PostgreSQL (15 unless --pg) and a real OpenSearch:
#   0. layers      (test/layers.py)                no circle between the source
#      files, and each folder of src/ uses only the layers below it
#   1. pg_regress  (sql/*.sql vs expected/*.out)   the stable SQL surface
#   2. pgTAP       (test/pgtap/*.sql, pg_prove)    the SQL API and its errors
#   3. Perl TAP    (test/t/*.pl, prove)            lifecycle and end to end
#   4. fault suite (test/fault/t/*.pl, prove)      faults under load, each
#      scenario once (FLUSSO_FAULT_MODE=full: test/fault/run.sh), after the
#      fault proxy's and the auth proxy's own tests (test/faultproxy/selftest.py,
#      test/authproxy/selftest.py)
#   5. fuzzing     (test/fuzz/run.sh)              the _bulk answer and the
#      definition parsers, 30 s each under ASan/UBSan (FLUSSO_FUZZ_SECONDS)
#   6. Perl TAP again with flusso.so built under AddressSanitizer (test/asan.sh)
# It installs what it needs (Debian packages, Maven jars), builds with
# -Werror, starts the servers, and exits non-zero if any test fails.
#
# Usage: test/check.sh [--pg 15|17|18] [--engine ENGINE[:VERSION]]
#                      [--only layers|regress|pgtap|tap|fault|fuzz|asan|e2e] [TAP test files...]
#   --engine  the search engine to test against (test/opensearch/opensearch.sh
#           engines): opensearch:2.19.6 (default), opensearch:3.3.0,
#           elasticsearch:8.17.0; the same as FLUSSO_ENGINE.
#   --only e2e  the end-to-end TAP tests (end_to_end_tap_files: sync,
#           failure policies, reindex with alias swap, dead letters, the
#           engines) and then the short fault suite: what CI runs on the
#           engines other than the one it runs everything on.
#   --pg N  PostgreSQL N (default 15).  17 and 18 run in a Debian root of
#           their own (test/lib/pgroot.sh; test/install-deps.sh --pg N makes
#           it): flusso is built, installed and tested there, OpenSearch
#           stays on the host.  fuzz and asan are PostgreSQL 15's only
#           (skipped on 17 and 18).
# Env:   FLUSSO_TEST_DIR (default /tmp/flusso-check, /tmp/flusso-check-N for
#        --pg N but 15), KEEP=1 keeps servers up.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

only=""
PG_MAJOR=15
while [ $# -gt 0 ]; do
	case $1 in
	--only) [ $# -ge 2 ] || { echo "check.sh: --only needs a layer" >&2; exit 2; }
		only=$2; shift 2 ;;
	--pg) [ $# -ge 2 ] || { echo "check.sh: --pg needs a version" >&2; exit 2; }
		PG_MAJOR=$2; shift 2 ;;
	--engine) [ $# -ge 2 ] || { echo "check.sh: --engine needs ENGINE[:VERSION]" >&2; exit 2; }
		export FLUSSO_ENGINE=$2; shift 2 ;;
	*) break ;;
	esac
done
tap_files=("$@")
case $only in
"" | layers | regress | pgtap | tap | fault | fuzz | asan | e2e) ;;
*) echo "check.sh: unknown layer \"$only\" (layers, regress, pgtap, tap, fault, fuzz, asan or e2e)" >&2; exit 2 ;;
esac
case $PG_MAJOR in 15 | 17 | 18) ;; *) echo "check.sh: PostgreSQL $PG_MAJOR is not supported (15, 17, 18)" >&2; exit 2 ;; esac
export PG_MAJOR
source test/lib/pg.sh

# The TAP files that run end to end against the search engine, each
# engine-agnostic: sync, failure policies and dead letters, reindex with
# the alias swap, the engines themselves (detection, refusal, vectors).
end_to_end_tap_files() {
	printf '%s\n' test/t/002_sync.pl test/t/003_failures.pl test/t/005_reindex.pl test/t/016_engines.pl
}

default_work=/tmp/flusso-check
[ "$PG_MAJOR" = 15 ] || default_work=/tmp/flusso-check-$PG_MAJOR
work=${FLUSSO_TEST_DIR:-$default_work}
failed=()

log() { printf '\n=== %s\n' "$*" >&2; }

# what runs only on PostgreSQL 15: the fuzzers build against 15's headers,
# asan.sh makes a private copy of 15's installation
if [ "$PG_MAJOR" != 15 ]; then
	case $only in
	fuzz | asan) echo "check.sh: --only $only runs on PostgreSQL 15 only" >&2; exit 2 ;;
	"") echo "check.sh: PostgreSQL $PG_MAJOR: fuzz and asan are skipped (15 only)" >&2 ;;
	esac
fi

cleanup() {
	[ "${KEEP:-0}" = 1 ] && return
	pg_cluster_stop "$work/pg" immediate || true
	as_pg test/opensearch/opensearch.sh stop --dir "$work/opensearch" >/dev/null 2>&1 || true
}

log "installing dependencies"
test/install-deps.sh --pg "$PG_MAJOR"

if [ -z "$only" ] || [ "$only" = layers ]; then
	log "layers of the sources"
	python3 test/layers.py || failed+=(layers)
	if [ "$only" = layers ]; then
		[ ${#failed[@]} -eq 0 ] || exit 1
		exit 0
	fi
fi

log "building flusso for PostgreSQL $PG_MAJOR (-Werror)"
pg_exec make -s clean PG_CONFIG="$PG_CONFIG"
pg_exec make -s WERROR=1 PG_CONFIG="$PG_CONFIG" 2>&1 | tee "$work.build.log" >&2 || true
if grep -q "warning:" "$work.build.log" || [ ! -f flusso.so ]; then
	echo "build failed or printed warnings" >&2
	exit 1
fi
pg_exec make -s install PG_CONFIG="$PG_CONFIG"

# a previous run's servers, if any are left
pg_cluster_stop "$work/pg" immediate >/dev/null 2>&1 || true
as_pg test/opensearch/opensearch.sh stop --dir "$work/opensearch" >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work"
chmod 0777 "$work"
trap cleanup EXIT

log "starting the search engine (${FLUSSO_ENGINE:-opensearch:2.19.6})"
# built as root, run as postgres: the TAP tests (which run as postgres)
# stop, kill and restart it to inject faults
test/opensearch/opensearch.sh build
url=$(as_pg test/opensearch/opensearch.sh start --dir "$work/opensearch")
echo "$(cat "$work/opensearch/engine") at $url" >&2

log "starting PostgreSQL"
port=$(free_port)
pg_cluster_start "$work/pg" "$port" \
	"flusso.database = 'flusso_test'" \
	"flusso.opensearch_url = '$url'"
pg_psql "$work/pg" "$port" -c "CREATE DATABASE flusso_test"
export PGHOST="$work/pg" PGPORT="$port" PGUSER=postgres
for _ in $(seq 100); do
	[ "$(pg_psql "$work/pg" "$port" -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'flusso sync'")" = 1 ] && break
	sleep 0.1
done

if [ -z "$only" ] || [ "$only" = regress ]; then
	log "pg_regress"
	mkdir -p build/regress
	if ! pg_exec make -s installcheck PG_CONFIG="$PG_CONFIG"; then
		failed+=(regress)
		[ -f build/regress/regression.diffs ] && head -n 200 build/regress/regression.diffs >&2
	fi
fi

if [ -z "$only" ] || [ "$only" = pgtap ]; then
	log "pgTAP"
	pg_psql "$work/pg" "$port" -c "CREATE DATABASE flusso_tap"
	pg_psql "$work/pg" "$port" -d flusso_tap -c "CREATE EXTENSION pgtap"
	pg_exec pg_prove --ext .sql -d flusso_tap test/pgtap/ || failed+=(pgtap)
fi

# prove, as postgres, over TAP files (relative to the root)
run_prove() {
	local dir=$1
	shift
	local abs=()
	for f in "$@"; do abs+=("$root/$f"); done
	mkdir -p "$dir"
	chown postgres:postgres "$dir" 2>/dev/null || true
	(cd "$dir" && as_pg bash -c 'ulimit -c unlimited 2>/dev/null; exec "$@"' - env \
		PERL5LIB="$root/test/perl:$PG_PGXS/src/test/perl" \
		TESTDIR="$dir" FLUSSO_ROOT="$root" FLUSSO_OPENSEARCH_URL="$url" \
		PG_REGRESS="$PG_PGXS/src/test/regress/pg_regress" \
		FLUSSO_OPENSEARCH_DIR="$work/opensearch" \
		FLUSSO_FAULT_MODE="${FLUSSO_FAULT_MODE:-short}" FLUSSO_ASAN="${FLUSSO_ASAN:-}" \
		FLUSSO_FAULT_RESULTS="${FLUSSO_FAULT_RESULTS:-$dir/fault-results.jsonl}" \
		prove --timer "${abs[@]}")
}

if [ -z "$only" ] || [ "$only" = tap ]; then
	log "Perl TAP"
	[ ${#tap_files[@]} -gt 0 ] || tap_files=(test/t/*.pl)
	run_prove "$work/tap" "${tap_files[@]}" || failed+=(tap)
fi

if [ "$only" = e2e ]; then
	log "end-to-end TAP on $(cat "$work/opensearch/engine")"
	started=$SECONDS
	mapfile -t files < <(end_to_end_tap_files)
	run_prove "$work/tap" "${files[@]}" || failed+=(e2e-tap)
	log "the end-to-end TAP tests took $((SECONDS - started)) s"
	started=$SECONDS
	mapfile -t files < <(printf '%s\n' test/fault/t/*.pl)
	FLUSSO_FAULT_MODE=short run_prove "$work/fault" "${files[@]}" || failed+=(e2e-fault)
	log "the short fault suite took $((SECONDS - started)) s"
fi

if [ -z "$only" ] || [ "$only" = fault ]; then
	log "the fault proxy's own tests"
	python3 test/faultproxy/selftest.py || failed+=(faultproxy)
	log "the auth proxy's own tests"
	python3 test/authproxy/selftest.py || failed+=(authproxy)
	log "fault suite (${FLUSSO_FAULT_MODE:-short})"
	files=("${tap_files[@]}")
	[ -n "$only" ] && [ ${#files[@]} -gt 0 ] || files=(test/fault/t/*.pl)
	run_prove "$work/fault" "${files[@]}" || failed+=(fault)
	[ -f "$work/fault/fault-results.jsonl" ] && perl test/fault/report.pl "$work/fault/fault-results.jsonl" >&2
fi

if { [ -z "$only" ] && [ "$PG_MAJOR" = 15 ]; } || [ "$only" = fuzz ]; then
	log "fuzzing"
	test/fuzz/run.sh --seconds "${FLUSSO_FUZZ_SECONDS:-30}" --work "$work/fuzz" || failed+=(fuzz)
fi

if { [ -z "$only" ] && [ "$PG_MAJOR" = 15 ]; } || [ "$only" = asan ]; then
	log "Perl TAP under AddressSanitizer"
	FLUSSO_ASAN_DIR="$work/asan" test/asan.sh || failed+=(asan)
fi

if [ ${#failed[@]} -gt 0 ]; then
	log "FAILED on PostgreSQL $PG_MAJOR: ${failed[*]} (logs under $work)"
	exit 1
fi
log "all tests passed on PostgreSQL $PG_MAJOR"
