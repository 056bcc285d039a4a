#!/usr/bin/env bash
# On a machine with a CUDA GPU: the gpu-marked tests, then AV-Digits and the character GPT trained on the GPU
# (bf16) next to the CPU, each for a fixed short budget; prints epoch/step times from the runs' metrics.
#
#   bash benchmarks/gpu_check.sh [OUT]      # OUT defaults to runs/gpu_check
#
# Needs the project installed with a CUDA build of torch (the CPU wheel cannot see a GPU). Prints one summary
# table at the end; exits non-zero when there is no GPU or a step fails.
set -euo pipefail
OUT=${1:-runs/gpu_check}
PY=${PYTHON:-python}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU machine')"
$PY -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
$PY -m pytest -q -m gpu -p no:cacheprovider tests/
mkdir -p "$OUT"
for dev in cuda cpu; do
  prec=$([ "$dev" = cuda ] && echo bf16 || echo fp32)
  $PY -m polymodal train recipes/avdigits.yaml --run-dir "$OUT/avdigits-$dev" \
      --set trainer.device=$dev --set trainer.precision=$prec --set trainer.epochs=3
  $PY -m polymodal train recipes/shakespeare_char.yaml --run-dir "$OUT/gpt-$dev" \
      --set trainer.device=$dev --set trainer.precision=$prec --set trainer.epochs=1
done
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | device | epochs | s per epoch (median) | final val loss |\n|---|---|---|---|---|")
for run in sorted(out.iterdir()):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    secs = [b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0}] + rows, rows)]
    secs.sort()
    print(f"| {run.name} | {run.name.rsplit('-', 1)[1]} | {len(rows)} | {secs[len(secs) // 2]:.2f} | {rows[-1].get('val_loss', float('nan')):.4f} |")
PY
