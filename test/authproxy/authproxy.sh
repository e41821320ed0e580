#!/usr/bin/env bash
# Starts, stops and reconfigures authproxy.py (a verifying authentication proxy in front of a real
# OpenSearch node) for flusso's tests. See README.md beside this file.
#
#   authproxy.sh start  --upstream URL [--dir DIR] [--port PORT] [--admin-port PORT] [--verbose]
#                       [--timeout SEC] (--config FILE | --mode MODE [mode flags of authproxy.py])
#   authproxy.sh stop   [--dir DIR] [--timeout SEC]
#   authproxy.sh config [--dir DIR] [--merge] [JSON]   # no JSON: prints the configuration
#   authproxy.sh reload [--dir DIR]                     # SIGHUP: read DIR/config.json again
#   authproxy.sh stats  [--dir DIR] [--reset]
#   authproxy.sh url    [--dir DIR]
#   authproxy.sh python                                 # prints the venv's python (botocore in it)
#
# start prints only the proxy URL on stdout. DIR (default $AUTHPROXY_DIR or /tmp/flusso-authproxy)
# gets url, admin, pid, config.json (the configuration, re-read when it changes), ready.json, log.
# botocore comes from PyPI into a venv: $AUTHPROXY_VENV, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/flusso/authproxy-venv (outside the repository), made on first use.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="authproxy.sh"
DIR="${AUTHPROXY_DIR:-/tmp/flusso-authproxy}"
VENV="${AUTHPROXY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/flusso/authproxy-venv}"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# the interpreter the venv is made from: $AUTHPROXY_BASE_PYTHON, Debian's python3, or python3
base_python() {
    if [[ -n "${AUTHPROXY_BASE_PYTHON:-}" ]]; then
        echo "$AUTHPROXY_BASE_PYTHON"
    elif [[ -x /usr/bin/python3 ]]; then
        echo /usr/bin/python3
    else
        command -v python3 || die "python3 not found"
    fi
}

venv_ok() {
    [[ -f "$VENV/.authproxy-ok" && -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import botocore.auth' >/dev/null 2>&1
}

# ensure_venv: $VENV has botocore (from PyPI, versions in requirements.txt); serialized by a lock
ensure_venv() {
    if [[ -n "${AUTHPROXY_PYTHON:-}" ]]; then # a given interpreter that has botocore: no venv
        "$AUTHPROXY_PYTHON" -c 'import botocore.auth' 2>/dev/null ||
            die "AUTHPROXY_PYTHON=$AUTHPROXY_PYTHON cannot import botocore"
        PY="$AUTHPROXY_PYTHON"
        return
    fi
    PY="$VENV/bin/python"
    venv_ok && return
    mkdir -p "$(dirname "$VENV")"
    exec 9>"$VENV.lock"
    flock 9
    if ! venv_ok; then
        local base out
        base="$(base_python)"
        log "installing botocore into $VENV (once)"
        rm -rf "$VENV"
        if ! out="$("$base" -m venv "$VENV" 2>&1)"; then
            # Debian's python3 makes venvs only with python3-venv (ensurepip)
            if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
                log "python3 -m venv failed; installing python3-venv"
                apt-get update -qq >/dev/null 2>&1 || true
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
                rm -rf "$VENV"
                out="$("$base" -m venv "$VENV" 2>&1)" || { printf '%s\n' "$out" >&2; die "cannot make a venv with $base"; }
            else
                printf '%s\n' "$out" >&2
                die "cannot make a venv with $base (install python3-venv)"
            fi
        fi
        if ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" >"$VENV.pip.log" 2>&1; then
            tail -n 20 "$VENV.pip.log" >&2
            rm -rf "$VENV"
            die "pip could not install botocore (log: $VENV.pip.log)"
        fi
        touch "$VENV/.authproxy-ok"
        log "botocore $("$VENV/bin/python" -c 'import botocore; print(botocore.__version__)') in $VENV"
    fi
    flock -u 9
    exec 9>&-
}

# alive PID: the process exists and is not a zombie
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(sed -n 's/^[^)]*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    [[ "$state" != Z ]]
}

# running: is the pid in DIR/pid a live authproxy.py?
running() {
    local pid
    [[ -s "$DIR/pid" ]] || return 1
    pid="$(cat "$DIR/pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'authproxy\.py' || return 1
}

# admin METHOD PATH [BODY]: the admin API's answer on stdout; fails on a non-2xx answer
admin() {
    [[ -s "$DIR/admin" ]] || die "no proxy in $DIR (no $DIR/admin)"
    python3 - "$(cat "$DIR/admin")" "$@" <<'EOF'
import sys, urllib.request, urllib.error
base, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(base + path, data=body, method=method,
                             headers={"Content-Type": "application/json"} if body is not None else {})
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stderr.write("authproxy.sh: %s %s: %d %s" % (method, path, e.code, e.read().decode()))
    sys.exit(1)
except OSError as e:
    sys.stderr.write("authproxy.sh: %s %s: %s\n" % (method, path, e))
    sys.exit(1)
EOF
}

cmd_start() {
    local upstream="" port=0 admin_port=0 timeout=60 config=""
    local -a verbose=() flags=()
    while (($#)); do
        case "$1" in
            --upstream) upstream="$2"; shift 2 ;;
            --dir) DIR="$2"; shift 2 ;;
            --port) port="$2"; shift 2 ;;
            --admin-port) admin_port="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            --config) config="$2"; shift 2 ;;
            --verbose) verbose=(--verbose); shift ;;
            --aws-ignore-post-query) flags+=("$1"); shift ;;
            --mode | --user | --api-key | --token | --region | --service | --access-key | --secret-key | \
                --session-token | --expires | --max-skew-seconds | --upstream-auth)
                flags+=("$1" "$2"); shift 2 ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    [[ -n "$upstream" ]] || die "start: --upstream URL is required"
    [[ -n "$config" || ${#flags[@]} -gt 0 ]] || die "start: --config FILE or --mode MODE ... is required"
    [[ -z "$config" || ${#flags[@]} -eq 0 ]] || die "start: give --config or mode flags, not both"
    ensure_venv
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    if running; then die "a proxy already runs in $DIR (pid $(cat "$DIR/pid"))"; fi
    rm -f "$DIR/url" "$DIR/admin" "$DIR/pid" "$DIR/ready.json"
    # the configuration always lives in DIR/config.json, so that it can be changed while it runs
    if [[ -n "$config" ]]; then
        [[ "$(cd "$(dirname "$config")" && pwd)/$(basename "$config")" == "$DIR/config.json" ]] ||
            cp "$config" "$DIR/config.json"
    else
        "$PY" "$HERE/authproxy.py" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "$upstream" \
            --config "$DIR/config.json" --write-config --check-config "${flags[@]}" >/dev/null
    fi
    "$PY" "$HERE/authproxy.py" --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "$upstream" \
        --config "$DIR/config.json" --check-config >/dev/null || die "bad configuration in $DIR/config.json"
    local -a args=(--listen "127.0.0.1:$port" --admin "127.0.0.1:$admin_port" --upstream "$upstream"
                   --config "$DIR/config.json" --ready-file "$DIR/ready.json" ${verbose[@]+"${verbose[@]}"})
    # its own session, detached from this shell: survives the shell that started it
    setsid nohup "$PY" "$HERE/authproxy.py" "${args[@]}" >>"$DIR/log" 2>&1 </dev/null &
    local starter=$! deadline=$((SECONDS + timeout))
    until [[ -s "$DIR/ready.json" ]]; do
        if ! alive "$starter" && [[ ! -s "$DIR/ready.json" ]]; then
            tail -n 20 "$DIR/log" >&2 || true
            die "the proxy exited at start (log: $DIR/log)"
        fi
        ((SECONDS < deadline)) || { kill "$starter" 2>/dev/null || true; die "the proxy did not start in ${timeout}s"; }
        sleep 0.05
    done
    "$PY" - "$DIR" <<'EOF'
import json, sys
d = sys.argv[1]
info = json.load(open(d + "/ready.json"))
for k in ("pid", "url", "admin"):
    with open("%s/%s" % (d, k), "w") as f:
        f.write("%s\n" % info[k])
EOF
    until admin GET /config >/dev/null 2>&1; do
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

cmd_config() {
    local method=PUT json=""
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            --merge) method=PATCH; shift ;;
            -*) die "config: unknown argument $1" ;;
            *) json="$1"; shift ;;
        esac
    done
    if [[ -z "$json" ]]; then admin GET /config; else admin "$method" /config "$json"; fi
}

cmd_reload() {
    while (($#)); do
        case "$1" in
            --dir) DIR="$2"; shift 2 ;;
            *) die "reload: unknown argument $1" ;;
        esac
    done
    running || die "no proxy running in $DIR"
    kill -HUP "$(cat "$DIR/pid")"
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

cmd_python() {
    ensure_venv
    echo "$PY"
}

(($#)) || die "usage: $PROG start|stop|config|reload|stats|url|python [options]"
sub="$1"
shift
case "$sub" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    config) cmd_config "$@" ;;
    reload) cmd_reload "$@" ;;
    stats) cmd_stats "$@" ;;
    url) cmd_url "$@" ;;
    python) cmd_python "$@" ;;
    *) die "unknown command $sub (start|stop|config|reload|stats|url|python)" ;;
esac
