#!/usr/bin/env bash
# Run ON the lent GPU machine (H100/H200), from the repo root, with .devdata and .whl carried
# (see prepare.sh). All GPU checks of issues #2 and #3 in one go; everything lands in $OUT:
#   gpu.log (all output), bench-aug-gpu.json, runs/<run_id>.json (one row per training run).
# Usage: bash scripts/device/gpu_checks.sh [quick|full]   (full adds BYOL and VICReg at 25 epochs)
set -uo pipefail
mode="${1:-quick}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT/runs"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
export AUGBENCH_GIT_COMMIT="$(cat .devdata/COMMIT)"
python3 scripts/device/jpeg_pack.py unpack .devdata/cifar10 /tmp/data/cifar10 || exit 1
export AUGBENCH_DATA=/tmp/data AUGBENCH_CACHE=/tmp/cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())"
ab() { python3 -m augbench.cli "$@"; }

echo "== 1. engine on CUDA: no host-device sync, same results as on CPU"
python3 -m pytest -q -x tests/test_engine.py tests/test_backends.py -k "cuda or same_params" -p no:cacheprovider

echo "== 2. bench-aug on the GPU (fused vs kornia, 32 px and 224 px)"
ab bench-aug --device cuda --iters 20 --out "$OUT/bench-aug-gpu.json"

echo "== 3. SimCLR, ResNet-18 (CIFAR stem), CIFAR-10 JPEG copy, batch 512, 25 epochs (bar: kNN >= 68 %, epoch <= 2.5 s)"
train() { ab train --dataset cifar10 --backbone resnet18 --batch-size 512 --epochs 25 --no-progress \
            --results "$OUT/runs" --ckpt-dir "/tmp/ckpt/$1-$2" --method "$1" --policy "$2"; }
train simclr simclr
if [ "$mode" = full ]; then
  echo "== 4. BYOL and VICReg at 25 epochs"
  train byol byol
  train vicreg vicreg
fi
rm -rf "$OUT/logs"
python3 - "$OUT/runs" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(p.read_text()); m, t = r.get("metrics", {}), r.get("timings", {})
    print(f"{r['method']:7s} {r['policy']['name']:8s} {r['status']:6s} knn={m.get('knn_top1', float('nan')):.2f} "
          f"linear={m.get('linear_top1', float('nan')):.2f} epoch_s={t.get('epoch_s', float('nan')):.2f} "
          f"aug_fraction={t.get('aug_fraction', float('nan')):.2f} on {r['env']['device_name']}")
PY
