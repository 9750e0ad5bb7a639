#!/usr/bin/env bash
# scripts/keycloak.sh — a real Keycloak 26 for the upstream-mode tests, without Docker.
#
# Usage: scripts/keycloak.sh start|stop|status
#
#   start   Run Keycloak (dev mode, HTTP only) on 127.0.0.1:8180 with the realm of
#           scripts/keycloak/realm.json imported, and return once that realm's token
#           endpoint issues a client_credentials token. If the token endpoint answers
#           already, say so and exit 0. Keycloak's data directory (an H2 file) is wiped
#           first, so every start imports the realm afresh.
#   stop    SIGTERM the PID in the pidfile (only if it is our Keycloak), wait up to 30 s,
#           then SIGKILL it and its children. No pidfile or a dead PID: exit 0.
#   status  Print whether it runs and whether the token endpoint answers.
#           Exit 0 if it answers, 3 otherwise.
#
# The realm "tokengw" (scripts/keycloak/realm.json):
#   - client gw-service / gw-service-secret: confidential, service account on
#     (client_credentials), no refresh token with client_credentials;
#   - client gw-app / gw-app-secret: confidential, direct access grants on, so the tests
#     get refresh tokens with grant_type=password for user alice / alice-password;
#   - refresh-token rotation with reuse detection: revokeRefreshToken=true,
#     refreshTokenMaxReuse=0 (a refresh token used twice is refused with invalid_grant).
#   - access tokens live 300 s.
#
# Environment:
#   KEYCLOAK_CACHE          where the distribution is kept (default ~/.cache/tokengw-keycloak)
#   KEYCLOAK_RUN_DIR        pidfile and log                 (default /tmp/tokengw-keycloak)
#   KEYCLOAK_START_TIMEOUT  seconds to wait for the token endpoint (default 600)
#   KEYCLOAK_HEAP           JVM heap options                (default "-Xms128m -Xmx512m")
#   JAVA_HOME               a Java 21+ (default: the newest Java >= 21 under /usr/lib/jvm)
#
# What it took (first end-to-end run, 2 CPUs / 23 GiB machine shared with a Cassandra and
# other builds; Temurin 25.0.3; Maven 3.8.7; Keycloak 26.7.3):
#   - Maven: `maven-dependency-plugin:3.6.1:copy` of org.keycloak:keycloak-quarkus-dist:
#     26.7.3:tar.gz, 168 MiB, 16.5 s with an empty cache; the unpacked tree (~190 MiB)
#     stays in $KEYCLOAK_CACHE, and later starts run neither Maven nor tar.
#   - Unpacking: 2.7 s.
#   - Start (launch to the first client_credentials token, fresh H2 database, realm import):
#     75 s on the first run (load average ~5 on the 2 CPUs); start-dev re-augments on every
#     start (kc.sh exits 10 and execs java again), which is ~1/3 of it. A second start while
#     the machine ran at load average ~20 took ~10 min (Keycloak's own "Bootstrap completed
#     in 328 s"), hence the 600 s default timeout and the 10 s probe timeout.
#   - Memory: RSS 450-470 MiB right after start, ~490 MiB after the upstream tests
#     (-Xms128m -Xmx512m; Keycloak's own default without a container is -Xmx512m too).
#   - Stop: SIGTERM, gone in 2 s.
#   - kc.sh runs java as a child and forwards SIGTERM to it; on the first start-dev
#     it re-augments and then execs java. So the pidfile's PID is kc.sh (or java after
#     the exec); stop sends SIGTERM to that PID, and SIGKILLs it and its children by PID
#     after 30 s.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REALM_FILE="$SCRIPT_DIR/keycloak/realm.json"

KC_VERSION="26.7.3"
KC_CACHE="$(realpath -m "${KEYCLOAK_CACHE:-$HOME/.cache/tokengw-keycloak}")"
KC_HOME="$KC_CACHE/keycloak-$KC_VERSION"
RUN_DIR="$(realpath -m "${KEYCLOAK_RUN_DIR:-/tmp/tokengw-keycloak}")"
PID_FILE="$RUN_DIR/keycloak.pid"
OUT_LOG="$RUN_DIR/keycloak.log"
START_TIMEOUT="${KEYCLOAK_START_TIMEOUT:-600}"
STOP_TIMEOUT=30
HOST=127.0.0.1
PORT=8180
REALM=tokengw
TOKEN_URL="http://$HOST:$PORT/realms/$REALM/protocol/openid-connect/token"

log() { printf 'keycloak.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=scripts/lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

# --- helpers ------------------------------------------------------------------------------

java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}'
}

# find_java picks $JAVA_HOME if it is 21+, else the newest Java >= 21 under /usr/lib/jvm.
find_java() {
  JAVA=""
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    local v
    v="$(java_major "$JAVA_HOME/bin/java")"
    if [[ "$v" =~ ^[0-9]+$ ]] && ((v >= 21)); then
      JAVA="$JAVA_HOME/bin/java"
      return 0
    fi
    log "JAVA_HOME=$JAVA_HOME is Java $v; looking for a Java 21+ under /usr/lib/jvm"
  fi
  local best=0 j v
  for j in /usr/lib/jvm/*/bin/java; do
    [[ -x "$j" ]] || continue
    v="$(java_major "$j")"
    [[ "$v" =~ ^[0-9]+$ ]] || continue
    if ((v >= 21 && v > best)); then
      best=$v
      JAVA="$j"
    fi
  done
  [[ -n "$JAVA" ]] || die "no Java 21+ found under /usr/lib/jvm (Keycloak $KC_VERSION needs 21+; set JAVA_HOME)"
}

# Prints the PID from the pidfile if that process is alive and is our Keycloak
# (kc.sh or the java it exec'd, both name $KC_HOME on their command line).
our_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid cmd
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *"$KC_HOME"* ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  echo "$pid"
}

# children PID: the direct children of PID (kc.sh's java).
children() {
  local p
  for p in /proc/[0-9]*; do
    [[ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" == "$1" ]] && echo "${p#/proc/}"
  done
  return 0
}

# rss PID: resident memory of PID and its children, MiB.
rss_of() {
  local total=0 p kb
  for p in "$1" $(children "$1"); do
    kb="$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)"
    total=$((total + ${kb:-0}))
  done
  echo "$((total / 1024)) MiB"
}

# token_ok: the realm's token endpoint issues a client_credentials token.
token_ok() {
  local body
  body="$(curl -s -m 10 -u gw-service:gw-service-secret -d grant_type=client_credentials "$TOKEN_URL" 2>/dev/null)" || return 1
  [[ "$body" == *'"access_token"'* ]]
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

# Resolve and unpack the distribution once; reuse afterwards.
install_dist() {
  if [[ -f "$KC_HOME/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn is needed to fetch keycloak-quarkus-dist (apt-get install maven)"
  mkdir -p "$KC_CACHE"
  local t0=$SECONDS pom="$KC_CACHE/pom.xml" mvnlog="$KC_CACHE/mvn.log"
  # The copy goal needs a project; an empty pom packaging pom is enough.
  cat >"$pom" <<'EOF'
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tokengw</groupId><artifactId>keycloak-fetch</artifactId><version>1</version>
  <packaging>pom</packaging>
</project>
EOF
  log "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION with Maven (~170 MiB on the first run)"
  if ! mvn -B -q -Dstyle.color=never -f "$pom" \
      org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:tar.gz" \
      "-DoutputDirectory=$KC_CACHE/dist" >"$mvnlog" 2>&1; then
    tail -n 40 "$mvnlog" >&2 || true
    die "Maven could not fetch keycloak-quarkus-dist:$KC_VERSION (log: $mvnlog)"
  fi
  local tgz="$KC_CACHE/dist/keycloak-quarkus-dist-$KC_VERSION.tar.gz"
  [[ -f "$tgz" ]] || die "$tgz missing after Maven"
  rm -rf "$KC_HOME"
  tar -xzf "$tgz" -C "$KC_CACHE" || die "unpacking $tgz failed"
  [[ -x "$KC_HOME/bin/kc.sh" ]] || die "$KC_HOME/bin/kc.sh missing after unpacking"
  touch "$KC_HOME/.complete"
  log "installed Keycloak $KC_VERSION in $KC_HOME in $((SECONDS - t0)) s"
}

wait_ready() {
  local pid="$1" t0="$2"
  local deadline=$((SECONDS + START_TIMEOUT))
  while :; do
    if token_ok; then
      log "Keycloak answers at $TOKEN_URL (pid $pid, ready after $((SECONDS - t0)) s, RSS $(rss_of "$pid"))"
      return 0
    fi
    if ! our_pid >/dev/null; then
      tail -n 60 "$OUT_LOG" >&2 2>/dev/null || true
      rm -f "$PID_FILE"
      die "Keycloak (pid $pid) exited before its token endpoint answered; log: $OUT_LOG"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 60 "$OUT_LOG" >&2 2>/dev/null || true
      die "Keycloak (pid $pid) did not answer within ${START_TIMEOUT} s (still running; '$0 stop' ends it)"
    fi
    sleep 0.5
  done
}

# --- subcommands --------------------------------------------------------------------------

cmd_start() {
  command -v curl >/dev/null || die "curl is needed to probe the token endpoint"
  if token_ok; then
    log "a Keycloak token endpoint answers at $TOKEN_URL already; not starting another"
    return 0
  fi
  local pid t0=$SECONDS
  if pid="$(our_pid)"; then
    log "Keycloak (pid $pid) is already starting; waiting for it"
    wait_ready "$pid" "$t0"
    return 0
  fi
  if port_open; then
    die "port $PORT is in use by something that is not this realm's Keycloak"
  fi
  find_java
  install_dist
  mkdir -p "$RUN_DIR"
  # A fresh H2 database and the realm to import on every start.
  rm -rf "$KC_HOME/data"
  mkdir -p "$KC_HOME/data/import"
  cp "$REALM_FILE" "$KC_HOME/data/import/tokengw-realm.json"
  if [[ -f "$OUT_LOG" ]]; then mv -f "$OUT_LOG" "$OUT_LOG.1"; fi

  log "starting Keycloak $KC_VERSION on $HOST:$PORT with $JAVA (log: $OUT_LOG)"
  t0=$SECONDS
  # setsid: its own session, so a Ctrl-C of the caller does not reach it; setsid and
  # nohup exec, so $! is kc.sh itself.
  cd "$RUN_DIR"
  JAVA_HOME="$(dirname "$(dirname "$JAVA")")" \
    JAVA="$JAVA" \
    JAVA_OPTS_KC_HEAP="${KEYCLOAK_HEAP:--Xms128m -Xmx512m}" \
    setsid nohup "$KC_HOME/bin/kc.sh" start-dev \
      --http-host="$HOST" --http-port="$PORT" \
      --hostname-strict=false \
      --import-realm \
      --health-enabled=false --metrics-enabled=false \
      --log-level=WARN,org.keycloak.services:INFO \
      >"$OUT_LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  cd - >/dev/null
  wait_ready "$pid" "$t0"
}

cmd_stop() {
  local pid kids
  pid="$(our_pid)" && kids="$(children "$pid")"
  # shellcheck disable=SC2086 # kids: a list of pids
  svc_stop Keycloak $kids || return 0
  # kc.sh waits for its java; should it be gone first, its java gets the same end.
  local k
  for k in $kids; do
    if [[ -r "/proc/$k/cmdline" ]] && tr '\0' ' ' <"/proc/$k/cmdline" | grep -qF "$KC_HOME"; then
      kill -TERM "$k" 2>/dev/null || true
    fi
  done
  log "stopped after $((SECONDS - SVC_STOP_T0)) s"
}

cmd_status() { svc_status; }

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
