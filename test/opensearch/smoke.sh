#!/usr/bin/env bash
# Smoke test of test/opensearch/opensearch.sh: a 1-node instance (index, versioned bulk, realtime GET,
# search, _delete_by_query, _aliases) and a 3-node cluster (replicas, kill -9 of the cluster-manager
# node, yellow, restart, green). Prints timings and peak RSS per node; exits nonzero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OS="$HERE/opensearch.sh"
WORK="$(mktemp -d /tmp/flusso-os-smoke.XXXXXX)"
PASSED=0
FAILED=0

cleanup() {
    local rc=$?
    for d in "$WORK/one" "$WORK/three"; do
        if [[ -d "$d" ]]; then "$OS" stop --dir "$d" >/dev/null 2>&1 || true; fi
    done
    if ((rc == 0)); then
        rm -rf "$WORK"
    else
        echo "smoke: failed; node logs kept in $WORK" >&2
    fi
}
trap cleanup EXIT

say() { printf 'smoke: %s\n' "$*" >&2; }
fail() {
    FAILED=$((FAILED + 1))
    printf 'smoke: FAIL: %s\n' "$*" >&2
    printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
    exit 1
}
ok() {
    PASSED=$((PASSED + 1))
    printf 'smoke: ok: %s\n' "$*" >&2
}

# req METHOD URL [BODY [CONTENT_TYPE]]: prints the body; fails the test on a non-2xx answer
req() {
    local method="$1" url="$2" body="${3:-}" ctype="${4:-application/json}" out code
    local -a args=(-sS -m 60 -X "$method" -w '\n%{http_code}')
    [[ -n "$body" ]] && args+=(-H "Content-Type: $ctype" --data-binary "$body")
    out="$(curl "${args[@]}" "$url")" || fail "$method $url: curl failed"
    code="${out##*$'\n'}"
    out="${out%$'\n'*}"
    [[ "$code" == 2* ]] || fail "$method $url: HTTP $code: $out"
    printf '%s' "$out"
}

# expect TEXT PATTERN WHAT: TEXT must contain the fixed string PATTERN
expect() {
    [[ "$1" == *"$2"* ]] || fail "$3: expected '$2' in: $1"
    ok "$3"
}

# true while process $1 runs (a zombie waiting to be reaped counts as gone)
running() {
    local state
    state="$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

peak_rss() { # peak resident set size of node $2 in dir $1, in MiB
    local pid
    pid="$(cat "$1/node$2.pid")"
    awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$pid/status"
}

# ------------------------------------------------------------------ build (not timed as a start)
t=$(date +%s%N)
"$OS" build
BUILD_MS=$(ms_since "$t")

# ------------------------------------------------------------------ one node
say "1-node instance in $WORK/one"
t=$(date +%s%N)
url="$("$OS" start --dir "$WORK/one")"
START1_MS=$(ms_since "$t")
[[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "start printed '$url', not a URL"
[[ "$("$OS" url --dir "$WORK/one")" == "$url" ]] || fail "url subcommand disagrees with start"
[[ "$(cat "$WORK/one/url")" == "$url" && "$(cat "$WORK/one/urls")" == "$url" ]] || fail "url/urls files"
ok "started in ${START1_MS} ms at $url"

expect "$(req GET "$url/")" '"number" : "2.19.6"' "version is 2.19.6"
expect "$("$OS" status --dir "$WORK/one")" '"number_of_nodes" : 1' "status shows 1 node"

req PUT "$url/items" '{
  "settings": {"number_of_shards": 1, "number_of_replicas": 0},
  "mappings": {"properties": {"sku": {"type": "keyword"}, "title": {"type": "text"}}}
}' >/dev/null
ok "created index with keyword+text mapping"

bulk='{"index":{"_index":"items","_id":"1","version":10,"version_type":"external_gte"}}
{"sku":"A-1","title":"red apple"}
{"index":{"_index":"items","_id":"2","version":20,"version_type":"external_gte"}}
{"sku":"B-2","title":"green pear"}
{"index":{"_index":"items","_id":"3","version":30,"version_type":"external_gte"}}
{"sku":"C-3","title":"red cherry"}
'
out="$(req POST "$url/_bulk" "$bulk" application/x-ndjson)"
expect "$out" '"errors":false' "bulk with version_type=external_gte"
# an older external version must be rejected, the same version accepted (gte)
out="$(req POST "$url/_bulk" '{"index":{"_index":"items","_id":"2","version":19,"version_type":"external_gte"}}
{"sku":"B-2","title":"stale"}
{"index":{"_index":"items","_id":"3","version":30,"version_type":"external_gte"}}
{"sku":"C-3","title":"red cherry"}
' application/x-ndjson)"
expect "$out" '"version_conflict_engine_exception"' "stale external version rejected"
expect "$out" '"_id":"3","_version":30,"result":"updated"' "equal external version accepted"

out="$(req GET "$url/items/_doc/2")"
expect "$out" '"found":true' "realtime GET before refresh"
expect "$out" '"_version":20' "realtime GET returns the external version"
expect "$out" '"title":"green pear"' "realtime GET returns the source"

req POST "$url/items/_refresh" >/dev/null
out="$(req POST "$url/items/_search" '{"query":{"match":{"title":"red"}}}')"
expect "$out" '"total":{"value":2,"relation":"eq"}' "search after refresh finds 2 docs"
out="$(req POST "$url/items/_search" '{"query":{"term":{"sku":"B-2"}}}')"
expect "$out" '"_id":"2"' "keyword term query"

out="$(req POST "$url/items/_delete_by_query?refresh=true" '{"query":{"term":{"sku":"A-1"}}}')"
expect "$out" '"deleted":1' "_delete_by_query"
expect "$(req GET "$url/items/_count")" '"count":2' "count after _delete_by_query"

req PUT "$url/items_v2" '{"settings":{"number_of_shards":1,"number_of_replicas":0}}' >/dev/null
out="$(req POST "$url/_aliases" '{"actions":[{"add":{"index":"items","alias":"items_live"}}]}')"
expect "$out" '"acknowledged":true' "_aliases add"
out="$(req POST "$url/_aliases" '{"actions":[{"remove":{"index":"items","alias":"items_live"}},{"add":{"index":"items_v2","alias":"items_live"}}]}')"
expect "$out" '"acknowledged":true' "_aliases atomic swap"
expect "$(req GET "$url/_alias/items_live")" '"items_v2"' "alias points to the new index"

# the flood-stage block that tests will set through the API
req PUT "$url/items/_settings" '{"index.blocks.read_only_allow_delete":true}' >/dev/null
code="$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H 'Content-Type: application/json' "$url/items/_doc/9" -d '{"sku":"X"}')"
[[ "$code" == 429 ]] || fail "write into a read_only_allow_delete index answered $code, not 429"
ok "read_only_allow_delete block rejects writes (429)"
req PUT "$url/items/_settings" '{"index.blocks.read_only_allow_delete":null}' >/dev/null

RSS1="$(peak_rss "$WORK/one" 1)"
"$OS" stop --dir "$WORK/one"
pid="$(cat "$WORK/one/node1.pid")"
! running "$pid" || fail "node still running after stop"
ok "stopped 1-node instance"

# ------------------------------------------------------------------ three nodes
say "3-node cluster in $WORK/three"
t=$(date +%s%N)
url="$("$OS" start --nodes 3 --dir "$WORK/three")"
START3_MS=$(ms_since "$t")
ok "3-node cluster green in ${START3_MS} ms at $url"
IFS=, read -r -a urls <"$WORK/three/urls"
((${#urls[@]} == 3)) || fail "urls file does not list 3 URLs"

nodes="$(req GET "$url/_cat/nodes?h=name,node.role")"
for n in node-1 node-2 node-3; do
    grep -Eq "^$n " <<<"$nodes" || fail "$n missing in _cat/nodes: $nodes"
done
[[ "$(grep -c . <<<"$nodes")" == 3 ]] || fail "_cat/nodes does not list 3 nodes: $nodes"
ok "_cat/nodes lists node-1..3"
while read -r name roles; do
    [[ "$roles" == *d* && "$roles" == *m* ]] || fail "$name has roles '$roles', expected data and cluster-manager"
done <<<"$nodes"
ok "all three nodes are data and cluster-manager-eligible"

req PUT "$url/orders" '{"settings":{"number_of_shards":3,"number_of_replicas":1},"mappings":{"properties":{"id":{"type":"keyword"}}}}' >/dev/null
req GET "$url/_cluster/health/orders?wait_for_status=green&timeout=60s" >/dev/null
ok "index with 1 replica is green"
bulk=""
for i in $(seq 1 30); do
    bulk+='{"index":{"_index":"orders","_id":"'$i'"}}'$'\n''{"id":"'$i'"}'$'\n'
done
expect "$(req POST "$url/_bulk?refresh=true" "$bulk" application/x-ndjson)" '"errors":false' "bulk into 3-node cluster"

# kill -9 the elected cluster-manager: the others must elect a new one and keep serving
manager="$(req GET "$url/_cat/cluster_manager?h=node" | tr -d '[:space:]')"
[[ "$manager" =~ ^node-([123])$ ]] || fail "unexpected cluster manager '$manager'"
victim="${BASH_REMATCH[1]}"
survivor=$((victim % 3 + 1))
surl="${urls[survivor - 1]}"
"$OS" kill "$victim" --dir "$WORK/three"
! running "$(cat "$WORK/three/node$victim.pid")" || fail "node-$victim survived kill -9"
ok "kill -9 of node-$victim (the cluster manager)"
t=$(date +%s%N)
out="$(req GET "$surl/_cluster/health?wait_for_nodes=2&wait_for_status=yellow&timeout=60s")"
FAILOVER_MS=$(ms_since "$t")
expect "$out" '"status":"yellow"' "cluster answers yellow with 2 nodes (after ${FAILOVER_MS} ms)"
expect "$out" '"number_of_nodes":2' "2 nodes left"
expect "$(req GET "$surl/orders/_count")" '"count":30' "all docs searchable while yellow"
"$OS" url --dir "$WORK/three" >/dev/null || fail "url subcommand fails with one node down"

t=$(date +%s%N)
"$OS" restart "$victim" --dir "$WORK/three" >/dev/null
RESTART_MS=$(ms_since "$t")
ok "restart of node-$victim rejoined in ${RESTART_MS} ms"
"$OS" wait --status green --nodes 3 --dir "$WORK/three" --timeout 120
expect "$(req GET "$url/_cluster/health")" '"status":"green"' "green again after restart"
expect "$(req GET "${urls[victim - 1]}/orders/_count")" '"count":30' "restarted node serves requests"

# SIGSTOP / SIGCONT of one node (a frozen node; stop must still work afterwards)
"$OS" kill 3 --signal STOP --dir "$WORK/three"
grep -q '^State:.*T' "/proc/$(cat "$WORK/three/node3.pid")/status" || fail "node-3 not stopped by SIGSTOP"
"$OS" kill 3 --signal CONT --dir "$WORK/three"
ok "SIGSTOP/SIGCONT of node-3"

RSS3=()
for i in 1 2 3; do RSS3+=("$(peak_rss "$WORK/three" "$i")"); done
t=$(date +%s%N)
"$OS" stop --dir "$WORK/three"
STOP3_MS=$(ms_since "$t")
for i in 1 2 3; do
    ! running "$(cat "$WORK/three/node$i.pid")" || fail "node-$i still running after stop"
done
ok "stopped 3-node cluster in ${STOP3_MS} ms"

cat >&2 <<EOF
smoke: timings (heap ${OPENSEARCH_HEAP:-512m} per node)
smoke:   build check/build         ${BUILD_MS} ms
smoke:   1-node start to yellow    ${START1_MS} ms, peak RSS ${RSS1} MiB
smoke:   3-node start to green     ${START3_MS} ms, peak RSS ${RSS3[*]} MiB
smoke:   failover to yellow        ${FAILOVER_MS} ms after kill -9 of the cluster manager
smoke:   restart of one node       ${RESTART_MS} ms
EOF
printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
