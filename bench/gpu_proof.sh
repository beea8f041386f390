#!/usr/bin/env bash
# One prepared GPU proof for issue 14, within 10 minutes on one CUDA GPU: check the install,
# time the training pipeline (AMP, channels-last, end-to-end vs in-memory images/s), train the
# "best" recipe end to end through the product's training service, and cross-validate it on
# one patient-wise fold at original resolution. Every step prints JSON lines; a step that
# fails prints {"step": ..., "error": ...} and the script goes on with the next.
#
#   bash bench/gpu_proof.sh            # from the repository root, ../shared/data beside it
#
# No network is needed: the product's dependencies must already be installed (the script
# installs only the repository itself, without dependencies). Outputs also go to $OUT (or
# ./gpu-proof) as gpu_proof.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-$PWD/gpu-proof}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_proof.jsonl"
: > "$LOG"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep the JSON lines
  local name="$1" limit="$2"
  shift 2
  local t0=$SECONDS
  if timeout "$limit" "$@" 2> "$OUT_DIR/$name.err" | grep '^{' | tee -a "$LOG"; then
    echo "{\"step\": \"$name\", \"ok\": true, \"s\": $((SECONDS - t0))}" | tee -a "$LOG"
  else
    echo "{\"step\": \"$name\", \"error\": \"exit ${PIPESTATUS[0]}; see $name.err\", \"s\": $((SECONDS - t0))}" | tee -a "$LOG"
  fi
}

if [ ! -d ../shared/data/cxr-lungs ]; then
  echo '{"step": "data", "error": "../shared/data/cxr-lungs is missing beside the repository"}' | tee -a "$LOG"
  exit 2
fi
python -m pip install -q --no-deps -e . > "$OUT_DIR/install.err" 2>&1 \
  || echo '{"step": "install", "error": "pip install --no-deps -e . failed"}' | tee -a "$LOG"
step env 45 python -c '
import json, torch, segmentation_models_pytorch as smp
ok = torch.cuda.is_available()
print(json.dumps({"step": "env", "torch": torch.__version__, "smp": smp.__version__,
    "cuda": ok, "gpu": torch.cuda.get_device_name(0) if ok else None,
    "bf16": bool(ok and torch.cuda.is_bf16_supported())}))
raise SystemExit(0 if ok else 1)'

# AMP and channels-last: one row per variant, the real data pipeline against in-memory tensors.
step throughput 120 python bench/bench_train.py --throughput --device cuda --arch unet \
  --encoder resnet18 --size 256 --batch-size 16 --steps 60 --variants plain,amp,amp+cl
# The best recipe end to end through the product's training service (import, split, train,
# register), on the GPU: its wall time and validation Dice.
step best_recipe 180 python bench/bench_train.py --recipe best --device cuda --arch unet
# Holdout-grade score of the best recipe on one patient-wise fold at original resolution.
step cv_best_fold0 180 python bench/bench_cv.py --recipes best --only-folds 0 --device cuda
echo "{\"step\": \"done\", \"log\": \"$LOG\"}"
