#!/usr/bin/env bash
# `make test`: vet and gofmt, every Go test with the race detector (the
# Cassandra and Keycloak integration tests included, against a real Cassandra
# and a real Keycloak that this script starts when nothing answers on
# 127.0.0.1:9042 and 127.0.0.1:8180, and stops again afterwards; the load
# kit's live test against a real ORY Hydra, likewise on 127.0.0.1:4444), then, alone, the test that stops and restarts that Cassandra
# under a running gateway, then every fuzz target for a short time.
set -euo pipefail
cd "$(dirname "$0")/.."

export CGO_ENABLED=1 # the race detector needs cgo
started_services=() # what ensure_service started, stopped again at the end
cleanup() {
  for svc in ${started_services[@]+"${started_services[@]}"}; do
    bash "scripts/$svc.sh" stop || true
  done
}

# ensure_service NAME ADDR: uses the NAME answering on ADDR (scripts/NAME.sh
# status), or starts one with scripts/NAME.sh start.
ensure_service() {
  if bash "scripts/$1.sh" status >/dev/null 2>&1; then
    echo "using the $1 already answering on $2"
  else
    started_services+=("$1")
    bash "scripts/$1.sh" start
  fi
}
trap cleanup EXIT

echo "== vet and gofmt"
go vet -tags cassandra,cassandra_outage,keycloak,cluster ./...
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== python venv for the Authlib private_key_jwt interop test (once per machine, ~20 s)"
bash scripts/authlib-venv.sh >/dev/null

echo "== cassandra"
ensure_service cassandra 127.0.0.1:9042
export TEST_CASSANDRA_ADDR=${TEST_CASSANDRA_ADDR:-127.0.0.1:9042}

# Keycloak for the upstream-mode tests (-tags keycloak): about 75 s and
# ~470 MiB on an idle 2-CPU machine (minutes when it is loaded); started only
# when nothing answers on 127.0.0.1:8180, stopped again at the end.
echo "== keycloak"
ensure_service keycloak 127.0.0.1:8180
export TEST_KEYCLOAK_URL=${TEST_KEYCLOAK_URL:-http://127.0.0.1:8180}

# ORY Hydra for the load kit's live peer test (TestHydraLive): built from
# source once per machine (about 10 minutes the first time, at nice 19,
# cached under ~/.cache/tokengw-hydra), then started in seconds; started
# only when nothing answers on 127.0.0.1:4444, stopped again at the end.
# A TEST_HYDRA_URL set by the caller names a Hydra of its own: none is built.
echo "== hydra"
if [ -n "${TEST_HYDRA_URL:-}" ]; then
  echo "using the Hydra at $TEST_HYDRA_URL"
else
  ensure_service hydra 127.0.0.1:4444
fi
export TEST_HYDRA_URL=${TEST_HYDRA_URL:-http://127.0.0.1:4444}

echo "== go vet, go test -race: the load-test kit (its own module)"
# The kit's wrk driver is tested against the real wrk (Debian's package).
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) >/dev/null 2>&1 ||
    echo "wrk could not be installed: the kit's wrk test checks the script only"
fi
(cd loadtest && go vet ./... && go test -race -count=1 -timeout 10m ./...)

echo "== go test -race (with the cassandra and keycloak integration tests)"
# The slow-body flood test asserts a latency bound (p99 < 100 ms for a good
# caller beside 4,000 held connections): it runs alone, next, so that the
# other packages' tests do not share the two cores with it.
flood='^TestSlowBodyFloodFromOneAddress$'
go test -race -count=1 -timeout 20m -tags cassandra,keycloak -skip "$flood" ./...
echo "== go test -race: the slow-body flood, alone"
go test -race -count=1 -timeout 5m -run "$flood" -v ./internal/server/

# The outage test stops and restarts the Cassandra node (keeping its data),
# so it runs alone, after every other test that uses it. It can only do that
# to the node scripts/cassandra.sh manages on 127.0.0.1:9042.
echo "== go test -race: Cassandra outage under a running gateway (stops and restarts the node)"
status=$(bash scripts/cassandra.sh status 2>/dev/null || true)
if [ "$TEST_CASSANDRA_ADDR" = 127.0.0.1:9042 ] && [[ "$status" == *"(pid "* ]]; then
  go test -race -count=1 -timeout 10m -tags cassandra_outage -run TestCassandraOutage ./internal/app/
else
  echo "NOT RUN: the Cassandra at $TEST_CASSANDRA_ADDR is not the node scripts/cassandra.sh manages on 127.0.0.1:9042"
fi

echo "== deploy/kubernetes: the manifests decoded strictly into the Kubernetes API types (own module)"
(cd deploy/kubernetes && go test -count=1 ./...)

echo "== fuzz (${FUZZTIME:-100000x} per target)"
FUZZTIME=${FUZZTIME:-100000x} bash scripts/fuzz.sh
