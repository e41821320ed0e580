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
# PostgreSQL 15 installation under the work directory instead:
#   pg/bin/postgres     a wrapper that preloads libasan (gcc's, the one
#                       flusso.so links) and pg/asan_first.so (below),
#                       with ASAN_OPTIONS, then runs
#   pg/bin/postgres.real  a copy of the server binary; PostgreSQL finds
#                       $libdir next to its binary, so $libdir is pg/lib
#   pg/bin/pg_ctl       a copy, so that it starts the wrapper
#   pg/bin/*            the other programs, linked
#   pg/lib/flusso.so    the instrumented build; pg/lib/* the others, linked
# check.sh puts $PG_BIN first in PATH for everything it runs as postgres,
# including the TAP tests, so every cluster they start (pg_ctl from PATH)
# runs this server.  check.sh itself still builds and installs the normal
# flusso.so (and the SQL scripts both builds use); this script checks at the
# end that the installed flusso.so is not instrumented, and rebuilds and
# reinstalls it if it is.
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
# Usage: test/asan.sh [TAP test files...]     (default: all of test/t/*.pl)
# Env:   FLUSSO_ASAN_DIR (default /tmp/flusso-asan) is the work directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=${FLUSSO_ASAN_DIR:-/tmp/flusso-asan}
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
real_bin=/usr/lib/postgresql/15/bin

log() { printf '\n=== %s\n' "$*" >&2; }

log "installing dependencies"
test/install-deps.sh
libasan=$(gcc -print-file-name=libasan.so)
[ -f "$libasan" ] || { echo "gcc has no libasan.so ($libasan)" >&2; exit 1; }
libdir=$("$PG_CONFIG" --pkglibdir)

instrumented() {
	nm -D "$1" 2>/dev/null | grep __asan_init >/dev/null
}

# the installed flusso.so must end up uninstrumented, whatever happens
restore_normal_build() {
	if instrumented "$libdir/flusso.so"; then
		log "the installed flusso.so is instrumented: rebuilding the normal one"
		env -u COPT make -s -C "$root" clean
		env -u COPT make -s -C "$root"
		env -u COPT make -s -C "$root" install
	fi
}
trap restore_normal_build EXIT

rm -rf "$work"
mkdir -p "$work/build/src" "$work/pg/bin" "$work/pg/lib" "$work/reports"
chmod 0755 "$work" "$work/pg" "$work/pg/bin" "$work/pg/lib"
chown postgres:postgres "$work/reports"
touch "$work/started"
chown postgres:postgres "$work/started"

log "building flusso.so with -fsanitize=address"
cp Makefile flusso.control "$work/build/"
cp -r sql "$work/build/"
(cd src && find . -name '*.[ch]' -exec cp --parents {} "$work/build/src/" \;)
make -s -C "$work/build" PG_CONFIG="$PG_CONFIG" WERROR=1 \
	COPT="-fsanitize=address -fno-omit-frame-pointer" 2>&1 | tee "$work/build.log" >&2
if grep -q "warning:" "$work/build.log" || ! instrumented "$work/build/flusso.so"; then
	echo "the instrumented build failed or printed warnings" >&2
	exit 1
fi

log "a private PostgreSQL installation in $work/pg"
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
gcc -shared -fPIC -O2 -Wall -Werror -o "$work/pg/asan_first.so" "$work/asan_first.c"
timeout 30 env LD_PRELOAD="$libasan $work/pg/asan_first.so" ASAN_OPTIONS=detect_leaks=0 \
	"$real_bin/postgres" -V >/dev/null ||
	{ echo "postgres does not run with libasan preloaded" >&2; exit 1; }
for f in "$real_bin"/*; do
	ln -s "$f" "$work/pg/bin/$(basename "$f")"
done
rm "$work/pg/bin/postgres" "$work/pg/bin/pg_ctl"
cp "$real_bin/postgres" "$work/pg/bin/postgres.real"
cp "$real_bin/pg_ctl" "$work/pg/bin/pg_ctl"
cat >"$work/pg/bin/postgres" <<EOF
#!/bin/bash
# PostgreSQL with libasan preloaded, for flusso.so built with -fsanitize=address.
# argv[0] stays this script: postmaster.opts names it, so pg_ctl restart
# starts the server through it again.
LD_PRELOAD="$libasan $work/pg/asan_first.so\${LD_PRELOAD:+ \$LD_PRELOAD}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$work/reports/asan:log_exe_name=1"
export LD_PRELOAD ASAN_OPTIONS
echo "\$\$ \$*" >>"$work/started" 2>/dev/null || true
exec -a "$work/pg/bin/postgres" "$work/pg/bin/postgres.real" "\$@"
EOF
chmod 0755 "$work/pg/bin/postgres"
for f in "$libdir"/*; do
	[ "$(basename "$f")" = flusso.so ] || ln -s "$f" "$work/pg/lib/$(basename "$f")"
done
cp "$work/build/flusso.so" "$work/pg/lib/flusso.so"

# a server started by pg_ctl from there runs with libasan and the
# instrumented flusso.so, from $libdir = pg/lib
log "checking the private installation"
export PG_BIN="$work/pg/bin"
source test/lib/pg.sh
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
if [ "$pkglib" != "$work/pg/lib" ] || [[ $maps != *libasan* ]] ||
	[[ $maps != *"$work/pg/lib/flusso.so"* ]]; then
	echo "the private installation does not run the instrumented flusso.so" >&2
	exit 1
fi

log "Perl TAP under AddressSanitizer (reports in $work/reports)"
status=0
env -u COPT FLUSSO_TEST_DIR="$work/check" FLUSSO_ASAN=1 \
	test/check.sh --only tap "$@" || status=$?

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
echo "no AddressSanitizer report from $(grep -c -- ' -D ' "$work/started" 2>/dev/null || echo 0) server starts" >&2
if [ "$status" != 0 ]; then
	echo "test/check.sh --only tap failed under AddressSanitizer (exit $status); logs under $work/check" >&2
	exit "$status"
fi
