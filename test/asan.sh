#!/usr/bin/env bash
# Runs the Perl TAP suite (test/check.sh --only tap) with flusso.so built
# under AddressSanitizer, and fails if any PostgreSQL process reported an
# error (the reports are printed) or a test failed.  Tests that cannot hold
# under AddressSanitizer (004_crash.pl's bound on the worker's peak RSS) see
# FLUSSO_ASAN=1 and skip.
#
# The instrumented flusso.so never replaces the installed one (a server
# started without libasan preloaded cannot load it, and other servers on
# the machine load $libdir/flusso.so).  It goes into a private copy of the
# PostgreSQL N installation under the work directory instead
# (test/lib/pgprivate.sh), with this tree's SQL scripts:
#   inst/usr/lib/postgresql/N/bin/postgres       a wrapper that preloads
#                       libasan (gcc's, the one flusso.so links) and
#                       asan_first.so (below), with ASAN_OPTIONS, then runs
#   inst/usr/lib/postgresql/N/bin/postgres.real  a copy of the server binary;
#                       PostgreSQL finds $libdir and its share directory
#                       relative to its binary, so they are the copy's
#   inst/usr/lib/postgresql/N/bin/pg_ctl         a copy, so that it starts
#                       the wrapper; the other programs are linked
#   inst/usr/lib/postgresql/N/lib/flusso.so      the instrumented build
# check.sh puts $PG_BIN first in PATH for everything it runs as postgres,
# including the TAP tests, so every cluster they start (pg_ctl from PATH)
# runs this server.  For 17 and 18 everything here happens in the root of
# test/lib/pgroot.sh (pg_exec), with the root's gcc and libasan.
#
# asan_first.so works around a deadlock of the preloaded runtime in an
# uninstrumented program: when a library's constructor (libgpg-error's,
# libp11-kit's) first calls malloc while holding a glibc locale lock,
# AddressSanitizer initializes there and calls dlerror(), which translates
# its message under the same lock; the lock is left corrupted and postgres
# hangs in bindtextdomain() before main.  asan_first.so's dlerror() returns
# NULL until its own constructor has initialized AddressSanitizer.
#
# Only flusso.so is instrumented: heap errors in malloc'd memory (json-c,
# libcurl, strdup), stack and global overruns in flusso's code, and
# use-after-free of malloc'd memory are caught; overruns inside palloc'd
# chunks are not (PostgreSQL's allocator packs them into blocks).
#
# Usage: test/asan.sh [--pg 15|17|18] [TAP test files...]
#        (default: PostgreSQL 15, every file of test/t/)
# Env:   FLUSSO_ASAN_DIR (default /tmp/flusso-asan) is the work directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=${FLUSSO_ASAN_DIR:-/tmp/flusso-asan}
PG_MAJOR=15
if [ "${1:-}" = --pg ]; then
	[ $# -ge 2 ] || { echo "asan.sh: --pg needs a version" >&2; exit 2; }
	PG_MAJOR=$2
	shift 2
fi
export PG_MAJOR
source test/lib/pg.sh
inst=$work/inst
private_bin=$inst/usr/lib/postgresql/$PG_MAJOR/bin
private_lib=$inst/usr/lib/postgresql/$PG_MAJOR/lib

log() { printf '\n=== %s\n' "$*" >&2; }

log "installing dependencies"
test/install-deps.sh --pg "$PG_MAJOR"
libasan=$(pg_exec gcc -print-file-name=libasan.so)
pg_exec test -f "$libasan" || { echo "gcc has no libasan.so ($libasan)" >&2; exit 1; }
libdir=$(pg_exec "$PG_CONFIG" --pkglibdir)

instrumented() {
	pg_exec nm -D "$1" 2>/dev/null | grep __asan_init >/dev/null
}

rm -rf "$work"
mkdir -p "$work/reports"
chmod 0755 "$work"
chown postgres:postgres "$work/reports"
touch "$work/started"
chown postgres:postgres "$work/started"

log "building flusso.so with -fsanitize=address into a private PostgreSQL $PG_MAJOR ($inst)"
pg_exec bash -c 'source test/lib/pgprivate.sh && pg_private_tree "$1" "$2" &&
	pg_private_flusso "$1" "$3" "$2" COPT="-fsanitize=address -fno-omit-frame-pointer"' \
	- "$PG_MAJOR" "$inst" "$root"
if ! instrumented "$private_lib/flusso.so"; then
	echo "the instrumented build failed" >&2
	exit 1
fi

cat >"$work/asan_first.c" <<'EOF'
/* See test/asan.sh: keeps AddressSanitizer's initialization out of dlerror(). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

extern void __asan_init(void) __attribute__((weak));

static bool ready;

__attribute__((constructor)) static void
init(void)
{
	if (__asan_init)
		__asan_init();
	ready = true;
}

char *
dlerror(void)
{
	static char *(*real) (void);

	if (!ready)
		return NULL;
	if (real == NULL)
		real = (char *(*) (void)) dlsym(RTLD_NEXT, "dlerror");
	return real();
}
EOF
pg_exec gcc -shared -fPIC -O2 -Wall -Werror -o "$work/asan_first.so" "$work/asan_first.c"
pg_exec timeout 30 env LD_PRELOAD="$libasan $work/asan_first.so" ASAN_OPTIONS=detect_leaks=0 \
	"$private_bin/postgres" -V >/dev/null ||
	{ echo "postgres does not run with libasan preloaded" >&2; exit 1; }
mv "$private_bin/postgres" "$private_bin/postgres.real"
cat >"$private_bin/postgres" <<EOF
#!/bin/bash
# PostgreSQL with libasan preloaded, for flusso.so built with -fsanitize=address.
# argv[0] stays this script: postmaster.opts names it, so pg_ctl restart
# starts the server through it again.
LD_PRELOAD="$libasan $work/asan_first.so\${LD_PRELOAD:+ \$LD_PRELOAD}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$work/reports/asan:log_exe_name=1"
export LD_PRELOAD ASAN_OPTIONS
echo "\$\$ \$*" >>"$work/started" 2>/dev/null || true
exec -a "$private_bin/postgres" "$private_bin/postgres.real" "\$@"
EOF
chmod 0755 "$private_bin/postgres"

# a server started by pg_ctl from there runs with libasan and the
# instrumented flusso.so, from $libdir = the private lib
log "checking the private installation"
export PG_BIN="$private_bin"
probe_port=$(free_port)
pg_cluster_start "$work/probe" "$probe_port"
maps=$(pg_psql "$work/probe" "$probe_port" -At -c \
	"SELECT string_agg(DISTINCT substring(l from '/[^ ]*$'), ' ') FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), '\n') l WHERE l ~ '(libasan|flusso)'")
pkglib=$(pg_psql "$work/probe" "$probe_port" -At -c "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")
pg_cluster_stop "$work/probe"
rm -rf "$work/probe"
: >"$work/started"
chown postgres:postgres "$work/started"
echo "PKGLIBDIR $pkglib; mapped: $maps" >&2
if [ "$pkglib" != "$private_lib" ] || [[ $maps != *libasan* ]] ||
	[[ $maps != *"$private_lib/flusso.so"* ]]; then
	echo "the private installation does not run the instrumented flusso.so" >&2
	exit 1
fi

log "Perl TAP under AddressSanitizer (reports in $work/reports)"
status=0
env -u COPT FLUSSO_TEST_DIR="$work/check" FLUSSO_ASAN=1 \
	test/check.sh --pg "$PG_MAJOR" --only tap "$@" || status=$?

log "AddressSanitizer reports"
reports=$(find "$work/reports" -type f | sort)
if [ -n "$reports" ]; then
	for f in $reports; do
		printf '\n--- %s\n' "$f" >&2
		cat "$f" >&2
	done
	echo "AddressSanitizer reported $(echo "$reports" | wc -l) error(s)" >&2
	exit 1
fi
if instrumented "$libdir/flusso.so"; then
	echo "the installed $libdir/flusso.so is instrumented: the AddressSanitizer build leaked into it" >&2
	exit 1
fi
echo "no AddressSanitizer report from $(grep -c -- ' -D ' "$work/started" 2>/dev/null || echo 0) server starts" >&2
if [ "$status" != 0 ]; then
	echo "test/check.sh --only tap failed under AddressSanitizer (exit $status); logs under $work/check" >&2
	exit "$status"
fi
