#!/usr/bin/env bash
# `make test-cluster`: a three-node Cassandra cluster (scripts/cassandra.sh
# start --nodes 3, on CASSANDRA_CLUSTER_IPS, default 127.0.0.1-3), two
# tokengw replicas under a recorded mixed workload while nodes are killed
# and brought back, and the checker over the history
# (internal/clustertest, build tag cluster). The cluster is stopped at the
# end. Needs 127.0.0.1-3:9042 and :7000 free (run it after `make test`,
# which stops the single node it started); about 4.5 GiB of memory.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_ENABLED=1 # the race detector needs cgo
t0=$SECONDS
cleanup() { bash scripts/cassandra.sh stop || true; }
trap cleanup EXIT

echo "== cassandra cluster (3 nodes)"
bash scripts/cassandra.sh start --nodes 3
echo "cluster up after $((SECONDS - t0)) s"

echo "== go test -race -tags cluster: two replicas, node failures under load, the history checked"
go test -race -count=1 -v -tags cluster -timeout 14m -run TestClusterUnderFaults ./internal/clustertest/
echo "test-cluster: done in $((SECONDS - t0)) s"
