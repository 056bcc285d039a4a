#!/usr/bin/env bash
# On a machine with a CUDA GPU: the gpu-marked tests, then AV-Digits and the character GPT trained on the GPU next
# to the CPU, each for a fixed short budget, and FSDD with waveform augmentation on the GPU with 0 and auto loading
# workers; prints per run the seconds per epoch, the time each step waited for its batch, and the final loss.
#
#   bash benchmarks/gpu_check.sh [OUT]      # OUT defaults to runs/gpu_check
#
# Needs the project installed with a CUDA build of torch (the CPU wheel cannot see a GPU). GPU runs: AV-Digits in
# bf16 and in fp16 (gradient scaler), the GPT in bf16, FSDD+augmentation in bf16 with data.num_workers 0 and auto
# (is the GPU kept busy? "wait ms/step" near 0 says yes). Exits non-zero when there is no GPU or a step fails.
set -euo pipefail
OUT=${1:-runs/gpu_check}
PY=${PYTHON:-python}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU machine')"
$PY -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| bf16:', torch.cuda.is_bf16_supported())"
$PY -m pytest -q -m gpu -p no:cacheprovider tests/
mkdir -p "$OUT"
train() {  # NAME RECIPE OVERRIDES...
  local name=$1 recipe=$2; shift 2
  local sets=(); for s in "$@"; do sets+=(--set "$s"); done
  $PY -m polymodal train "$recipe" --run-dir "$OUT/$name" "${sets[@]}" > "$OUT/$name.log" 2>&1 || { cat "$OUT/$name.log"; exit 1; }
}
AUG="inputs.audio.preprocessing"
train avdigits-cuda-bf16 recipes/avdigits.yaml trainer.device=cuda trainer.precision=bf16 trainer.epochs=3
train avdigits-cuda-fp16 recipes/avdigits.yaml trainer.device=cuda trainer.precision=fp16 trainer.epochs=3
train avdigits-cpu-fp32 recipes/avdigits.yaml trainer.device=cpu trainer.precision=fp32 trainer.epochs=3
train gpt-cuda-bf16 recipes/shakespeare_char.yaml trainer.device=cuda trainer.precision=bf16 trainer.epochs=1
train gpt-cpu-fp32 recipes/shakespeare_char.yaml trainer.device=cpu trainer.precision=fp32 trainer.epochs=1
for w in 0 auto; do
  train "fsdd-aug-cuda-workers-$w" recipes/fsdd_digits.yaml trainer.device=cuda trainer.precision=bf16 \
      trainer.epochs=2 data.num_workers=$w $AUG.speed=0.1 $AUG.gain_db=6 $AUG.shift=0.05 $AUG.noise=0.5
done
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | epochs | s per epoch (median) | steps | wait ms/step | final val loss |\n|---|---|---|---|---|---|")
for run in sorted(p for p in out.iterdir() if p.is_dir()):
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    record = json.loads((run / "metrics.json").read_text())
    secs = sorted(b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0}] + rows, rows))
    steps = rows[-1]["step"]
    wait = 1e3 * record.get("data_wait_seconds", float("nan")) / max(steps, 1)
    print(f"| {run.name} | {len(rows)} | {secs[len(secs) // 2]:.2f} | {steps} | {wait:.1f} | {rows[-1].get('val_loss', float('nan')):.4f} |")
PY
