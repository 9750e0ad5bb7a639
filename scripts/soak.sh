#!/usr/bin/env bash
# A soak run (issue 9; not part of CI): SOAK_SECONDS (default 600) of mixed
# load against one tokengw on the embedded store, on 127.0.0.1 only:
#   - the abusive client spread over 50 consumers, paced at SOAK_RATE (default 1500/s);
#   - a well-behaved fleet (cached tokens, /healthz as the protected API);
#   - a trickle of wrong secrets from another loopback address, 127.0.0.2
#     (its failed-auth bucket empties: 401 then 429; the others are unaffected);
#   - a rate-limited consumer hammering its limit (429s).
# Every 30 s it scrapes the admin /metrics for goroutines, heap in use and
# RSS, and prints them as a table at the end, so "flat" can be read off.
# Usage: bash scripts/soak.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECONDS:-600}
DUR=${SECS}s
RATE=${SOAK_RATE:-1500}
OUT=${1:-$(mktemp -d /tmp/tokengw-soak.XXXXXX)}
OUT=$(realpath -m "$OUT") # the kit runs with -C loadtest: paths must be absolute
mkdir -p "$OUT"
PORT=18480
ADMIN=18481

go build -o bin/tokengw ./cmd/tokengw
go -C loadtest run . clients --count 53 --credentials-out "$OUT/creds.json" --config-out "$OUT/clients.yaml" >/dev/null
# the last consumer gets a per-client limit of 5/s (the rate-limit probe's target)
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
creds = json.load(open(out + "/creds.json"))
json.dump(creds[:50], open(out + "/fleet.json", "w"))
json.dump(creds[50:52], open(out + "/polite.json", "w"))
json.dump(creds[52:], open(out + "/limited.json", "w"))
cfg = open(out + "/clients.yaml").read().rstrip("\n").split("\n")
last = creds[52]["id"]
res, cur = [], None
for line in cfg:
    res.append(line)
    if line.strip().startswith("- id:") and last in line:
        cur = True
    if cur and line.strip().startswith("scopes:"):
        res.append("    limit: {rate: 5, burst: 5}")
        cur = None
open(out + "/clients.yaml", "w").write("\n".join(res) + "\n")
PY

export TOKENGW_SERVER__ADDR=127.0.0.1:$PORT TOKENGW_SERVER__ADMIN_ADDR=127.0.0.1:$ADMIN \
  TOKENGW_ISSUER__URL=http://127.0.0.1:$PORT TOKENGW_STORE__BOLT__PATH=$OUT/data/tokengw.db \
  TOKENGW_LOG__LEVEL=warn TOKENGW_ISSUER__TOKEN_TTL=2m TOKENGW_REUSE__MIN_REMAINING=10s
./bin/tokengw serve --config "$OUT/clients.yaml" 2>"$OUT/server.log" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

scrape() {
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v t="$1" '
    $1=="go_goroutines" {g=$2}
    $1=="go_memstats_heap_inuse_bytes" {h=$2}
    $1=="tokengw_process_resident_memory_bytes" {r=$2}
    $1=="tokengw_reuse_cache_entries" {c=$2}
    END {printf "%s\t%d\t%.1f\t%.1f\t%d\n", t, g, h/1048576, r/1048576, c}'
}
echo -e "t\tgoroutines\theap_inuse_MiB\trss_MiB\tl1_entries" >"$OUT/samples.tsv"
scrape 0s >>"$OUT/samples.tsv"

LT="go -C loadtest run . run --target http://127.0.0.1:$PORT --duration $DUR --progress 0"
$LT --name fleet --scenario many-consumers --credentials "$OUT/fleet.json" --concurrency 64 --rate "$RATE" \
    --server-pid $SERVER --json "$OUT/fleet.json.out" --html "$OUT/fleet.html" >"$OUT/fleet.txt" 2>&1 &
A=$!
$LT --name polite --scenario well-behaved --credentials "$OUT/polite.json" --concurrency 8 --rate 200 \
    >"$OUT/polite.txt" 2>&1 &
B=$!
$LT --name limited --scenario abusive --credentials "$OUT/limited.json" --concurrency 4 --rate 50 \
    >"$OUT/limited.txt" 2>&1 &
C=$!
# wrong secrets: one every 200 ms, bounded by the duration
( end=$(( $(date +%s) + SECS ))
  while [ "$(date +%s)" -lt "$end" ]; do
    curl -s -o /dev/null --interface 127.0.0.2 -u "nobody:wrong" -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" || true
    sleep 0.2
  done ) &
D=$!
start=$(date +%s)
while kill -0 $A 2>/dev/null; do
  sleep 30
  scrape "$(( $(date +%s) - start ))s" >>"$OUT/samples.tsv"
done
wait $A $B $D || true
wait $C || true   # the limited consumer's run reports its 429s as a failed check: expected
scrape "end" >>"$OUT/samples.tsv"
kill -TERM $SERVER; wait $SERVER || true
trap - EXIT
echo "== soak: $DUR, results in $OUT"
column -t "$OUT/samples.tsv"
echo; tail -25 "$OUT/fleet.txt"
echo; grep -E "429|2xx|req/s" "$OUT/limited.txt" | head -5 || true
echo; grep -E "2xx|req/s" "$OUT/polite.txt" | head -5 || true
