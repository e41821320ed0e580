#!/usr/bin/env bash
# Starts, stops and configures faultproxy.py (a fault-injecting HTTP proxy in front of a real
# OpenSearch node) for flusso's fault tests. See README.md beside this file.
#
#   faultproxy.sh start  --upstream URL [--dir DIR] [--port PORT] [--admin-port PORT]
#                        [--faults JSON] [--verbose] [--timeout SEC]
#   faultproxy.sh stop   [--dir DIR] [--timeout SEC]
#   faultproxy.sh faults [--dir DIR] [--merge] [JSON]   # no JSON: prints the settings
#   faultproxy.sh reset  [--dir DIR]                    # every fault off
#   faultproxy.sh stats  [--dir DIR] [--reset]
#   faultproxy.sh url    [--dir DIR]
#
# start prints only the proxy URL on stdout; faults/reset/stats print the admin API's JSON answer.
# DIR (default $FAULTPROXY_DIR or /tmp/flusso-faultproxy) gets url, admin, pid, faults.json
# (the state file) and log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="faultproxy.sh"
DIR="${FAULTPROXY_DIR:-/tmp/flusso-faultproxy}"
PYTHON="${PYTHON:-python3}"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# admin METHOD PATH [BODY]: the admin API's answer on stdout; fails on a non-2xx answer
admin() {
    [[ -s "$DIR/admin" ]] || die "no proxy in $DIR (no $DIR/admin)"
    "$PYTHON" - "$(cat "$DIR/admin")" "$@" <<'EOF'
import sys, urllib.request, urllib.error
base, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(base + path, data=body, method=method,
                             headers={"Content-Type": "application/json"} if body is not None else {})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stderr.write("faultproxy.sh: %s %s: %d %s" % (method, path, e.code, e.read().decode()))
    sys.exit(1)
except OSError as e:
    sys.stderr.write("faultproxy.sh: %s %s: %s\n" % (method, path, e))
    sys.exit(1)
EOF
}

# alive PID: the process exists and is not a zombie (PID 1 may reap late)
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(sed -n 's/^[^)]*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z ]]
}

# running: is the pid in DIR/pid a live faultproxy.py?
running() {
    local pid
    [[ -s "$DIR/pid" ]] || return 1
    pid="$(cat "$DIR/pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'faultproxy\.py' || return 1
}

cmd_start() {
    local upstream="" port=0 admin_port=0 faults="" timeout=30 verbose=()
    while (($#)); do
        case "$1" in
            --upstream) upstream="$2"; shift 2 ;;
            --dir) DIR="$2"; shift 2 ;;
            --port) port="$2"; shift 2 ;;
            --admin-port) admin_port="$2"; shift 2 ;;
            --faults) faults="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            --verbose) verbose=(--verbose); shift ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    [[ -n "$upstream" ]] || die "start: --upstream URL is required"
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    if running; then die "a proxy already runs in $DIR (pid $(cat "$DIR/pid"))"; fi
    rm -f "$DIR/url" "$DIR/admin" "$DIR/pid" "$DIR/ready.json" "$DIR/faults.json"
    local -a args=(--listen "127.0.0.1:$port" --admin "127.0.0.1:$admin_port" --upstream "$upstream"
                   --state-file "$DIR/faults.json" --ready-file "$DIR/ready.json" "${verbose[@]}")
    [[ -z "$faults" ]] || args+=(--faults "$faults")
    # its own session, detached from this shell: survives the shell that started it
    setsid nohup "$PYTHON" "$HERE/faultproxy.py" "${args[@]}" >>"$DIR/log" 2>&1 </dev/null &
    local starter=$! deadline=$((SECONDS + timeout))
    until [[ -s "$DIR/ready.json" ]]; do
        if ! alive "$starter" && [[ ! -s "$DIR/ready.json" ]]; then
            tail -n 20 "$DIR/log" >&2 || true
            die "the proxy exited at start (log: $DIR/log)"
        fi
        ((SECONDS < deadline)) || { kill "$starter" 2>/dev/null || true; die "the proxy did not start in ${timeout}s"; }
        sleep 0.05
    done
    "$PYTHON" - "$DIR" <<'EOF'
import json, sys
d = sys.argv[1]
info = json.load(open(d + "/ready.json"))
for k in ("pid", "url", "admin"):
    with open("%s/%s" % (d, k), "w") as f:
        f.write("%s\n" % info[k])
EOF
    until admin GET /faults >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "the proxy's admin API does not answer"
        sleep 0.05
    done
    log "proxy $(cat "$DIR/url") -> $upstream, admin $(cat "$DIR/admin"), pid $(cat "$DIR/pid")"
    cat "$DIR/url"
}

cmd_stop() {
    local timeout=10
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            *) die "stop: unknown argument $1" ;;
        esac
    done
    if ! running; then
        log "no proxy running in $DIR"
        rm -f "$DIR/pid"
        return 0
    fi
    local pid deadline=$((SECONDS + timeout))
    pid="$(cat "$DIR/pid")"
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "pid $pid ignored SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
    rm -f "$DIR/pid"
    log "stopped pid $pid"
}

cmd_faults() {
    local method=PUT json=""
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --merge) method=PATCH; shift ;;
            -*) die "faults: unknown argument $1" ;;
            *) json="$1"; shift ;;
        esac
    done
    if [[ -z "$json" ]]; then admin GET /faults; else admin "$method" /faults "$json"; fi
}

cmd_reset() {
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            *) die "reset: unknown argument $1" ;;
        esac
    done
    admin POST /faults/reset
}

cmd_stats() {
    local path=/stats method=GET
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --reset) path=/stats/reset; method=POST; shift ;;
            *) die "stats: unknown argument $1" ;;
        esac
    done
    admin "$method" "$path"
}

cmd_url() {
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            *) die "url: unknown argument $1" ;;
        esac
    done
    [[ -s "$DIR/url" ]] || die "no proxy in $DIR"
    cat "$DIR/url"
}

(($#)) || die "usage: $PROG start|stop|faults|reset|stats|url [options]"
sub="$1"
shift
case "$sub" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    faults) cmd_faults "$@" ;;
    reset) cmd_reset "$@" ;;
    stats) cmd_stats "$@" ;;
    url) cmd_url "$@" ;;
    *) die "unknown command $sub (start|stop|faults|reset|stats|url)" ;;
esac
