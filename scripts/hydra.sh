#!/usr/bin/env bash
# scripts/hydra.sh — a real ORY Hydra v2.3.0 for the headline comparison, without Docker.
#
# Usage: scripts/hydra.sh start|stop|status|tokens|build
#
#   start   Run `hydra serve all --dev` with a file SQLite database under $HYDRA_RUN_DIR,
#           public API on 127.0.0.1:4444, admin API on 127.0.0.1:4445, and return once
#           the client lt-hydra / lt-hydra-secret (client_credentials, client_secret_basic)
#           gets a token from /oauth2/token. If that token request answers already, say so
#           and exit 0. The database is wiped first, so every start migrates a fresh
#           SQLite file (`hydra migrate sql up`) and creates the client afresh through the
#           admin API. When the binary is missing it is built first (see below).
#   stop    SIGTERM the PID in the pidfile (only if it is our Hydra), wait up to 15 s,
#           then SIGKILL it. No pidfile or a dead PID: exit 0.
#   status  Print whether it runs and whether the token endpoint answers.
#           Exit 0 if it answers, 3 otherwise.
#   tokens  Print the number of access tokens in the database (rows of
#           hydra_oauth2_access), read-only, with the sqlite3 CLI or else python3.
#   build   Build the binary if it is missing (start does that too) and print its path.
#
# Configuration ($HYDRA_RUN_DIR/hydra.json, written on every start): Hydra's defaults but
# for the listeners, the issuer, a random system secret, log level warn (every request
# would be logged at info otherwise) and the DSN
#   sqlite://$HYDRA_RUN_DIR/db.sqlite?_fk=true
# (SQLite's own defaults: rollback journal, synchronous=FULL, so a token is on disk before
# its answer). Access tokens are Hydra's default, opaque (ory_at_...), and stored.
# Client secrets are hashed with Hydra's default hasher, pbkdf2-sha256 with 25,000
# iterations (oauth2.hashers.pbkdf2.iterations), verified on every token request;
# HYDRA_PBKDF2_ITERATIONS sets that key instead (the client's hash is made with it, so stop
# first: a start while a Hydra answers leaves that one as it is).
#
# The binary: ORY Hydra v2.3.0 with SQLite, $HYDRA_CACHE/hydra-v2.3.0. Hydra's release
# binaries are not fetched; it is built from the Go module proxy in $HYDRA_CACHE/build:
#   go.mod with   replace github.com/gobuffalo/pop/v6 => github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b
#   go get -tool github.com/ory/hydra/v2@v2.3.0
#   CGO_ENABLED=1 go build -mod=mod -p 1 -tags sqlite,sqlite_omit_load_extension github.com/ory/hydra/v2
# (nice'd, GOMAXPROCS=1). Without the replace, hydra v2.3.0 does not compile against the
# pop its go.mod names (persister.go: "p.conn.Store.SQLDB undefined"); Hydra's own go.mod
# carries the same replace, which a dependency's replace cannot pass on. The binary's
# `hydra version` says "master" (no ldflags); its file name carries the version, and
# loadtest reads it from there.
#
# Environment:
#   HYDRA_CACHE              binary and build directory (default ~/.cache/tokengw-hydra)
#   HYDRA_RUN_DIR            config, database, pidfile, log (default /tmp/tokengw-hydra)
#   HYDRA_DB                 the database `tokens` reads (default $HYDRA_RUN_DIR/db.sqlite)
#   HYDRA_PBKDF2_ITERATIONS  oauth2.hashers.pbkdf2.iterations (default: Hydra's, 25,000)
#   HYDRA_START_TIMEOUT      seconds to wait for the token endpoint (default 120)
#
# What it took (2 CPUs shared with a Cassandra, a Keycloak and other builds): the first
# build ~10 min at nice 19 with -p 1 (most of it cgo's sqlite3); a rebuild into an empty
# HYDRA_CACHE with Go's build cache warm 20 s, byte-identical to the first; migrate ~1 s;
# start to the first token 1-2 s; RSS 45 MiB after start, ~60 MiB after a few thousand
# token requests.
set -euo pipefail

HYDRA_VERSION="v2.3.0"
POP_REPLACE="github.com/gobuffalo/pop/v6 => github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b"
HYDRA_CACHE="$(realpath -m "${HYDRA_CACHE:-$HOME/.cache/tokengw-hydra}")"
BUILD_DIR="$HYDRA_CACHE/build"
BIN="$HYDRA_CACHE/hydra-$HYDRA_VERSION"
RUN_DIR="$(realpath -m "${HYDRA_RUN_DIR:-/tmp/tokengw-hydra}")"
DB="$(realpath -m "${HYDRA_DB:-$RUN_DIR/db.sqlite}")"
CONFIG="$RUN_DIR/hydra.json"
PID_FILE="$RUN_DIR/hydra.pid"
OUT_LOG="$RUN_DIR/hydra.log"
START_TIMEOUT="${HYDRA_START_TIMEOUT:-120}"
STOP_TIMEOUT=15
HOST=127.0.0.1
PUBLIC_PORT=4444
ADMIN_PORT=4445
TOKEN_URL="http://$HOST:$PUBLIC_PORT/oauth2/token"
ADMIN_URL="http://$HOST:$ADMIN_PORT"
CLIENT_ID=lt-hydra
CLIENT_SECRET=lt-hydra-secret

log() { printf 'hydra.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=scripts/lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

# --- helpers ------------------------------------------------------------------------------

# Prints the PID from the pidfile if that process is alive and is our Hydra ($BIN serve).
our_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid cmd
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == "$BIN serve "* ]] || return 1
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
  echo "$pid"
}

rss_of() {
  local kb
  kb="$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)"
  echo "$((${kb:-0} / 1024)) MiB"
}

# token_ok: the token endpoint issues lt-hydra a client_credentials token.
token_ok() {
  local body
  body="$(curl -s -m 10 -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials "$TOKEN_URL" 2>/dev/null)" || return 1
  [[ "$body" == *'"access_token"'* ]]
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# build_bin builds $BIN once (see the header); later starts reuse it.
build_bin() {
  [[ -x "$BIN" ]] && return 0
  command -v go >/dev/null || die "go is needed to build Hydra $HYDRA_VERSION"
  command -v gcc >/dev/null || command -v cc >/dev/null || die "a C compiler is needed (cgo, sqlite3)"
  mkdir -p "$BUILD_DIR"
  local t0=$SECONDS blog="$BUILD_DIR/build.log"
  # A fresh go.mod: the replace first, then go get resolves everything else from
  # hydra v2.3.0's own requirements (minimal version selection, so the same set every time).
  # The go line is the toolchain's, as `go mod init` writes it (it sets the binary's
  # default GODEBUG).
  local gover
  gover="$(go env GOVERSION)"
  gover="${gover#go}"
  gover="${gover%% *}"
  cat >"$BUILD_DIR/go.mod" <<EOF
module tokengw-hydra-build

go $gover

replace $POP_REPLACE
EOF
  log "building ORY Hydra $HYDRA_VERSION with SQLite in $BUILD_DIR (nice 19, -p 1; ~10 min the first time; log: $blog)"
  if ! (
    cd "$BUILD_DIR"
    go get -tool "github.com/ory/hydra/v2@$HYDRA_VERSION"
    CGO_ENABLED=1 GOMAXPROCS=1 nice -n 19 go build -mod=mod -p 1 \
      -tags sqlite,sqlite_omit_load_extension -o "$BIN.tmp" github.com/ory/hydra/v2
  ) >"$blog" 2>&1; then
    tail -n 30 "$blog" >&2 || true
    rm -f "$BIN.tmp"
    die "building Hydra $HYDRA_VERSION failed (log: $blog)"
  fi
  mv -f "$BIN.tmp" "$BIN"
  log "built $BIN in $((SECONDS - t0)) s"
}

write_config() {
  local secret hashers=""
  secret="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)"
  [[ ${#secret} -ge 16 ]] || secret="$(date +%s%N)tokengw-hydra-secret"
  if [[ -n "${HYDRA_PBKDF2_ITERATIONS:-}" ]]; then
    [[ "$HYDRA_PBKDF2_ITERATIONS" =~ ^[1-9][0-9]*$ ]] || die "HYDRA_PBKDF2_ITERATIONS=$HYDRA_PBKDF2_ITERATIONS: a positive integer"
    hashers=",
  \"oauth2\": {\"hashers\": {\"algorithm\": \"pbkdf2\", \"pbkdf2\": {\"iterations\": $HYDRA_PBKDF2_ITERATIONS}}}"
  fi
  (
    umask 077
    cat >"$CONFIG" <<EOF
{
  "dsn": "sqlite://$DB?_fk=true",
  "serve": {
    "public": {"host": "$HOST", "port": $PUBLIC_PORT},
    "admin": {"host": "$HOST", "port": $ADMIN_PORT}
  },
  "urls": {"self": {"issuer": "http://$HOST:$PUBLIC_PORT"}},
  "secrets": {"system": ["$secret"]},
  "log": {"level": "warn"}$hashers
}
EOF
  )
}

# create_client registers lt-hydra through the admin API.
create_client() {
  local code
  code="$(curl -s -m 30 -o "$RUN_DIR/client.json" -w '%{http_code}' -X POST "$ADMIN_URL/admin/clients" \
    -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"$CLIENT_ID\",\"client_secret\":\"$CLIENT_SECRET\",\"grant_types\":[\"client_credentials\"],\"response_types\":[\"token\"],\"token_endpoint_auth_method\":\"client_secret_basic\"}")" || code=000
  rm -f "$RUN_DIR/client.json" # it echoes the secret
  [[ "$code" == 201 ]] || die "creating client $CLIENT_ID: admin API answered HTTP $code"
}

# wait_until PID T0 WHAT CMD...: poll CMD every 0.2 s while Hydra runs.
wait_until() {
  local pid="$1" t0="$2" what="$3"
  shift 3
  local deadline=$((t0 + START_TIMEOUT))
  until "$@"; do
    if ! our_pid >/dev/null; then
      tail -n 40 "$OUT_LOG" >&2 2>/dev/null || true
      rm -f "$PID_FILE"
      die "Hydra (pid $pid) exited before $what; log: $OUT_LOG"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 40 "$OUT_LOG" >&2 2>/dev/null || true
      die "Hydra (pid $pid): no $what within ${START_TIMEOUT} s (still running; '$0 stop' ends it)"
    fi
    sleep 0.2
  done
}

admin_ready() { curl -sf -m 5 -o /dev/null "$ADMIN_URL/health/ready" 2>/dev/null; }

# --- subcommands --------------------------------------------------------------------------

cmd_start() {
  command -v curl >/dev/null || die "curl is needed to probe the token endpoint"
  if token_ok; then
    log "a Hydra token endpoint answers at $TOKEN_URL already; not starting another"
    return 0
  fi
  local pid t0=$SECONDS
  if pid="$(our_pid)"; then
    die "Hydra (pid $pid) runs but $CLIENT_ID gets no token; '$0 stop' first"
  fi
  local p
  for p in $PUBLIC_PORT $ADMIN_PORT; do
    if port_open "$p"; then die "port $p is in use by something that is not this script's Hydra"; fi
  done
  build_bin
  mkdir -p "$RUN_DIR"
  rm -f "$DB" "$DB-journal" "$DB-wal" "$DB-shm"
  write_config
  if [[ -f "$OUT_LOG" ]]; then mv -f "$OUT_LOG" "$OUT_LOG.1"; fi
  log "migrating a fresh SQLite database $DB"
  DSN="sqlite://$DB?_fk=true" "$BIN" migrate sql up -e --yes >"$OUT_LOG" 2>&1 ||
    { tail -n 20 "$OUT_LOG" >&2; die "hydra migrate sql up failed (log: $OUT_LOG)"; }

  log "starting ORY Hydra $HYDRA_VERSION (public $HOST:$PUBLIC_PORT, admin $HOST:$ADMIN_PORT, pbkdf2 iterations ${HYDRA_PBKDF2_ITERATIONS:-25000 (default)}; log: $OUT_LOG)"
  t0=$SECONDS
  # setsid: its own session, so a Ctrl-C of the caller does not reach it; $! is hydra.
  # --sqa-opt-out: no telemetry.
  cd "$RUN_DIR"
  setsid nohup "$BIN" serve all --dev --sqa-opt-out -c "$CONFIG" >>"$OUT_LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"
  cd - >/dev/null
  wait_until "$pid" "$t0" "admin API" admin_ready
  create_client
  wait_until "$pid" "$t0" "token for $CLIENT_ID" token_ok
  log "Hydra answers at $TOKEN_URL (pid $pid, ready after $((SECONDS - t0)) s, RSS $(rss_of "$pid"))"
}

cmd_stop() {
  svc_stop Hydra || return 0
  log "stopped after $((SECONDS - SVC_STOP_T0)) s"
}

cmd_status() { svc_status; }

cmd_tokens() {
  [[ -f "$DB" ]] || die "no database at $DB"
  local q="SELECT COUNT(*) FROM hydra_oauth2_access"
  if command -v sqlite3 >/dev/null; then
    sqlite3 -readonly -cmd '.timeout 10000' "$DB" "$q"
  elif command -v python3 >/dev/null; then
    python3 - "$DB" "$q" <<'EOF'
import sqlite3, sys, urllib.parse
db = sqlite3.connect("file:" + urllib.parse.quote(sys.argv[1]) + "?mode=ro", uri=True, timeout=10)
print(db.execute(sys.argv[2]).fetchone()[0])
EOF
  else
    die "neither sqlite3 nor python3 is installed to read $DB"
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  tokens) cmd_tokens ;;
  build) build_bin && echo "$BIN" ;;
  *)
    echo "usage: $0 start|stop|status|tokens|build" >&2
    exit 2
    ;;
esac
