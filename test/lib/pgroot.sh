# The Debian root in which flusso is built and tested on PostgreSQL 17 and 18.
#
# PostgreSQL 17 comes from Debian 13 (trixie) and 18 from unstable (sid);
# their packages need a newer libc6 (>= 2.38 and >= 2.43), libssl3t64 and
# libpq5 than Debian 12 has, so installing them on this Debian 12 host would
# upgrade its C library and swap its OpenSSL, libcurl, GnuTLS and readline
# (115 packages) under the PostgreSQL 15 that other tests use.  Instead they
# go into a directory of ours, a trixie root made with debootstrap, in which
# unstable is pinned low and used only for postgresql-18 and what it needs
# (there it lifts libc6 to sid's).  Nothing of the host changes but the
# debootstrap package.
#
# Every command runs in the root through pgroot_exec, in a mount namespace
# of its own (unshare), so the bind mounts below exist only while it runs
# and disappear with its last process (removing the root never reaches
# into the host's directories):
#   /dev, /proc                     as on the host
#   /tmp                            the host's: work directories, sockets,
#                                   and the files of the OpenSearch that
#                                   check.sh starts on the host
#   the project root                at the same path, so paths agree
#   /usr/lib/jvm, /etc/java-17-openjdk   read-only: the host's Java 17, for
#                                   the tests that stop and restart OpenSearch
#   /usr/lib/postgresql/15, /usr/share/postgresql/15,
#   /usr/include/postgresql/15      read-only, when the host has them:
#                                   PostgreSQL 15 (with the host's flusso.so)
#                                   next to 17 and 18, for pg_upgrade from 15
#                                   (its old-soname libraries come from
#                                   bookworm: pgroot_pg15_libs), and its
#                                   server headers, so that flusso is built
#                                   for 15 in the root (test/lib/pgprivate.sh)
# The network and the process ids are the host's: OpenSearch on the host is
# reached at 127.0.0.1, and processes are stopped across the boundary.
# The postgres user has the host's uid and gid, so files agree too.
#
# Source this file; FLUSSO_PGROOT (default /var/lib/flusso-pgroot) is the root.

FLUSSO_PGROOT=${FLUSSO_PGROOT:-/var/lib/flusso-pgroot}
PGROOT_MIRROR=${PGROOT_MIRROR:-http://deb.debian.org/debian}
_pgroot_project=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

pgroot_die() { printf 'pgroot: error: %s\n' "$*" >&2; exit 1; }

# The Debian suite whose packages provide PostgreSQL MAJOR.
pgroot_suite() {
	case $1 in
	17) echo trixie ;;
	18) echo sid ;;
	*) pgroot_die "PostgreSQL $1 has no suite here (15 is the host's; 17: trixie, 18: sid)" ;;
	esac
}

pgroot_ready() { [ -f "$FLUSSO_PGROOT/.flusso-pgroot" ]; }

# pgroot_exec CMD...: run CMD as root inside the root, in the current
# directory (which must be under /tmp or the project root).
pgroot_exec() {
	pgroot_ready || pgroot_die "no root at $FLUSSO_PGROOT: run test/install-deps.sh --pg 17 (or 18)"
	[ "$(id -u)" = 0 ] || pgroot_die "entering $FLUSSO_PGROOT needs root"
	unshare --mount --propagation private -- /bin/bash -c '
		set -euo pipefail
		r=$1 project=$2 dir=$3
		shift 3
		# the root a mount point of its own: programs that look for the
		# mount of a path (Java'"'"'s FileStore, under OpenSearch) find one
		mount --bind "$r" "$r"
		mount --rbind /dev "$r/dev"
		mount -t proc proc "$r/proc"
		mount --bind /tmp "$r/tmp"
		bind() { # bind SRC [ro]
			[ -e "$1" ] || return 0
			mkdir -p "$r$1"
			mount --bind "$1" "$r$1"
			[ "${2:-}" != ro ] || mount -o remount,bind,ro "$r$1"
		}
		case $project in /tmp/*) ;; *) bind "$project" ;; esac
		bind /usr/lib/jvm ro
		bind /etc/java-17-openjdk ro
		bind /usr/lib/postgresql/15 ro
		bind /usr/share/postgresql/15 ro
		bind /usr/include/postgresql/15 ro
		exec chroot "$r" /bin/sh -c "cd \"\$1\" 2>/dev/null ||
			{ echo \"pgroot: \$1 is not seen in the root (only /tmp and the project are)\" >&2; exit 1; }
			shift; exec \"\$@\"" - "$dir" "$@"
	' - "$FLUSSO_PGROOT" "$_pgroot_project" "$PWD" "$@"
}

# apt-get inside the root, quietly; the output goes to $FLUSSO_PGROOT.log
# and is shown when it fails.
pgroot_apt() {
	local log=$FLUSSO_PGROOT.log
	(cd / && DEBIAN_FRONTEND=noninteractive pgroot_exec apt-get -y -q -o Dpkg::Use-Pty=0 "$@") >>"$log" 2>&1 ||
		{ tail -n 40 "$log" >&2; pgroot_die "apt-get $* failed in $FLUSSO_PGROOT (log: $log)"; }
}

pgroot_missing() { # pgroot_missing PKG...: those not installed in the root
	local installed p
	installed=$(cd / && pgroot_exec dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
		awk '$4 == "installed" { print $1 }') || true
	for p in "$@"; do
		grep -qx "$p" <<<"$installed" || echo "$p"
	done
}

pgroot_base_packages=(
	make gcc libc6-dev pkg-config libcurl4-openssl-dev libjson-c-dev libssl-dev
	perl libipc-run-perl libtap-parser-sourcehandler-pgtap-perl
	python3 python3-psycopg2 python3-botocore curl jq procps locales nginx openssl
)

# Create the root (debootstrap trixie, minbase) once, and install the build
# and test tools into it if missing.
pgroot_create() {
	pgroot_ready || pgroot_bootstrap
	local missing
	missing=$(pgroot_missing "${pgroot_base_packages[@]}")
	[ -n "$missing" ] || return 0
	echo "pgroot: installing $(echo $missing)" >&2
	pgroot_apt update
	# shellcheck disable=SC2086
	pgroot_apt install $missing
	pgroot_apt clean
}

pgroot_bootstrap() {
	command -v debootstrap >/dev/null || pgroot_die "debootstrap is not installed"
	local r=$FLUSSO_PGROOT
	if [ -e "$r" ]; then
		# a debootstrap that did not finish; nothing may be mounted inside
		grep -q " $r/" /proc/self/mounts && pgroot_die "$r is half made and has mounts inside; unmount them first"
		rm -rf --one-file-system "$r"
	fi
	echo "pgroot: debootstrap trixie into $r" >&2
	mkdir -p "$(dirname "$r")"
	debootstrap --variant=minbase --components=main trixie "$r" "$PGROOT_MIRROR" >"$r.log" 2>&1 ||
		{ tail -n 30 "$r.log" >&2; pgroot_die "debootstrap failed (log: $r.log)"; }
	# trixie is the root's release; sid is there for postgresql-18 only and
	# never wins by itself; bookworm only for PostgreSQL 15's old libraries
	cat >"$r/etc/apt/sources.list" <<-EOF
		deb $PGROOT_MIRROR trixie main
		deb $PGROOT_MIRROR sid main
		deb $PGROOT_MIRROR bookworm main
	EOF
	cat >"$r/etc/apt/preferences.d/flusso" <<-EOF
		Package: *
		Pin: release n=trixie
		Pin-Priority: 500

		Package: *
		Pin: release n=sid
		Pin-Priority: 100

		Package: *
		Pin: release n=bookworm
		Pin-Priority: 100
	EOF
	{
		printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
		# the host's word on the archive's dates (a machine whose clock is
		# past a mirror's Valid-Until turns the check off; so does the root)
		apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' || true
	} >"$r/etc/apt/apt.conf.d/90flusso"
	# no daemons start inside the root (postgresql-common's cluster)
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod +x "$r/usr/sbin/policy-rc.d"
	mkdir -p "$r/etc/postgresql-common/createcluster.d"
	echo "create_main_cluster = false" >"$r/etc/postgresql-common/createcluster.d/flusso.conf"
	# the postgres user and group with the host's ids, before postgresql-common makes its own
	local uid gid
	uid=$(id -u postgres 2>/dev/null) || pgroot_die "the host has no postgres user (install PostgreSQL 15 first)"
	gid=$(id -g postgres)
	chroot "$r" groupadd --system -g "$gid" postgres
	chroot "$r" useradd --system -u "$uid" -g postgres -d /var/lib/postgresql -s /bin/bash postgres
	mkdir -p "$r/var/lib/postgresql"
	chroot "$r" chown postgres:postgres /var/lib/postgresql
	touch "$r/.flusso-pgroot"
}

# Install PostgreSQL MAJOR (server, headers, pgTAP, pgvector) into the root, if missing.
pgroot_install_pg() {
	local major=$1 suite missing
	suite=$(pgroot_suite "$major")
	pgroot_create
	# pgvector: test/t/016_engines.pl syncs vector columns
	missing=$(pgroot_missing "postgresql-$major" "postgresql-server-dev-$major" "postgresql-$major-pgtap" \
		"postgresql-$major-pgvector")
	[ -n "$missing" ] || return 0
	echo "pgroot: installing from $suite: $(echo $missing)" >&2
	pgroot_apt update
	# shellcheck disable=SC2086
	pgroot_apt install -t "$suite" $missing
	pgroot_apt clean
}

# The libraries the host's PostgreSQL 15 needs that trixie does not have
# (for pg_upgrade from 15 inside the root), from bookworm.
pgroot_pg15_libs() {
	pgroot_create
	local missing
	missing=$(pgroot_missing libicu72 libldap-2.5-0)
	[ -n "$missing" ] || return 0
	echo "pgroot: installing from bookworm: $(echo $missing)" >&2
	pgroot_apt update
	# shellcheck disable=SC2086
	pgroot_apt install -t bookworm $missing
	pgroot_apt clean
}

# clang's libFuzzer runtime and llvm-cov for test/fuzz/run.sh in the root.
# The newest clang the PostgreSQL packages brought (clang-21 from sid with
# 18, clang-19 from trixie with 17) gets its runtime from the same suite:
# libclang-rt-N-dev depends on libc6-i386 of the root's libc6 version, which
# is sid's once 18 is installed.
pgroot_fuzz_tools() {
	local clang major suite
	clang=$(cd / && pgroot_exec sh -c 'ls /usr/bin/clang-[0-9]* 2>/dev/null' | sort -V | tail -n 1)
	[ -n "$clang" ] || pgroot_die "no clang in $FLUSSO_PGROOT (install-deps.sh --pg 17 or 18 brings one)"
	major=${clang##*-}
	suite=trixie
	[ "$major" -lt 20 ] || suite=sid
	[ -n "$(pgroot_missing "libclang-rt-$major-dev" "llvm-$major")" ] || return 0
	echo "pgroot: installing from $suite: libclang-rt-$major-dev llvm-$major (fuzzing)" >&2
	pgroot_apt update
	pgroot_apt install -t "$suite" "libclang-rt-$major-dev" "llvm-$major"
	pgroot_apt clean
}
