#!/usr/bin/env bash
# Smoke test of test/opensearch/opensearch.sh, for one engine or several:
#
#   smoke.sh                                  the engine of FLUSSO_ENGINE, else OpenSearch 2.19.6
#   smoke.sh elasticsearch:8.17.0 opensearch:3.3.0 ...
#   smoke.sh all                              every engine that 'opensearch.sh engines' lists
#
# Per engine, a 1-node instance: the version in GET /; an index with a _meta mapping and a write alias; a bulk
# with version_type=external_gte, where a stale version is answered 409 and an equal one accepted; a versioned
# delete; realtime GET, search, _count; an _aliases swap; the read_only_allow_delete block (429); where the engine
# has them, _delete_by_query (OpenSearch: reindex module) and dense_vector with a knn search (Elasticsearch).
# Then a 3-node cluster: replicas, kill -9 of the elected cluster manager, yellow, restart, green, SIGSTOP/SIGCONT
# (SMOKE_NODES=1 skips it). Prints timings and peak RSS per node; exits nonzero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OS="$HERE/opensearch.sh"
WORK="$(mktemp -d /tmp/flusso-os-smoke.XXXXXX)"
PASSED=0
FAILED=0
SUMMARY=""

cleanup() {
    local rc=$? d
    for d in "$WORK"/*/one "$WORK"/*/three; do
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
    printf 'smoke: FAIL: [%s] %s\n' "${ENGINE:-}" "$*" >&2
    printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
    exit 1
}
ok() {
    PASSED=$((PASSED + 1))
    printf 'smoke: ok: [%s] %s\n' "${ENGINE:-}" "$*" >&2
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

# ------------------------------------------------------------------ one engine

# the k-NN plugin (opensearch:2.19.1+knn): a knn_vector index with the lucene engine, documents, a knn query
smoke_knn() {
    local url="$1"
    expect "$(req PUT "$url/vec" '{"settings":{"index.knn":true,"number_of_replicas":0},"mappings":{"properties":{"v":{"type":"knn_vector","dimension":2,"method":{"name":"hnsw","engine":"lucene","space_type":"l2"}}}}}')" \
        '"acknowledged":true' "k-NN: a knn_vector index (lucene engine)"
    expect "$(req POST "$url/vec/_bulk?refresh=true" '{"index":{"_id":"1"}}
{"v":[0,1]}
{"index":{"_id":"2"}}
{"v":[1,0]}
' application/x-ndjson)" '"errors":false' "k-NN: vectors indexed"
    expect "$(req POST "$url/vec/_search" '{"size":1,"query":{"knn":{"v":{"vector":[0.9,0.1],"k":1}}}}')" \
        '"_id":"2"' "k-NN: the knn query finds the nearest"
    expect "$(req DELETE "$url/vec")" '"acknowledged":true' "k-NN: index deleted"
}

smoke_engine() {
    ENGINE="$1"
    local family="${1%%:*}" version="${1#*:}" work="$WORK/${1/:/-}" url out code bulk t
    local -a es=(--engine "$family" --version "$version")
    mkdir -p "$work"
    say "---- $ENGINE"

    # build (not timed as a start)
    t=$(date +%s%N)
    "$OS" build "${es[@]}"
    local build_ms start1_ms rss1
    build_ms=$(ms_since "$t")

    # ---------------------------------------------------------------- one node
    say "1-node instance in $work/one"
    t=$(date +%s%N)
    url="$("$OS" start "${es[@]}" --dir "$work/one")"
    start1_ms=$(ms_since "$t")
    [[ "$url" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "start printed '$url', not a URL"
    [[ "$("$OS" url --dir "$work/one")" == "$url" ]] || fail "url subcommand disagrees with start"
    [[ "$(cat "$work/one/url")" == "$url" && "$(cat "$work/one/urls")" == "$url" ]] || fail "url/urls files"
    [[ "$(cat "$work/one/engine")" == "$ENGINE" ]] || fail "DIR/engine is '$(cat "$work/one/engine")'"
    ok "started in ${start1_ms} ms at $url"

    out="$(req GET "$url/")"
    expect "$out" "\"number\" : \"${version%%+*}\"" "GET / answers version.number ${version%%+*}"
    if [[ "$family" == opensearch ]]; then
        expect "$out" '"distribution" : "opensearch"' "GET / answers distribution opensearch"
    else
        expect "$out" '"build_flavor" : "default"' "GET / answers like Elasticsearch (build_flavor)"
    fi
    expect "$("$OS" status --dir "$work/one")" '"number_of_nodes" : 1' "status shows 1 node"

    # an index as flusso makes it: a generation with a _meta marker, behind a write alias
    req PUT "$url/items_g1" '{
      "settings": {"number_of_shards": 1, "number_of_replicas": 0},
      "mappings": {"_meta": {"flusso": {"index": "items", "database": "shop", "generation": 1}},
                   "properties": {"sku": {"type": "keyword"}, "title": {"type": "text"}, "n": {"type": "long"}}}
    }' >/dev/null
    ok "created index with a _meta mapping"
    out="$(req GET "$url/items_g1/_mapping")"
    # (Elasticsearch answers the marker's keys sorted, OpenSearch in the order given)
    expect "$out" '"_meta":{"flusso":{' "_mapping returns the _meta marker"
    expect "$out" '"index":"items"' "_meta marker has its index"
    expect "$out" '"database":"shop"' "_meta marker has its database"
    expect "$out" '"generation":1' "_meta marker has its generation"
    out="$(req POST "$url/_aliases" '{"actions":[{"add":{"index":"items_g1","alias":"items","is_write_index":true}}]}')"
    expect "$out" '"acknowledged":true' "_aliases add with is_write_index"
    expect "$(req GET "$url/_alias/items")" '"items_g1":{"aliases":{"items":{"is_write_index":true}}}' "GET _alias/NAME"
    expect "$(req GET "$url/items/_alias")" '"items_g1"' "GET NAME/_alias through the alias"

    local filter='filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason'
    bulk='{"index":{"_index":"items","_id":"1","version":10,"version_type":"external_gte"}}
{"sku":"A-1","title":"red apple","n":1}
{"index":{"_index":"items","_id":"2","version":20,"version_type":"external_gte"}}
{"sku":"B-2","title":"green pear","n":2}
{"index":{"_index":"items","_id":"3","version":30,"version_type":"external_gte"}}
{"sku":"C-3","title":"red cherry","n":3}
'
    out="$(req POST "$url/_bulk?$filter" "$bulk" application/x-ndjson)"
    expect "$out" '"errors":false' "bulk with version_type=external_gte through the alias"
    # an older external version must be rejected, the same version accepted (gte); a newer delete applies
    out="$(req POST "$url/_bulk?$filter" '{"index":{"_index":"items","_id":"2","version":19,"version_type":"external_gte"}}
{"sku":"B-2","title":"stale"}
{"index":{"_index":"items","_id":"3","version":30,"version_type":"external_gte"}}
{"sku":"C-3","title":"red cherry","n":3}
{"delete":{"_index":"items","_id":"4","version":40,"version_type":"external_gte"}}
' application/x-ndjson)"
    expect "$out" '{"index":{"status":409,"error":{"type":"version_conflict_engine_exception"' "stale external version answered 409"
    expect "$out" '{"index":{"status":200}}' "equal external version accepted"
    expect "$out" '{"delete":{"status":404}}' "delete of a missing document answered 404"
    out="$(req POST "$url/_bulk?$filter" '{"delete":{"_index":"items","_id":"1","version":11,"version_type":"external_gte"}}
' application/x-ndjson)"
    expect "$out" '"errors":false,"items":[{"delete":{"status":200}}]' "versioned delete"

    out="$(req GET "$url/items/_doc/2")"
    expect "$out" '"found":true' "realtime GET before refresh"
    expect "$out" '"_version":20' "realtime GET returns the external version"
    expect "$out" '"title":"green pear"' "realtime GET returns the source"

    req POST "$url/items/_refresh" >/dev/null
    expect "$(req GET "$url/items/_count")" '"count":2' "_count after the delete"
    out="$(req POST "$url/items/_search" '{"query":{"match":{"title":"red"}}}')"
    expect "$out" '"total":{"value":1,"relation":"eq"}' "search after refresh"
    out="$(req POST "$url/items/_search" '{"query":{"term":{"sku":"B-2"}}}')"
    expect "$out" '"_id":"2"' "keyword term query"

    if [[ "$family" == opensearch ]]; then
        out="$(req POST "$url/items/_delete_by_query?refresh=true" '{"query":{"term":{"sku":"C-3"}}}')"
        expect "$out" '"deleted":1' "_delete_by_query"
        expect "$(req GET "$url/items/_count")" '"count":1' "count after _delete_by_query"
    else
        req PUT "$url/vectors" '{"settings":{"number_of_shards":1,"number_of_replicas":0},
          "mappings":{"properties":{"v":{"type":"dense_vector","dims":3,"similarity":"cosine"}}}}' >/dev/null
        ok "dense_vector mapping"
        out="$(req POST "$url/_bulk?refresh=true&$filter" '{"index":{"_index":"vectors","_id":"x"}}
{"v":[1,0,0]}
{"index":{"_index":"vectors","_id":"y"}}
{"v":[0,1,0]}
' application/x-ndjson)"
        expect "$out" '"errors":false' "bulk of vectors"
        out="$(req POST "$url/vectors/_search" '{"knn":{"field":"v","query_vector":[0.1,1,0],"k":1,"num_candidates":10}}')"
        expect "$out" '"hits":[{"_index":"vectors","_id":"y"' "knn search finds the nearest vector"
    fi

    req PUT "$url/items_g2" '{"settings":{"number_of_shards":1,"number_of_replicas":0}}' >/dev/null
    out="$(req POST "$url/_aliases" '{"actions":[{"remove":{"index":"items_g1","alias":"items"}},{"add":{"index":"items_g2","alias":"items","is_write_index":true}}]}')"
    expect "$out" '"acknowledged":true' "_aliases atomic swap"
    expect "$(req GET "$url/_alias/items")" '"items_g2"' "alias points to the new index"

    # the flood-stage block that tests will set through the API
    req PUT "$url/items_g1/_settings" '{"index.blocks.read_only_allow_delete":true}' >/dev/null
    code="$(curl -s -o /dev/null -w '%{http_code}' -XPOST -H 'Content-Type: application/json' "$url/items_g1/_doc/9" -d '{"sku":"X"}')"
    [[ "$code" == 429 ]] || fail "write into a read_only_allow_delete index answered $code, not 429"
    ok "read_only_allow_delete block rejects writes (429)"
    req PUT "$url/items_g1/_settings" '{"index.blocks.read_only_allow_delete":null}' >/dev/null
    expect "$(req DELETE "$url/items_g1")" '"acknowledged":true' "DELETE of an index"
    [[ "$version" != *+knn ]] || smoke_knn "$url"
    code="$(curl -s -o /dev/null -w '%{http_code}' "$url/items_g1/_mapping")"
    [[ "$code" == 404 ]] || fail "_mapping of a deleted index answered $code, not 404"
    ok "deleted index is gone (404)"

    rss1="$(peak_rss "$work/one" 1)"
    "$OS" stop --dir "$work/one"
    ! running "$(cat "$work/one/node1.pid")" || fail "node still running after stop"
    ok "stopped 1-node instance"

    if [[ "${SMOKE_NODES:-3}" == 1 ]]; then
        SUMMARY+="smoke: $ENGINE (heap ${OPENSEARCH_HEAP:-512m}): build check ${build_ms} ms, 1-node start ${start1_ms} ms, peak RSS ${rss1} MiB"$'\n'
        return 0
    fi

    # ---------------------------------------------------------------- three nodes
    local start3_ms failover_ms restart_ms stop3_ms nodes manager victim survivor surl i name roles cat_manager
    local -a urls rss3=()
    say "3-node cluster in $work/three"
    t=$(date +%s%N)
    url="$("$OS" start "${es[@]}" --nodes 3 --dir "$work/three")"
    start3_ms=$(ms_since "$t")
    ok "3-node cluster green in ${start3_ms} ms at $url"
    IFS=, read -r -a urls <"$work/three/urls"
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

    # kill -9 the elected cluster manager: the others must elect a new one and keep serving
    cat_manager=_cat/cluster_manager
    [[ "$family" == elasticsearch ]] && cat_manager=_cat/master
    manager="$(req GET "$url/$cat_manager?h=node" | tr -d '[:space:]')"
    [[ "$manager" =~ ^node-([123])$ ]] || fail "unexpected cluster manager '$manager'"
    victim="${BASH_REMATCH[1]}"
    survivor=$((victim % 3 + 1))
    surl="${urls[survivor - 1]}"
    "$OS" kill "$victim" --dir "$work/three"
    ! running "$(cat "$work/three/node$victim.pid")" || fail "node-$victim survived kill -9"
    ok "kill -9 of node-$victim (the cluster manager)"
    t=$(date +%s%N)
    out="$(req GET "$surl/_cluster/health?wait_for_nodes=2&wait_for_status=yellow&timeout=60s")"
    failover_ms=$(ms_since "$t")
    expect "$out" '"status":"yellow"' "cluster answers yellow with 2 nodes (after ${failover_ms} ms)"
    expect "$out" '"number_of_nodes":2' "2 nodes left"
    expect "$(req GET "$surl/orders/_count")" '"count":30' "all docs searchable while yellow"
    "$OS" url --dir "$work/three" >/dev/null || fail "url subcommand fails with one node down"

    # restart takes the engine from DIR: no --engine here
    t=$(date +%s%N)
    "$OS" restart "$victim" --dir "$work/three" >/dev/null
    restart_ms=$(ms_since "$t")
    ok "restart of node-$victim rejoined in ${restart_ms} ms"
    "$OS" wait --status green --nodes 3 --dir "$work/three" --timeout 120
    expect "$(req GET "$url/_cluster/health")" '"status":"green"' "green again after restart"
    expect "$(req GET "${urls[victim - 1]}/orders/_count")" '"count":30' "restarted node serves requests"

    # SIGSTOP / SIGCONT of one node (a frozen node; stop must still work afterwards)
    "$OS" kill 3 --signal STOP --dir "$work/three"
    grep -q '^State:.*T' "/proc/$(cat "$work/three/node3.pid")/status" || fail "node-3 not stopped by SIGSTOP"
    "$OS" kill 3 --signal CONT --dir "$work/three"
    ok "SIGSTOP/SIGCONT of node-3"

    for i in 1 2 3; do rss3+=("$(peak_rss "$work/three" "$i")"); done
    t=$(date +%s%N)
    "$OS" stop --dir "$work/three"
    stop3_ms=$(ms_since "$t")
    for i in 1 2 3; do
        ! running "$(cat "$work/three/node$i.pid")" || fail "node-$i still running after stop"
    done
    ok "stopped 3-node cluster in ${stop3_ms} ms"

    SUMMARY+="smoke: $ENGINE (heap ${OPENSEARCH_HEAP:-512m} per node)
smoke:   build check/build         ${build_ms} ms
smoke:   1-node start to yellow    ${start1_ms} ms, peak RSS ${rss1} MiB
smoke:   3-node start to green     ${start3_ms} ms, peak RSS ${rss3[*]} MiB
smoke:   failover to yellow        ${failover_ms} ms after kill -9 of the cluster manager
smoke:   restart of one node       ${restart_ms} ms
"
}

# ------------------------------------------------------------------ main

engines=("$@")
if ((${#engines[@]} == 0)); then
    engines=("${FLUSSO_ENGINE:-opensearch:2.19.6}")
elif [[ "${engines[*]}" == all ]]; then
    mapfile -t engines < <("$OS" engines | awk '{ print $1 }')
fi
for e in "${engines[@]}"; do
    case "$e" in # a bare engine name means its default version
        opensearch) e=opensearch:2.19.6 ;;
        elasticsearch) e=elasticsearch:8.17.0 ;;
        *:*) ;;
        *) fail "engine '$e' must be ENGINE:VERSION, e.g. opensearch:3.3.0" ;;
    esac
    smoke_engine "$e"
done
printf '%s' "$SUMMARY" >&2
printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
