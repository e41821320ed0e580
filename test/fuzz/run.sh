#!/usr/bin/env bash
# Fuzzes flusso's own parsers with libFuzzer, under AddressSanitizer (and its
# leak checker) and UndefinedBehaviorSanitizer:
#   bulkparse   src/sink/bulkparse.c with src/sink/bulk.c: OpenSearch's _bulk answers
#   defparse    src/definition/parse.c: index definitions (JSON) into the model
# Each target runs for N seconds over a scratch copy of its seed corpus
# (test/fuzz/corpus/<target>/), one after the other, one process each.  Exits
# non-zero on any crash, leak, UBSan report, timeout or out-of-memory, and
# leaves the input that caused it under the work directory.  --seconds 0 only
# replays the seeds (a quick regression check).  Installs clang if missing.
#
# Usage: test/fuzz/run.sh [--seconds N] [--target bulkparse|defparse]
#                         [--work DIR] [-- libFuzzer options...]
# Env:   FLUSSO_FUZZ_DIR (default /tmp/flusso-fuzz) is the work directory.
#        PG_CONFIG (default PostgreSQL 15's) picks the server headers and
#        libpgcommon/libpgport the targets build with; test/check.sh --pg 17
#        or 18 runs this script in the root of test/lib/pgroot.sh with that
#        version's pg_config (clang is installed there the same way).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/test/fuzz"
seconds=60
targets=(bulkparse defparse)
work=${FLUSSO_FUZZ_DIR:-/tmp/flusso-fuzz}
extra=()

while [ $# -gt 0 ]; do
	case $1 in
		--seconds) seconds=$2; shift 2 ;;
		--target)
			case $2 in
				bulkparse|defparse) targets=("$2") ;;
				*) echo "unknown target: $2 (bulkparse or defparse)" >&2; exit 2 ;;
			esac
			shift 2 ;;
		--work) work=$2; shift 2 ;;
		--) shift; extra=("$@"); break ;;
		*) sed -n '2,19p' "$0" >&2; exit 2 ;;
	esac
done
[[ $seconds =~ ^[0-9]+$ ]] || { echo "--seconds takes a whole number" >&2; exit 2; }

log() { printf '\n=== %s\n' "$*" >&2; }

# ---- tools

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
if [ ! -x "$PG_CONFIG" ] || ! pkg-config --exists json-c libcurl 2>/dev/null; then
	[ "$PG_CONFIG" = /usr/lib/postgresql/15/bin/pg_config ] ||
		{ echo "no $PG_CONFIG, or no json-c/libcurl headers: run test/install-deps.sh --pg N" >&2; exit 1; }
	"$root/test/install-deps.sh"
fi
echo "fuzz targets against $("$PG_CONFIG" --version)" >&2

# clang (or the newest clang-N, as in the root of test/lib/pgroot.sh) with
# its libFuzzer runtime: does a trivial fuzz target link?
clang() {
	local c
	c=/usr/bin/clang
	[ -x "$c" ] || c=$(ls /usr/bin/clang-[0-9]* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$c" ] || return 127
	"$c" "$@"
}
fuzzer_links() {
	clang --version >/dev/null 2>&1 || return 1
	printf '%s\n' '#include <stdint.h>' '#include <stddef.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }' |
		clang -x c -fsanitize=fuzzer,address,undefined -o "$work/probe" - >/dev/null 2>&1
}
mkdir -p "$work"
if ! fuzzer_links; then
	log "installing clang"
	sudo_cmd=""
	[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq clang llvm >/dev/null
	if ! fuzzer_links; then
		major=$(clang -dumpversion | cut -d. -f1)
		DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "libclang-rt-$major-dev" >/dev/null
	fi
	fuzzer_links || { echo "clang cannot link a libFuzzer target" >&2; exit 1; }
fi
major=$(clang -dumpversion | cut -d. -f1)
llvm_cov=$(command -v "llvm-cov-$major" || command -v llvm-cov || true)
llvm_profdata=$(command -v "llvm-profdata-$major" || command -v llvm-profdata || true)

# ---- build

srcs_bulkparse=(src/sink/bulkparse.c src/sink/bulk.c)
srcs_defparse=(src/definition/parse.c)

build() {
	local target=$1 out=$2
	shift 2
	local -n srcs="srcs_$target"
	local libdir
	libdir=$("$PG_CONFIG" --pkglibdir)
	(cd "$root" && clang -g -O1 -fno-omit-frame-pointer "$@" \
		-Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
		-Wno-sign-compare -Wno-ignored-attributes -Werror \
		-Isrc -I"$("$PG_CONFIG" --includedir-server)" \
		$(pkg-config --cflags json-c libcurl) \
		"${srcs[@]}" test/fuzz/pgshim.c "test/fuzz/fuzz_$target.c" \
		"$libdir/libpgcommon.a" "$libdir/libpgport.a" $(pkg-config --libs json-c) \
		-o "$out")
}

mkdir -p "$work/bin"
for t in "${targets[@]}"; do
	log "building fuzz_$t"
	build "$t" "$work/bin/fuzz_$t" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	if [ -n "$llvm_cov" ] && [ -n "$llvm_profdata" ]; then
		build "$t" "$work/bin/cov_$t" -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping
	fi
done

# ---- run

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()

for t in "${targets[@]}"; do
	corpus="$work/corpus/$t"
	artifacts="$work/artifacts/$t"
	rm -rf "$corpus" "$artifacts"
	mkdir -p "$corpus" "$artifacts" "$work/log"
	cp "$here/corpus/$t/"* "$corpus/"
	seeds=$(ls "$corpus" | wc -l)
	if [ "$seconds" = 0 ]; then
		log "fuzz_$t: replaying $seeds seeds"
		limit=(-runs=0)
	else
		log "fuzz_$t: $seconds s over $seeds seeds"
		limit=(-max_total_time="$seconds")
	fi
	status=0
	(cd "$artifacts" && nice -n 10 "$work/bin/fuzz_$t" "${limit[@]}" \
		-timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
		-dict="$here/$t.dict" -artifact_prefix="$artifacts/" ${extra[@]+"${extra[@]}"} \
		"$corpus") >"$work/log/$t.log" 2>&1 || status=$?

	done_line=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$work/log/$t.log" | tail -n 1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log/$t.log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log/$t.log" | tail -n 1)
	cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\/[0-9a-zA-Z]*\).*/edges \1, features \2, corpus \3/p' <<<"$done_line")
	found=$(ls "$artifacts" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
	if [ "$status" != 0 ] || [ -n "$found" ] ||
		grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$work/log/$t.log"; then
		failed+=("$t")
		log "fuzz_$t FAILED (exit $status); log: $work/log/$t.log"
		grep -E -A40 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|^fuzz_|^pgshim' \
			"$work/log/$t.log" | head -n 80 >&2 || tail -n 40 "$work/log/$t.log" >&2
		for f in $found; do
			echo "input: $artifacts/$f" >&2
			echo "  replay: $work/bin/fuzz_$t $artifacts/$f" >&2
		done
	fi
	line="fuzz_$t: ${execs:-?} executions in ${seconds} s (${rate:-?}/s); $cov"

	# line coverage of the code under test, over the final corpus
	if [ -x "$work/bin/cov_$t" ]; then
		rm -f "$work/cov_$t".prof*
		LLVM_PROFILE_FILE="$work/cov_$t.profraw" "$work/bin/cov_$t" -runs=0 "$corpus" \
			>/dev/null 2>&1 || true
		if [ -f "$work/cov_$t.profraw" ]; then
			"$llvm_profdata" merge -sparse "$work/cov_$t.profraw" -o "$work/cov_$t.profdata"
			declare -n cov_srcs="srcs_$t"
			report=$(cd "$root" && "$llvm_cov" report "$work/bin/cov_$t" \
				-instr-profile="$work/cov_$t.profdata" "${cov_srcs[@]}")
			echo "$report" >"$work/log/$t.coverage"
			lines=$(awk '$1 ~ /\.c$/ { n = split($1, p, "/"); printf "%s%s lines %s, branches %s", sep, p[n], $(NF-3), $NF; sep="; " }' \
				<<<"$report")
			line="$line; $lines"
		fi
	fi
	summary+=("$line")
done

log "summary"
printf '%s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]} (inputs under $work/artifacts)" >&2
	exit 1
fi
echo "no crash, leak, undefined behaviour or timeout" >&2
