#!/usr/bin/env bash
# One node with two processes against two "machines" with one process each, on this box.
#
#   sudo PYTHON=.venv/bin/python benchmarks/multinode.sh [RECIPE] [--set key=value ...]
#
# Machines: two network namespaces joined by a veth pair (10.77.0.1 and 10.77.0.2; nothing else reachable),
# sharing the file system as a cluster shares its run folders. Node a hosts torchrun's c10d rendezvous. Each
# setup trains RECIPE (default recipes/fsdd_digits.yaml) from a fresh, empty feature cache; the script prints
# the wall time of each and whether every epoch's metrics agree bit for bit. Needs root (ip netns). The
# namespaces, the veth pair and every process it started are removed on exit, on failure too.
set -euo pipefail
RECIPE=${1:-recipes/fsdd_digits.yaml}
shift || true
PY=${PYTHON:-python}
TAG=pmb$$
NS=("${TAG}a" "${TAG}b") DEV=("${TAG}va" "${TAG}vb") ADDR=(10.77.0.1 10.77.0.2)
OUT=$(mktemp -d /tmp/multinode-XXXX)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 -- "-$pid" 2>/dev/null || true; done
  for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del "${DEV[0]}" 2>/dev/null || true
}
trap cleanup EXIT

ip link add "${DEV[0]}" type veth peer name "${DEV[1]}"
for i in 0 1; do
  ip netns add "${NS[$i]}"
  ip link set "${DEV[$i]}" netns "${NS[$i]}"
  ip -n "${NS[$i]}" addr add "${ADDR[$i]}/24" dev "${DEV[$i]}"
  ip -n "${NS[$i]}" link set lo up
  ip -n "${NS[$i]}" link set "${DEV[$i]}" up
done

export OMP_NUM_THREADS=1
t0=$(date +%s.%N)
POLYMODAL_CACHE=$OUT/cache-one timeout 1800 "$PY" -m torch.distributed.run --standalone --nproc-per-node 2 \
  -m polymodal train "$RECIPE" --run-dir "$OUT/one-node" "$@" > "$OUT/one-node.log" 2>&1
t1=$(date +%s.%N)
for i in 0 1; do
  # --local-addr: the address other nodes reach this one at (MASTER_ADDR for the workers when it holds rank 0);
  # is_host: who hosts the rendezvous store (torchrun guesses from the hostname, which the namespaces share);
  # GLOO_SOCKET_IFNAME: the interface gloo binds (else the address the hostname resolves to, absent here).
  ip netns exec "${NS[$i]}" env GLOO_SOCKET_IFNAME="${DEV[$i]}" POLYMODAL_CACHE="$OUT/cache-two" \
    timeout 1800 setsid "$PY" -m torch.distributed.run --nnodes 2 --nproc-per-node 1 \
    --rdzv-backend c10d --rdzv-endpoint "${ADDR[0]}:29500" --rdzv-id "bench-$$" \
    --rdzv-conf "is_host=$((1 - i)),join_timeout=300" --local-addr "${ADDR[$i]}" \
    -m polymodal train "$RECIPE" --run-dir "$OUT/two-nodes" "$@" > "$OUT/node-$i.log" 2>&1 &
  PIDS+=($!)
done
wait "${PIDS[@]}"
t2=$(date +%s.%N)

"$PY" - "$OUT" "$t0" "$t1" "$t2" <<'EOF'
import json, sys
from pathlib import Path
out, t0, t1, t2 = Path(sys.argv[1]), *map(float, sys.argv[2:])
def rows(run):
    return [{k: v for k, v in json.loads(l).items() if k != "seconds"} for l in (out / run / "metrics.jsonl").read_text().splitlines()]
def test(run):
    return json.loads((out / run / "metrics.json").read_text())
one, two = test("one-node"), test("two-nodes")
print("| setup | wall s | fit s | train samples/s | epochs | test accuracy |")
print("|---|---|---|---|---|---|")
for label, m, wall in (("1 node × 2 processes", one, t1 - t0), ("2 nodes × 1 process (netns + veth)", two, t2 - t1)):
    print(f"| {label} | {wall:.1f} | {m['train_seconds']:.1f} | {m['train_samples'] / m['step_seconds']:.0f} "
          f"| {m['epochs_run']} | {m['test']['accuracy']:.4f} |")
print("every epoch's metrics identical:", rows("one-node") == rows("two-nodes"))
print("runs and logs:", out)
EOF
