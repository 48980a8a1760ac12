#!/usr/bin/env bash
# Does a bootstrap node accept all of its honest learners' bundles? Starts a bootstrap node and N
# learners on loopback for D seconds and prints the bootstrap's validation counters and the first
# learner's published and paced bundle counts.
#
#   N=2 D=60 PACE=600 scripts/publish_quota.sh     # PACE=0: no publishing pace
#
# Environment: BIN (default target/release/swarm-node), N (2), D (60), PACE (600), PORT (19300);
# SWARM_LEARNER_* variables pass through to the learners (small groups make them publish faster).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2}; D=${D:-60}; PACE=${PACE:-600}; PORT=${PORT:-19300}
BIN=${BIN:-target/release/swarm-node}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release -p swarm-node, or set BIN" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
get() { python3 -c "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())" "$1"; }

"$BIN" --data-dir "$WORK/boot" bootstrap --network quota-check --listen /ip4/127.0.0.1/tcp/0 \
  --http "127.0.0.1:$PORT" >"$WORK/boot.out" 2>"$WORK/boot.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "/p2p/" "$WORK/boot.out" 2>/dev/null && break; sleep 0.2; done
ADDR=$(grep -o "/ip4/127.0.0.1/tcp/[0-9]*/p2p/[A-Za-z0-9]*" "$WORK/boot.out" | head -1)
[ -n "$ADDR" ] || { echo "the bootstrap node did not start: $(cat "$WORK/boot.err")" >&2; exit 1; }
for i in $(seq "$N"); do
  http=off; [ "$i" = 1 ] && http="127.0.0.1:$((PORT + 1))"
  SWARM_NET_PUBLISH_PER_MINUTE=$PACE "$BIN" --data-dir "$WORK/learner-$i" join --network quota-check \
    --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$ADDR" --http "$http" >"$WORK/learner-$i.out" 2>&1 &
  PIDS+=($!)
done
sleep "$D"
get "http://127.0.0.1:$PORT/metrics" | grep '^swarm_gossip_validation_total'
get "http://127.0.0.1:$((PORT + 1))/api/status" | python3 -c \
  "import json,sys; s=json.load(sys.stdin); print('learner 1: round', s['round'], 'published', s['bundles_published'], 'paced', s['bundles_paced'])"
