#!/usr/bin/env bash
# scripts/cassandra.sh — a real single-node Cassandra 5.0 for tests and CI, without Docker.
#
# Usage: scripts/cassandra.sh start [--nodes N]|stop|status|kill-node N|start-node N
#
#   start   Start one node answering CQL on 127.0.0.1:9042 and return once
#           "SELECT release_version FROM system.local" succeeds. If something already
#           answers CQL there, say so and exit 0. The data directory is wiped first
#           unless CASSANDRA_KEEP_DATA=1 (use that to restart a node under a running
#           gateway while keeping its keyspaces and tables).
#   stop    SIGTERM the PID in the pidfile (only if it is our java CassandraDaemon),
#           wait up to 30 s, then SIGKILL. No pidfile or a dead PID: exit 0.
#   status  Print whether the node is running and answering CQL.
#           Exit 0 if it answers CQL, 3 otherwise.
#
# Cluster mode (N > 1; docs/operations.md runs tokengw on such a cluster):
#   start --nodes 3   Start N nodes on the loopback addresses of CASSANDRA_CLUSTER_IPS
#                     (default 127.0.1.1 127.0.1.2 127.0.1.3: beside, never on, the single
#                     node's 127.0.0.1; Linux routes all of 127/8 to lo), CQL on 9042 and storage on
#                     7000 of each, and return once every node answers CQL and knows its
#                     N-1 peers on its own schema version. The nodes' data is wiped first
#                     unless CASSANDRA_KEEP_DATA=1.
#   kill-node N       SIGKILL node N (1-based) of the cluster; its data stays.
#   start-node N      Start node N again on its data and wait as above.
#   stop              Stops every node of the cluster (SIGTERM, then SIGKILL) and the single
#                     node, whichever are running.
#   status            With a cluster started (and not stopped): every node, exit 0 when all
#                     answer CQL, 3 otherwise. Without: the single node, as above.
#   The cluster's state lives in $CASSANDRA_RUN_DIR/cluster/nodeN (one config, data dir,
#   log dir and pidfile per node); $CASSANDRA_RUN_DIR/cluster/ips records the addresses.
#
# Environment:
#   CASSANDRA_HOME           cache for the server's jars        (default ~/.cache/tokengw-cassandra)
#                            jars live in $CASSANDRA_HOME/lib and are reused once complete
#   CASSANDRA_RUN_DIR        config, data, logs, pidfile, cqlping (default /tmp/tokengw-cassandra)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL               (default 240)
#   CASSANDRA_KEEP_DATA=1    start without wiping $CASSANDRA_RUN_DIR/data
#   CASSANDRA_CLUSTER_IPS    the cluster's addresses          (default "127.0.1.1 127.0.1.2 127.0.1.3")
#   CASSANDRA_CLUSTER_HEAP   heap of each cluster node            (default 768M)
#   JAVA_HOME                a Java 17 (default: /usr/lib/jvm/java-17-openjdk-amd64 if present)
#
# Files: scripts/cassandra/{pom.xml,cassandra.yaml,logback.xml} (templates; copied into the
# run dir), scripts/cqlping (Go readiness probe, built into the run dir).
# Logs: $RUN_DIR/logs/system.log (INFO+), $RUN_DIR/logs/jvm.out.log (JVM stdout/stderr, WARN+).
#
# What it really took (first end-to-end run, 2 CPUs / 23 GiB machine, OpenJDK 17.0.15, Maven 3.8.7):
#   - cassandra.md's recipe worked as written: the yaml (5.0 key names), the flags and the
#     system properties were all accepted on the first try; nothing was refused. Its
#     --add-exports/--add-opens list is a slight superset of Cassandra's
#     conf/jvm17-server.options (extra exports of jdk.internal.ref and sun.nio.ch, extra
#     opens of java.nio): harmless, kept. Netty allocator properties added from that file.
#   - Maven: 100 jars, 67 MiB in $CASSANDRA_HOME/lib; ~/.m2 grows by ~96 MiB. With an empty
#     ~/.m2 the resolution took 13 s; re-copying from a warm ~/.m2 takes 4 s; with
#     $CASSANDRA_HOME/lib complete (marker .complete-5.0.8) Maven is not run at all.
#     Maven 3.8.7 prints stray ANSI resets even with -q, so its output goes to
#     $CASSANDRA_HOME/mvn.log.
#   - Startup (JVM launch to first successful CQL query, fresh data dir): 13 s on the very
#     first run (cold page cache), 5-8 s afterwards; with CASSANDRA_KEEP_DATA=1 about 7 s.
#     A whole cached `start` (incl. go build of cqlping) is 4.6-9 s wall clock.
#   - Stop: 5 s, of which 2 s were the gossip shutdown announcement;
#     -Dcassandra.shutdown_announce_in_ms=0 brings it to 3 s (2 s is the messaging
#     service quiescing, then drain/flush). A SIGSTOPped JVM is SIGKILLed after 30 s.
#   - Memory: RSS 1.42-1.49 GiB right after start with -Xms1G/-Xmx1G (heap is 1 GiB of it),
#     55 threads, VSZ 3.7 GiB. Plan ~1.5 GiB, more under load (memtables are on heap,
#     netty/chunk-cache buffers off heap up to 256+64 MiB).
#   - The JVM warns about setSecurityManager (expected on 17), missing jemalloc,
#     JMX disabled, vm.max_map_count and read_ahead_kb: all harmless for tests. Without a
#     triggers dir it warns every minute, hence -Dcassandra.triggers_dir.
#   - Root is fine: plain java does not check (bin/cassandra would refuse).
#   - Driver pitfall (cassandra-gocql-driver v2.1.2): ReconnectionPolicy with MaxRetries 0
#     makes the pool append a nil connection and the first query panics (nil pointer in
#     Conn.AvailableStreams). cqlping uses MaxRetries 1; the gateway must not use 0 either.
#   - HeapDumpOnOutOfMemoryError from Cassandra's options is replaced by
#     ExitOnOutOfMemoryError (a 1 GiB dump in /tmp helps nobody in CI; Cassandra's
#     startup check also asks for exit/crash on OOM).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CONF_SRC="$SCRIPT_DIR/cassandra"

CASSANDRA_VERSION="5.0.8"
CASSANDRA_HOME="$(realpath -m "${CASSANDRA_HOME:-$HOME/.cache/tokengw-cassandra}")"
LIB_DIR="$CASSANDRA_HOME/lib"
RUN_DIR="$(realpath -m "${CASSANDRA_RUN_DIR:-/tmp/tokengw-cassandra}")"  # absolute: used in file:// URLs
DATA_DIR="$RUN_DIR/data"
LOG_DIR="$RUN_DIR/logs"
PID_FILE="$RUN_DIR/cassandra.pid"
OUT_LOG="$LOG_DIR/jvm.out.log"
CQLPING="$RUN_DIR/cqlping"
START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-240}"
STOP_TIMEOUT=30
CLUSTER_DIR="$RUN_DIR/cluster"
CLUSTER_HEAP="${CASSANDRA_CLUSTER_HEAP:-768M}"
read -r -a CLUSTER_IPS <<<"${CASSANDRA_CLUSTER_IPS:-127.0.1.1 127.0.1.2 127.0.1.3}"
CQL_HOST=127.0.0.1
CQL_PORT=9042

log() { printf 'cassandra.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# --- helpers ------------------------------------------------------------------------------

# apt_install PKG...: a machine without Java 17 or Maven gets them from Debian
# when this runs as root with apt-get (CI and fresh machines here); elsewhere
# the caller's die message says what to install.
apt_install() {
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || return 1
  log "installing $* with apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } >&2
}

find_java() {
  if [[ -z "${JAVA_HOME:-}" && ! -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]] && ! command -v java >/dev/null; then
    apt_install openjdk-17-jre-headless || true
  fi
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
    JAVA=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
  else
    JAVA="$(command -v java || true)"
  fi
  [[ -n "$JAVA" ]] || die "no java found (need Java 11 or 17; Java 25 cannot run Cassandra 5.0)"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')"
  case "$v" in
    11|17) ;;
    *) die "$JAVA is Java $v; Cassandra $CASSANDRA_VERSION needs Java 11 or 17 (set JAVA_HOME)" ;;
  esac
}

# Prints the PID from the pidfile if that process is alive and is a java CassandraDaemon.
our_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *java* && "$cmd" == *org.apache.cassandra.service.CassandraDaemon* ]] || return 1
  # A zombie still has a /proc entry; treat it as dead.
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  echo "$pid"
}

build_cqlping() {
  mkdir -p "$RUN_DIR"
  # Up to date already: skip the go build (seconds on a busy machine, in the
  # middle of a fault test's start-node).
  if [[ -x "$CQLPING" && "$CQLPING" -nt "$REPO_ROOT/scripts/cqlping/main.go" ]]; then return 0; fi
  command -v go >/dev/null || die "go is needed to build scripts/cqlping"
  (cd "$REPO_ROOT" && go build -o "$CQLPING" ./scripts/cqlping) || die "go build ./scripts/cqlping failed"
}

cql_ok() { "$CQLPING" -q -host "$CQL_HOST" -port "$CQL_PORT" -timeout 2s; }

port_open() { (exec 3<>"/dev/tcp/$CQL_HOST/$CQL_PORT") 2>/dev/null; }

rss_of() { awk '/^VmRSS/ {printf "%d MiB", $2/1024}' "/proc/$1/status" 2>/dev/null || true; }

show_logs() {
  log "---- tail of $OUT_LOG ----"
  tail -n 40 "$OUT_LOG" >&2 2>/dev/null || true
  log "---- tail of $LOG_DIR/system.log ----"
  tail -n 60 "$LOG_DIR/system.log" >&2 2>/dev/null || true
}

# Resolve cassandra-all and its runtime dependencies into $LIB_DIR once; reuse afterwards.
resolve_jars() {
  if [[ -f "$LIB_DIR/.complete-$CASSANDRA_VERSION" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven || true
  command -v mvn >/dev/null || die "mvn is needed to resolve cassandra-all (apt-get install maven)"
  log "resolving cassandra-all:$CASSANDRA_VERSION with Maven into $LIB_DIR (first run downloads ~100 jars)"
  local t0=$SECONDS tmp="$LIB_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp" "$CASSANDRA_HOME"
  # Maven's output goes to a log (even -q prints stray ANSI resets on 3.8.7).
  local mvnlog="$CASSANDRA_HOME/mvn.log"
  if ! mvn -B -q -Dstyle.color=never -f "$CONF_SRC/pom.xml" \
      org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    tail -n 40 "$mvnlog" >&2 || true
    rm -rf "$tmp"
    die "Maven could not resolve cassandra-all:$CASSANDRA_VERSION (log: $mvnlog)"
  fi
  [[ -f "$tmp/cassandra-all-$CASSANDRA_VERSION.jar" ]] || { rm -rf "$tmp"; die "cassandra-all jar missing after Maven"; }
  touch "$tmp/.complete-$CASSANDRA_VERSION"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  log "resolved $(ls "$LIB_DIR"/*.jar | wc -l) jars in $((SECONDS - t0)) s"
}

prepare_run_dir() {
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$RUN_DIR/triggers"
  if [[ "${CASSANDRA_KEEP_DATA:-0}" == 1 && -d "$DATA_DIR" ]]; then
    log "CASSANDRA_KEEP_DATA=1: keeping $DATA_DIR"
  else
    rm -rf "$DATA_DIR"
  fi
  mkdir -p "$DATA_DIR"/{data,commitlog,hints,saved_caches,cdc_raw}
  sed "s|@DATA_DIR@|$DATA_DIR|g" "$CONF_SRC/cassandra.yaml" >"$RUN_DIR/cassandra.yaml"
  cp "$CONF_SRC/logback.xml" "$RUN_DIR/logback.xml"
  # Old logs are kept one generation back for post-mortems.
  for f in "$OUT_LOG" "$LOG_DIR/system.log"; do
    if [[ -f "$f" ]]; then mv -f "$f" "$f.1"; fi
  done
}

# jvm_args [RUN_DIR DATA_DIR LOG_DIR cluster]: the java command line of the
# single node (no arguments) or of one cluster node (its own directories).
jvm_args() {
  local run="${1:-$RUN_DIR}" data="${2:-$DATA_DIR}" logs="${3:-$LOG_DIR}" mode="${4:-single}"
  local jamm
  jamm="$(ls "$LIB_DIR"/jamm-*.jar 2>/dev/null | head -n 1 || true)"
  [[ -n "$jamm" ]] || die "no jamm jar in $LIB_DIR"
  local heap=(-Xms1G -Xmx1G)
  if [[ "$mode" == cluster ]]; then
    # C1 only: a test node's start is mostly JIT work, which C2 multiplies on
    # a machine with 2 busy cores; peak throughput does not matter here.
    heap=("-Xms$CLUSTER_HEAP" "-Xmx$CLUSTER_HEAP" -XX:TieredStopAtLevel=1)
  fi
  JVM_ARGS=(
    # Heap and GC (conf/jvm-server.options, jvm17-server.options).
    "${heap[@]}" -Xss256k
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1
    -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true -ea
    "-javaagent:$jamm"
    # Java 17 module access (conf/jvm17-server.options of the cassandra-5.0 branch).
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
    --add-exports java.base/sun.nio.ch=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    # Netty (jvm17-server.options).
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11
    # What bin/cassandra would otherwise set up.
    "-Dcassandra.config=file://$run/cassandra.yaml"
    "-Dcassandra.storagedir=$data"
    "-Dcassandra.logdir=$logs"
    "-Dlogback.configurationFile=$run/logback.xml"
    -Dcassandra-foreground=yes
    "-Dcassandra.triggers_dir=$run/triggers"
    # No JMX port is set, so no JMX server starts.
    -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Dcassandra.superuser_setup_delay_ms=0
  )
  if [[ "$mode" == cluster ]]; then
    JVM_ARGS+=(
      # Durable: no unsafesystem (a SIGKILLed node must come back with its schema).
      # A fresh cluster has nothing to stream, so the nodes join without
      # bootstrapping (auto_bootstrap: false in their yaml), all at once, and the
      # 30 s ring delay that lets a bootstrapping node learn the ring is cut.
      -Dcassandra.consistent.rangemovement=false
      -Dcassandra.ring_delay_ms=1000
    )
  else
    JVM_ARGS+=(
      # Fast start for a throwaway single node.
      -Dcassandra.unsafesystem=true
      -Dcassandra.system_distributed.default_rf=1
      -Dcassandra.system_traces.default_rf=1
      # Faster stop: no 2 s gossip shutdown announcement (a single node has no peers).
      -Dcassandra.shutdown_announce_in_ms=0
    )
  fi
  JVM_ARGS+=(
    -cp "$LIB_DIR/*"
    org.apache.cassandra.service.CassandraDaemon
  )
}

# Poll CQL every 500 ms until it answers, the JVM dies, or the deadline passes.
wait_ready() {
  local pid="$1" t0=$SECONDS
  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if cql_ok; then
      log "Cassandra answers CQL on $CQL_HOST:$CQL_PORT (pid $pid, ready after $((SECONDS - t0)) s, RSS $(rss_of "$pid"))"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null || ! our_pid >/dev/null; then
      show_logs
      rm -f "$PID_FILE"
      die "Cassandra (pid $pid) exited before answering CQL; logs in $LOG_DIR"
    fi
    if ((SECONDS >= deadline)); then
      show_logs
      die "Cassandra (pid $pid) did not answer CQL within ${START_TIMEOUT} s (still running; '$0 stop' to end it)"
    fi
    sleep 0.5
  done
}

# --- cluster mode -------------------------------------------------------------------------

node_dir() { echo "$CLUSTER_DIR/node$1"; }

# node_pid N: the PID of node N if it is alive and our CassandraDaemon.
node_pid() {
  local pf
  pf="$(node_dir "$1")/cassandra.pid"
  [[ -f "$pf" ]] || return 1
  local pid cmd
  pid="$(tr -dc '0-9' <"$pf")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *org.apache.cassandra.service.CassandraDaemon* && "$cmd" == *"$(node_dir "$1")/"* ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  echo "$pid"
}

# cluster_ips: the addresses the cluster was started with (recorded by start),
# else the configured ones.
cluster_ips() {
  if [[ -f "$CLUSTER_DIR/ips" ]]; then
    read -r -a CLUSTER_IPS <"$CLUSTER_DIR/ips"
  fi
}

node_ip() {
  local n="$1"
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= ${#CLUSTER_IPS[@]})) || die "no node $n (the cluster has ${#CLUSTER_IPS[@]}: ${CLUSTER_IPS[*]})"
  echo "${CLUSTER_IPS[$((n - 1))]}"
}

node_cql_ok() { "$CQLPING" -q -host "$1" -port "$CQL_PORT" -timeout 2s ${2:+-peers "$2"}; }

# prepare_node N WIPE: the node's directories and cassandra.yaml. Tokens are
# spread evenly over the Murmur3 ring (one per node), so with RF = N every
# node holds every row anyway, and the ring is the same on every start.
prepare_node() {
  local n="$1" wipe="$2" dir ip seeds nodes=${#CLUSTER_IPS[@]}
  dir="$(node_dir "$n")"
  ip="$(node_ip "$n")"
  # Every node is a seed: a seed may start before any peer answers (a non-seed's
  # shadow round gives up with "Unable to gossip with any peers" when the
  # seeds are still starting), so all nodes start at once.
  seeds="$(printf '%s:7000,' "${CLUSTER_IPS[@]}")"
  seeds="${seeds%,}"
  local step=$((9223372036854775807 / nodes * 2))
  local token=$((-9223372036854775807 + (n - 1) * step))
  if [[ "$wipe" == 1 ]]; then rm -rf "$dir/data"; fi
  mkdir -p "$dir/logs" "$dir/triggers" "$dir/data"/{data,commitlog,hints,saved_caches,cdc_raw}
  sed -e "s|@DATA_DIR@|$dir/data|g" \
    -e "s|^cluster_name: .*|cluster_name: tokengw-cluster|" \
    -e "s|^initial_token: .*|initial_token: $token|" \
    -e "s|^listen_address: .*|listen_address: $ip|" \
    -e "s|^rpc_address: .*|rpc_address: $ip|" \
    -e "s|- seeds: .*|- seeds: \"$seeds\"|" \
    "$CONF_SRC/cassandra.yaml" >"$dir/cassandra.yaml"
  cat >>"$dir/cassandra.yaml" <<YAML

# Cluster node $n of $nodes (scripts/cassandra.sh start --nodes $nodes).
auto_bootstrap: false
YAML
  cp "$CONF_SRC/logback.xml" "$dir/logback.xml"
  for f in "$dir/logs/jvm.out.log" "$dir/logs/system.log"; do
    if [[ -f "$f" ]]; then mv -f "$f" "$f.1"; fi
  done
}

launch_node() {
  local n="$1" dir pid
  dir="$(node_dir "$n")"
  jvm_args "$dir" "$dir/data" "$dir/logs" cluster
  cd "$dir"
  setsid nohup "$JAVA" "${JVM_ARGS[@]}" >"$dir/logs/jvm.out.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/cassandra.pid"
  cd - >/dev/null
  log "node $n: starting on $(node_ip "$n") (pid $pid, heap $CLUSTER_HEAP, data $dir/data)"
}

# wait_nodes N...: until each node answers CQL and agrees on the schema with
# all its peers, a node dies, or the deadline passes.
wait_nodes() {
  local t0=$SECONDS deadline=$((SECONDS + START_TIMEOUT)) peers=$((${#CLUSTER_IPS[@]} - 1))
  local pending=("$@") n
  while ((${#pending[@]} > 0)); do
    local still=()
    for n in "${pending[@]}"; do
      if node_cql_ok "$(node_ip "$n")" "$peers"; then
        log "node $n answers CQL on $(node_ip "$n"):$CQL_PORT and agrees on the schema with $peers peers ($((SECONDS - t0)) s, RSS $(rss_of "$(node_pid "$n")"))"
        continue
      fi
      if ! node_pid "$n" >/dev/null; then
        tail -n 60 "$(node_dir "$n")/logs/system.log" >&2 2>/dev/null || true
        die "node $n exited before answering CQL; logs in $(node_dir "$n")/logs"
      fi
      still+=("$n")
    done
    pending=("${still[@]}")
    ((${#pending[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for n in "${pending[@]}"; do tail -n 30 "$(node_dir "$n")/logs/system.log" >&2 2>/dev/null || true; done
      die "node(s) ${pending[*]} not ready within ${START_TIMEOUT} s ('$0 stop' ends them)"
    fi
    sleep 0.5
  done
}

cmd_start_cluster() {
  local nodes="$1" n
  ((nodes >= 2 && nodes <= ${#CLUSTER_IPS[@]})) || die "--nodes $nodes: CASSANDRA_CLUSTER_IPS has ${#CLUSTER_IPS[@]} addresses (${CLUSTER_IPS[*]})"
  CLUSTER_IPS=("${CLUSTER_IPS[@]:0:$nodes}")
  build_cqlping
  for n in $(seq 1 "$nodes"); do
    if node_pid "$n" >/dev/null; then die "node $n is already running ('$0 stop' first)"; fi
    if (exec 3<>"/dev/tcp/$(node_ip "$n")/$CQL_PORT") 2>/dev/null; then
      die "$(node_ip "$n"):$CQL_PORT is in use by something else"
    fi
  done
  find_java
  resolve_jars
  mkdir -p "$CLUSTER_DIR"
  local wipe=1
  [[ "${CASSANDRA_KEEP_DATA:-0}" == 1 ]] && wipe=0
  echo "${CLUSTER_IPS[*]}" >"$CLUSTER_DIR/ips"
  local t0=$SECONDS
  for n in $(seq 1 "$nodes"); do
    prepare_node "$n" "$wipe"
    launch_node "$n"
  done
  wait_nodes $(seq 1 "$nodes")
  log "cluster of $nodes nodes up in $((SECONDS - t0)) s: ${CLUSTER_IPS[*]}"
}

cmd_kill_node() {
  cluster_ips
  local n="$1" pid
  node_ip "$n" >/dev/null
  if ! pid="$(node_pid "$n")"; then
    log "node $n is not running"
    return 0
  fi
  kill -KILL "$pid"
  for _ in $(seq 1 100); do
    node_pid "$n" >/dev/null || break
    sleep 0.05
  done
  log "node $n (pid $pid, $(node_ip "$n")) killed with SIGKILL"
}

cmd_start_node() {
  cluster_ips
  local n="$1"
  node_ip "$n" >/dev/null
  [[ -d "$(node_dir "$n")/data" ]] || die "node $n has no data dir; start the cluster with '$0 start --nodes N'"
  if node_pid "$n" >/dev/null; then
    log "node $n is already running"
  else
    build_cqlping
    find_java
    prepare_node "$n" 0
    launch_node "$n"
  fi
  wait_nodes "$n"
}

stop_pid() {
  local pid="$1" what="$2" t0=$SECONDS
  log "stopping $what (pid $pid, RSS $(rss_of "$pid"))"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [[ -r "/proc/$pid/stat" && "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; do
    if ((SECONDS - t0 >= STOP_TIMEOUT)); then
      log "$what still alive after ${STOP_TIMEOUT} s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
}

cmd_stop_cluster() {
  [[ -f "$CLUSTER_DIR/ips" ]] || return 0
  cluster_ips
  local n pid pids=()
  for n in $(seq 1 "${#CLUSTER_IPS[@]}"); do
    if pid="$(node_pid "$n")"; then
      stop_pid "$pid" "node $n" &
      pids+=($!)
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  for n in $(seq 1 "${#CLUSTER_IPS[@]}"); do rm -f "$(node_dir "$n")/cassandra.pid"; done
  # Data stays (CASSANDRA_KEEP_DATA=1 start --nodes N reuses it); status forgets the cluster.
  rm -f "$CLUSTER_DIR/ips"
  log "cluster stopped"
}

cmd_status_cluster() {
  [[ -f "$CLUSTER_DIR/ips" ]] || return 3
  cluster_ips
  if [[ ! -x "$CQLPING" ]]; then build_cqlping; fi
  local n ip pid up=0
  for n in $(seq 1 "${#CLUSTER_IPS[@]}"); do
    ip="$(node_ip "$n")"
    if pid="$(node_pid "$n")"; then
      if node_cql_ok "$ip"; then
        echo "node $n: answering CQL on $ip:$CQL_PORT (pid $pid, RSS $(rss_of "$pid"))"
        up=$((up + 1))
      else
        echo "node $n: running (pid $pid) but not answering CQL on $ip:$CQL_PORT"
      fi
    else
      echo "node $n: not running ($ip)"
    fi
  done
  ((up == ${#CLUSTER_IPS[@]})) || return 3
}

# --- subcommands --------------------------------------------------------------------------

cmd_start() {
  build_cqlping
  if cql_ok; then
    log "something already answers CQL on $CQL_HOST:$CQL_PORT; not starting another node"
    return 0
  fi
  local pid
  if pid="$(our_pid)"; then
    log "Cassandra (pid $pid) is already starting; waiting for it"
    wait_ready "$pid"
    return 0
  fi
  if port_open; then
    die "port $CQL_PORT is in use by something that does not answer CQL"
  fi

  find_java
  resolve_jars
  prepare_run_dir
  jvm_args

  log "starting Cassandra $CASSANDRA_VERSION (data: $DATA_DIR, logs: $LOG_DIR)"
  # setsid: own session, so a Ctrl-C in the caller's terminal does not reach it;
  # setsid and nohup both exec, so $! is the java process itself.
  cd "$RUN_DIR"
  setsid nohup "$JAVA" "${JVM_ARGS[@]}" >"$OUT_LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  cd - >/dev/null
  wait_ready "$pid"
}

cmd_stop() {
  local pid
  if ! pid="$(our_pid)"; then
    if [[ -f "$PID_FILE" ]]; then
      log "pidfile $PID_FILE names no running CassandraDaemon; removing it"
      rm -f "$PID_FILE"
    else
      log "not running (no pidfile)"
    fi
    return 0
  fi
  log "stopping Cassandra (pid $pid, RSS $(rss_of "$pid"))"
  kill -TERM "$pid" 2>/dev/null || true
  local t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null && our_pid >/dev/null; do
    if ((SECONDS - t0 >= STOP_TIMEOUT)); then
      log "still alive after ${STOP_TIMEOUT} s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # Reap-free wait for SIGKILL to take effect.
  for _ in $(seq 1 50); do
    our_pid >/dev/null || break
    sleep 0.1
  done
  rm -f "$PID_FILE"
  log "stopped after $((SECONDS - t0)) s"
}

cmd_status() {
  local pid running=""
  if pid="$(our_pid)"; then
    running="pid $pid, RSS $(rss_of "$pid")"
  fi
  if [[ ! -x "$CQLPING" ]]; then build_cqlping; fi
  if cql_ok; then
    echo "answering CQL on $CQL_HOST:$CQL_PORT${running:+ ($running)}"
    return 0
  fi
  if [[ -n "$running" ]]; then
    echo "running ($running) but not answering CQL on $CQL_HOST:$CQL_PORT"
  else
    echo "not running"
  fi
  return 3
}

case "${1:-}" in
  start)
    if [[ "${2:-}" == --nodes ]]; then
      [[ "${3:-}" =~ ^[0-9]+$ ]] || die "start --nodes N: N is a number"
      if (("$3" > 1)); then cmd_start_cluster "$3"; else cmd_start; fi
    elif [[ -n "${2:-}" ]]; then
      die "start: unknown argument ${2}"
    else
      cmd_start
    fi
    ;;
  stop)
    cmd_stop_cluster
    cmd_stop
    ;;
  status)
    if [[ -f "$CLUSTER_DIR/ips" ]]; then cmd_status_cluster; else cmd_status; fi
    ;;
  kill-node) cmd_kill_node "${2:?kill-node N}" ;;
  start-node) cmd_start_node "${2:?start-node N}" ;;
  *)
    echo "usage: $0 start [--nodes N]|stop|status|kill-node N|start-node N" >&2
    exit 2
    ;;
esac
