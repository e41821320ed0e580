#!/usr/bin/env bash
# Runs a command, as root, in the Debian root that holds PostgreSQL 17 and 18
# (test/lib/pgroot.sh; test/install-deps.sh --pg 17 or --pg 18 makes it), in
# the current directory (under /tmp or the project):
#   test/pgroot-run.sh make WERROR=1 PG_CONFIG=/usr/lib/postgresql/17/bin/pg_config
#   test/pgroot-run.sh bash        a shell there
# The project, /tmp, the host's Java 17 and PostgreSQL 15 are seen at their
# own paths; nothing else of the host is.
set -euo pipefail
[ $# -gt 0 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
source "$(dirname "$0")/lib/pgroot.sh"
pgroot_exec "$@"
