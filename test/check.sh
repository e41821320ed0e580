#!/usr/bin/env bash
# Runs every flusso test against a real PostgreSQL (15 unless --pg) and a real OpenSearch:
#   0. layers      (test/layers.py)                no circle between the source
#      files, and each folder of src/ uses only the layers below it
#   1. pg_regress  (sql/*.sql vs expected/*.out)   the stable SQL surface
#   2. pgTAP       (test/pgtap/*.sql, pg_prove)    the SQL API and its errors
#   3. Perl TAP    (test/t/*.pl, prove)            lifecycle and end to end,
#      pg_upgrade from older versions (17 and 18), standbys and failover
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
#                      [--only LAYER[,LAYER...]] [test files...]
#        test/check.sh --matrix
#   --pg N     PostgreSQL N (default 15).  17 and 18 run in a Debian root of
#              their own (test/lib/pgroot.sh; test/install-deps.sh --pg N makes
#              it): flusso is built, installed and tested there, the search
#              engine stays on the host.
#   --engine E the search engine to test against (test/opensearch/opensearch.sh
#              engines): opensearch:2.19.6 (default), opensearch:3.3.0,
#              elasticsearch:8.17.0; the same as FLUSSO_ENGINE.
#   --only L   the layers named (layers, regress, pgtap, tap, fault, fuzz,
#              asan, e2e), comma-separated; all but e2e without it.  e2e is
#              the end-to-end TAP files alone (end_to_end_tap_files: sync,
#              failure policies and dead letters, reindex with the alias
#              swap, the engines); "--only e2e,fault" adds the short fault
#              suite: what an engine other than the default is tested with.
#   files      test/t/*.pl files for the TAP layer, test/fault/t/*.pl files
#              for the fault suite; a layer given none runs all of its own.
#   --matrix   what CI runs (run_matrix below): every layer on PostgreSQL 18,
#              the newest, then regress, pgTAP and TAP on 15 and 17, then the
#              end-to-end TAP files on Elasticsearch 8.17 and OpenSearch 3.3;
#              each run in its own work directory (FLUSSO_TEST_DIR-N...),
#              with its time, and a summary at the end.
#              FLUSSO_LOCK_INSTALLS=1 takes /tmp/flusso-pgN.lock (flock)
#              around each version's run, for a machine where others
#              install flusso into the same PostgreSQL.
# Env:   FLUSSO_TEST_DIR (default /tmp/flusso-check, /tmp/flusso-check-N for
#        --pg N but 15), KEEP=1 keeps servers up.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

only=""
matrix=0
PG_MAJOR=15
while [ $# -gt 0 ]; do
	case $1 in
	--only) [ $# -ge 2 ] || { echo "check.sh: --only needs a layer" >&2; exit 2; }
		only=$2; shift 2 ;;
	--pg) [ $# -ge 2 ] || { echo "check.sh: --pg needs a version" >&2; exit 2; }
		PG_MAJOR=$2; shift 2 ;;
	--engine) [ $# -ge 2 ] || { echo "check.sh: --engine needs ENGINE[:VERSION]" >&2; exit 2; }
		export FLUSSO_ENGINE=$2; shift 2 ;;
	--matrix) matrix=1; shift ;;
	*) break ;;
	esac
done
# test files go to the layer of their folder: test/fault/t/ to the fault
# suite, the others to the Perl TAP suite; a layer given none runs all its own
tap_files=() fault_files=()
for f in "$@"; do
	case $f in */fault/t/* | fault/t/*) fault_files+=("$f") ;; *) tap_files+=("$f") ;; esac
done
for layer in ${only//,/ }; do
	case $layer in
	layers | regress | pgtap | tap | fault | fuzz | asan | e2e) ;;
	*) echo "check.sh: unknown layer \"$layer\" (layers, regress, pgtap, tap, fault, fuzz, asan or e2e)" >&2; exit 2 ;;
	esac
done
case $PG_MAJOR in 15 | 17 | 18) ;; *) echo "check.sh: PostgreSQL $PG_MAJOR is not supported (15, 17, 18)" >&2; exit 2 ;; esac

# --matrix, what CI runs: this script once per line of the table, each in
# its own work directory, and a summary of the verdicts and times.  The
# newest PostgreSQL runs every layer on the default engine (the layers
# check does not depend on the version); the others regress, pgTAP and
# TAP; the other engines the end-to-end TAP files (their short fault
# suite, --only e2e,fault, is run by hand: TESTING.md gives its times).
run_matrix() {
	local base=${FLUSSO_TEST_DIR:-/tmp/flusso-check}
	local runs=(
		# PostgreSQL  layers (-: all)       engine (-: the default)
		"18 - -"
		"15 regress,pgtap,tap -"
		"17 regress,pgtap,tap -"
		"15 e2e elasticsearch:8.17.0"
		"17 e2e opensearch:3.3.0"
	)
	local run v layers engine name t verdict status=0 t0=$SECONDS summary=() cmd
	for run in "${runs[@]}"; do
		read -r v layers engine <<<"$run"
		[ "$layers" != - ] || layers=""
		[ "$engine" != - ] || engine=""
		name=$v${engine:+-${engine%%:*}}
		t=$SECONDS
		printf '\n##### PostgreSQL %s: %s on %s\n' "$v" "${layers:-every layer}" "${engine:-the default engine}" >&2
		cmd=(env FLUSSO_TEST_DIR="$base-$name" "$0" --pg "$v")
		[ -z "$layers" ] || cmd+=(--only "$layers")
		[ -z "$engine" ] || cmd+=(--engine "$engine")
		[ "${FLUSSO_LOCK_INSTALLS:-0}" != 1 ] || cmd=(flock -o "/tmp/flusso-pg$v.lock" "${cmd[@]}")
		if "${cmd[@]}"; then verdict=passed; else verdict=FAILED; status=1; fi
		summary+=("$(printf 'PostgreSQL %s  %-20s %-22s %s in %d min %02d s' "$v" "${layers:-all}" \
			"${engine:-opensearch:2.19.6}" "$verdict" $(((SECONDS - t) / 60)) $(((SECONDS - t) % 60)))")
	done
	printf '\n=== the matrix, in %d min %02d s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) >&2
	printf '%s\n' "${summary[@]}" >&2
	return "$status"
}

if [ "$matrix" = 1 ]; then
	[ -z "$only" ] && [ $# = 0 ] ||
		{ echo "check.sh: --matrix takes no --only and no TAP files" >&2; exit 2; }
	run_matrix
	exit
fi

export PG_MAJOR
source test/lib/pg.sh

# The TAP files that run end to end against the search engine, each
# engine-agnostic: sync, failure policies and dead letters, reindex with
# the alias swap, the engines themselves (detection, refusal, vectors),
# authentication through the verifying proxy in front of the engine.
end_to_end_tap_files() {
	printf '%s\n' test/t/002_sync.pl test/t/003_failures.pl test/t/005_reindex.pl test/t/016_engines.pl \
		test/t/017_auth.pl
}

# Is layer $1 to run?  (e2e only when named: the TAP layer holds its files)
wanted() {
	if [ -z "$only" ]; then [ "$1" != e2e ]; else [[ ",$only," == *",$1,"* ]]; fi
}

default_work=/tmp/flusso-check
[ "$PG_MAJOR" = 15 ] || default_work=/tmp/flusso-check-$PG_MAJOR
work=${FLUSSO_TEST_DIR:-$default_work}
failed=()

log() { printf '\n=== %s\n' "$*" >&2; }

cleanup() {
	[ "${KEEP:-0}" = 1 ] && return
	pg_cluster_stop "$work/pg" immediate || true
	as_pg test/opensearch/opensearch.sh stop --dir "$work/opensearch" >/dev/null 2>&1 || true
}

if wanted layers; then
	log "layers of the sources"
	python3 test/layers.py || failed+=(layers)
	if [ "$only" = layers ]; then
		[ ${#failed[@]} -eq 0 ] || exit 1
		exit 0
	fi
fi

log "installing dependencies"
deps=(--pg "$PG_MAJOR")
! wanted fuzz || deps+=(--fuzz)
test/install-deps.sh "${deps[@]}"
# pg_upgrade from 17 to 18 needs 17 beside 18 (from 15: the root sees the host's)
[ "$PG_MAJOR" != 18 ] || ! wanted tap || test/install-deps.sh --pg 17

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

# 016_engines.pl tests k-NN search on OpenSearch with the k-NN plugin, in a node of its own: built here, as root
# (the plugin from Maven Central); when it cannot be had, the test says why and skips that part
knn_unavailable=""
if [[ "$(cat "$work/opensearch/engine")" == opensearch:* ]] && { wanted tap || wanted e2e; }; then
	if ! test/opensearch/opensearch.sh build --plugins knn 2>"$work.knn-build.log"; then
		knn_unavailable="building OpenSearch with the k-NN plugin failed: $(grep -m 1 'error:' "$work.knn-build.log" || tail -n 1 "$work.knn-build.log")"
		echo "$knn_unavailable" >&2
	fi
fi

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

if wanted regress; then
	log "pg_regress"
	mkdir -p build/regress
	if ! pg_exec make -s installcheck PG_CONFIG="$PG_CONFIG"; then
		failed+=(regress)
		[ -f build/regress/regression.diffs ] && head -n 200 build/regress/regression.diffs >&2
	fi
fi

if wanted pgtap; then
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
		FLUSSO_KNN_UNAVAILABLE="$knn_unavailable" \
		FLUSSO_FAULT_MODE="${FLUSSO_FAULT_MODE:-short}" FLUSSO_ASAN="${FLUSSO_ASAN:-}" \
		FLUSSO_FAULT_RESULTS="${FLUSSO_FAULT_RESULTS:-$dir/fault-results.jsonl}" \
		FLUSSO_PG_MAJOR="$PG_MAJOR" \
		FLUSSO_PG15_INSTALL="${FLUSSO_PG15_INSTALL:-}" FLUSSO_PG17_INSTALL="${FLUSSO_PG17_INSTALL:-}" \
		prove --timer "${abs[@]}")
}

# The older versions the pg_upgrade tests start from, each a private copy
# with this tree's flusso (test/lib/pgprivate.sh): FLUSSO_PG<N>_INSTALL.
# FLUSSO_UPGRADE_FROM_SOURCE=DIR builds the old side's flusso from another
# tree (an older commit, to see what a fix changes).
upgrade_sources() {
	local v dest src=${FLUSSO_UPGRADE_FROM_SOURCE:-$root}
	for v in 15 17; do
		[ "$v" -lt "$PG_MAJOR" ] || continue
		dest=$work/pg$v-private
		log "PostgreSQL $v with the flusso of $src, for pg_upgrade to $PG_MAJOR ($dest)"
		pg_exec bash -c 'source test/lib/pgprivate.sh && pg_private_tree "$1" "$2" && pg_private_flusso "$1" "$3" "$2"' \
			- "$v" "$dest" "$src" || return 1
		export "FLUSSO_PG${v}_INSTALL=$dest/usr/lib/postgresql/$v"
	done
}

if wanted tap; then
	log "Perl TAP"
	[ ${#tap_files[@]} -gt 0 ] || tap_files=(test/t/*.pl)
	if [[ " ${tap_files[*]}" == *upgrade* ]] && [ "$PG_MAJOR" != 15 ]; then
		upgrade_sources || failed+=(upgrade-sources)
	fi
	run_prove "$work/tap" "${tap_files[@]}" || failed+=(tap)
fi

if wanted e2e; then
	log "end-to-end TAP on $(cat "$work/opensearch/engine")"
	mapfile -t files < <(end_to_end_tap_files)
	run_prove "$work/tap" "${files[@]}" || failed+=(e2e)
fi

if wanted fault; then
	log "the fault proxy's own tests"
	python3 test/faultproxy/selftest.py || failed+=(faultproxy)
	log "the auth proxy's own tests"
	python3 test/authproxy/selftest.py || failed+=(authproxy)
	log "fault suite (${FLUSSO_FAULT_MODE:-short})"
	[ ${#fault_files[@]} -gt 0 ] || fault_files=(test/fault/t/*.pl)
	run_prove "$work/fault" "${fault_files[@]}" || failed+=(fault)
	[ -f "$work/fault/fault-results.jsonl" ] && perl test/fault/report.pl "$work/fault/fault-results.jsonl" >&2
fi

if wanted fuzz; then
	log "fuzzing (PostgreSQL $PG_MAJOR's headers and libpgcommon)"
	pg_exec env PG_CONFIG="$PG_CONFIG" test/fuzz/run.sh --seconds "${FLUSSO_FUZZ_SECONDS:-30}" \
		--work "$work/fuzz" || failed+=(fuzz)
fi

if wanted asan; then
	log "Perl TAP under AddressSanitizer"
	FLUSSO_ASAN_DIR="$work/asan" test/asan.sh --pg "$PG_MAJOR" || failed+=(asan)
fi

if [ ${#failed[@]} -gt 0 ]; then
	log "FAILED on PostgreSQL $PG_MAJOR: ${failed[*]} (logs under $work)"
	exit 1
fi
log "all tests passed on PostgreSQL $PG_MAJOR"
