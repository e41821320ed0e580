#!/usr/bin/env bash
# Installs what building and testing flusso needs on Debian 12, if missing.
# Usage: test/install-deps.sh [--bench] [--fuzz] [--pg 15|17|18]
#   --bench   adds Redis and Python venv
#   --fuzz    adds clang's libFuzzer runtime (in the root for 17 and 18; on
#             the host test/fuzz/run.sh installs clang itself)
#   --pg N    PostgreSQL N (default 15).  15 is Debian 12's own and goes on
#             the host; 17 (Debian 13's) and 18 (unstable's) go into a
#             debootstrapped root of ours, FLUSSO_PGROOT (see test/lib/pgroot.sh),
#             with their headers, pgTAP and the build and test tools.
# Quiet when everything is there already.
set -euo pipefail

bench=0 fuzz=0 pg=15
while [ $# -gt 0 ]; do
	case $1 in
	--bench) bench=1; shift ;;
	--fuzz) fuzz=1; shift ;;
	--pg) [ $# -ge 2 ] || { echo "install-deps.sh: --pg needs a version" >&2; exit 2; }
		pg=$2; shift 2 ;;
	*) echo "usage: test/install-deps.sh [--bench] [--fuzz] [--pg 15|17|18]" >&2; exit 2 ;;
	esac
done
case $pg in 15 | 17 | 18) ;; *) echo "install-deps.sh: PostgreSQL $pg is not supported (15, 17, 18)" >&2; exit 2 ;; esac

# The host's packages, whatever the version: PostgreSQL 15 stays the host's
# (the postgres user, pg_upgrade from 15), and OpenSearch, its Java and the
# tools around the tests run on the host.
packages=(
	make gcc pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-contrib
	libcurl4-openssl-dev libjson-c-dev libssl-dev
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
	nginx-light openssl python3 python3-psycopg2 python3-venv
	openjdk-17-jdk-headless maven curl jq procps
)
if [ "$bench" = 1 ]; then
	packages+=(redis-server python3-venv python3-dev libpq-dev)
fi
[ "$pg" = 15 ] || packages+=(debootstrap)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}" >&2
	sudo_cmd=""
	[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pgvector for PostgreSQL 15 (test/t/016_engines.pl): bookworm has no
# postgresql-15-pgvector, so Debian's own source package (trixie's, the one
# its postgresql-17-pgvector is built from) is built against 15's headers.
# apt-get fetches it through a private list directory, leaving the host's
# sources alone.
install_pgvector_15() {
	local pgc=/usr/lib/postgresql/15/bin/pg_config dir=/tmp/flusso-pgvector
	[ -f "$("$pgc" --sharedir)/extension/vector.control" ] && return 0
	[ "$(id -u)" = 0 ] || { echo "install-deps.sh: building pgvector for 15 needs root" >&2; return 1; }
	echo "installing: pgvector for PostgreSQL 15, built from Debian's source package" >&2
	rm -rf "$dir" && mkdir -p "$dir/lists/partial" "$dir/src"
	echo "deb-src http://deb.debian.org/debian trixie main" >"$dir/sources.list"
	local apt=(-q -o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$dir/lists" -o APT::Get::List-Cleanup=0)
	(cd "$dir" && apt-get "${apt[@]}" update >/dev/null && apt-get "${apt[@]}" source --download-only pgvector >/dev/null 2>&1)
	tar xzf "$dir"/pgvector_*.orig.tar.gz -C "$dir/src" --strip-components=1
	make -s -C "$dir/src" PG_CONFIG="$pgc" OPTFLAGS="" with_llvm=no >/dev/null
	make -s -C "$dir/src" PG_CONFIG="$pgc" with_llvm=no install >/dev/null
	rm -rf "$dir"
}
install_pgvector_15

if [ "$pg" != 15 ]; then
	[ "$(id -u)" = 0 ] || { echo "install-deps.sh: --pg $pg makes a root with debootstrap and needs root" >&2; exit 1; }
	source "$(dirname "$0")/lib/pgroot.sh"
	pgroot_install_pg "$pg"
	# the old-soname libraries of the host's PostgreSQL 15, which the root
	# sees read-only at /usr/lib/postgresql/15 (pg_upgrade from 15)
	pgroot_pg15_libs
	[ "$fuzz" = 0 ] || pgroot_fuzz_tools
fi
