#!/usr/bin/env bash
# `make test-cluster`: a three-node Cassandra cluster (scripts/cassandra.sh
# start --nodes 3, on CASSANDRA_CLUSTER_IPS, default 127.0.1.1-3, CQL on 9042
# each), two tokengw replicas under a recorded mixed workload while nodes
# are killed and brought back, and the checker over the history
# (internal/clustertest, build tag cluster).
#
# The cluster has a state directory of its own (CASSANDRA_RUN_DIR, default
# /tmp/tokengw-cluster-test) and addresses of its own, so it never touches
# the single node of `make test` (127.0.0.1:9042, /tmp/tokengw-cassandra):
# both can run at once. The cluster is stopped on exit, whatever the result
# (trap). About 3.5 GiB of memory; on a two-core machine about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1 # the race detector needs cgo
export CASSANDRA_CLUSTER_IPS="${CASSANDRA_CLUSTER_IPS:-127.0.1.1 127.0.1.2 127.0.1.3}"
export CASSANDRA_RUN_DIR="${TEST_CLUSTER_RUN_DIR:-/tmp/tokengw-cluster-test}"
if [[ "$(realpath -m "$CASSANDRA_RUN_DIR")" == "$(realpath -m /tmp/tokengw-cassandra)" ]]; then
  echo "test-cluster: TEST_CLUSTER_RUN_DIR must not be the single node's /tmp/tokengw-cassandra" >&2
  exit 2
fi
for ip in $CASSANDRA_CLUSTER_IPS; do
  if [[ "$ip" == 127.0.0.1 ]]; then
    echo "test-cluster: CASSANDRA_CLUSTER_IPS must not include 127.0.0.1 (the single node's address)" >&2
    exit 2
  fi
done
t0=$SECONDS
cleanup() { bash scripts/cassandra.sh stop || true; }
trap cleanup EXIT

echo "== cassandra cluster (3 nodes on $CASSANDRA_CLUSTER_IPS, state in $CASSANDRA_RUN_DIR); load: $(uptime)"
bash scripts/cassandra.sh start --nodes 3
echo "cluster up after $((SECONDS - t0)) s"

echo "== go test -race -tags cluster: two replicas, node failures under load, the history checked"
go test -race -count=1 -v -tags cluster -timeout 14m -run TestClusterUnderFaults ./internal/clustertest/
echo "test-cluster: done in $((SECONDS - t0)) s; load: $(uptime)"
