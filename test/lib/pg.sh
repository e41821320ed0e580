# Throw-away PostgreSQL clusters for flusso's tests, demo and benchmarks.
# Source this file; PG_MAJOR (default 15) picks the server version:
#   15      Debian 12's own, on the host
#   17, 18  Debian 13's and unstable's, in the root of test/lib/pgroot.sh
#           (test/install-deps.sh --pg N makes it); every command below
#           runs inside that root, where the same paths lead to that version
# It defines:
#   PG_BIN, PG_CONFIG, PG_PGXS                       paths (as the server sees them)
#   pg_cluster_start DIR PORT [setting=value ...]   initdb + start, flusso preloaded
#   pg_cluster_stop DIR [mode]                       stop (fast by default)
#   as_pg CMD...                                     run as the postgres OS user
#   pg_exec CMD...                                   run as the caller (root), beside
#                                                    the server (make, pg_prove ...)
#   pg_psql DIR PORT [psql args...]                  psql to that cluster
# initdb refuses root, so as root everything runs as the postgres user.
# DIR must be under /tmp (or the project root) for 17 and 18: the root sees
# those two places of the host, and nothing else of it.

PG_MAJOR=${PG_MAJOR:-15}
case $PG_MAJOR in
15) PG_ROOT="" ;;
17 | 18)
	source "$(dirname "${BASH_SOURCE[0]}")/pgroot.sh"
	PG_ROOT=$FLUSSO_PGROOT
	;;
*)
	echo "pg.sh: PostgreSQL $PG_MAJOR is not supported (15, 17, 18)" >&2
	return 1 2>/dev/null || exit 1
	;;
esac
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PG_PGXS=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs

pg_exec() {
	if [ -n "$PG_ROOT" ]; then
		pgroot_exec env PATH="$PG_BIN:$PATH" "$@"
	else
		env PATH="$PG_BIN:$PATH" "$@"
	fi
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		pg_exec runuser -u postgres -- env PATH="$PG_BIN:$PATH" "$@"
	else
		[ -z "$PG_ROOT" ] || { echo "pg.sh: PostgreSQL $PG_MAJOR runs in $PG_ROOT, which needs root" >&2; return 1; }
		env PATH="$PG_BIN:$PATH" "$@"
	fi
}

# A free TCP port on the loopback interface.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_cluster_start() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg initdb -D "$dir/data" -U postgres --auth=trust --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; return 1; }
		{
			echo "port = $port"
			echo "listen_addresses = '127.0.0.1'"
			echo "unix_socket_directories = '$dir'"
			echo "shared_preload_libraries = 'flusso'"
			echo "wal_level = logical"
			echo "max_replication_slots = 10"
			echo "max_wal_senders = 10"
			echo "max_worker_processes = 16"
			echo "fsync = off"
			echo "log_line_prefix = '%m [%p] %b '"
			echo "log_min_messages = info"
			for kv in "$@"; do echo "$kv"; done
		} >>"$dir/data/postgresql.conf"
	fi
	as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
		{ tail -n 30 "$dir/server.log" >&2; return 1; }
}

pg_cluster_stop() {
	local dir=$1 mode=${2:-fast}
	[ -f "$dir/data/postmaster.pid" ] || return 0
	as_pg pg_ctl -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null || true
}

pg_psql() {
	local dir=$1 port=$2
	shift 2
	as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"
}
