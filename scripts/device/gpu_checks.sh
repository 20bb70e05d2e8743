#!/usr/bin/env bash
# Run ON the lent GPU machine (H100/H200), from the repo root, with .devdata and .whl carried
# (see prepare.sh). All GPU checks of issues #2 and #3 in one go; everything lands in $OUT:
#   gpu.log (all output), bench-aug-gpu.json, runs/<run_id>.json (one row per training run).
# Usage: bash scripts/device/gpu_checks.sh [quick|full|grid|parallel]
#   quick, full: the checks below (full adds BYOL and VICReg at 25 epochs)
#   grid:     fill the crop_matters grid for ${BUDGET_S:-400} s, ${PARALLEL:-2} runs at once; rows of earlier
#             sessions come in as ${GRID_TAR:-.devdata/grid_runs.tar} (skipped, and they time the estimate),
#             all rows go back as $OUT/grid_runs.tar (the device tool returns at most 8 files); the sweep
#             is cut at ${GRID_LIMIT_S:-540} s so that the tar is written within the device tool's 600 s
#   parallel: throughput of 1 vs 2 vs 4 runs at once on 4 short runs (${PAR_EPOCHS:-3} epochs), and the ratios
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

if [ "$mode" = grid ]; then
  rm -rf "$OUT/runs"; mkdir -p "$OUT/grid"
  if [ -f "${GRID_TAR:-.devdata/grid_runs.tar}" ]; then tar -xf "${GRID_TAR:-.devdata/grid_runs.tar}" -C "$OUT/grid"; fi
  # the timeout (runs in flight are lost, their rows stay `running`) makes sure the rows still come back
  timeout -k 15 "${GRID_LIMIT_S:-540}" python3 -m augbench.cli sweep run crop_matters --local \
    --budget-s "${BUDGET_S:-400}" --parallel "${PARALLEL:-2}" --results "$OUT/grid"
  rc=$?
  ab sweep status crop_matters --results "$OUT/grid" | head -n 1
  tar -cf "$OUT/grid_runs.tar" -C "$OUT/grid" runs sweeps && rm -rf "$OUT/grid"
  exit $rc
fi
if [ "$mode" = parallel ]; then
  rm -rf "$OUT/runs"
  for n in 1 2 4; do
    echo "== $n run(s) at once: no_crop and full, seeds 0 and 1, ${PAR_EPOCHS:-3} epochs"
    rm -rf "/tmp/par$n"
    ab sweep run --policy no_crop --seeds 0,1 --epochs "${PAR_EPOCHS:-3}" --local --parallel "$n" \
      --results "/tmp/par$n"
  done
  python3 - /tmp/par1 /tmp/par2 /tmp/par4 <<'PY'
import json, pathlib, sys
rows = [json.loads((pathlib.Path(r) / "sweeps/policy_no_crop/sessions.jsonl").read_text().splitlines()[-1])
        for r in sys.argv[1:]]
one = rows[0]
for s in rows:
    print(f"parallel {s['parallel']}: {s['done']} done, {s['failed']} failed in {s['wall_s']:.0f}s: "
          f"{s['runs_per_hour']:.0f} runs/h (x{s['runs_per_hour'] / max(one['runs_per_hour'], 1e-9):.2f}), "
          f"{s['images_per_s']:.0f} images/s (x{s['images_per_s'] / max(one['images_per_s'], 1e-9):.2f})")
PY
  exit 0
fi

echo "== 1. engine on CUDA: no host-device sync, same results as on CPU"
python3 -m pytest -q -x tests/test_engine.py tests/test_backends.py -k "cuda or same_params" -p no:cacheprovider

echo "== 2. bench-aug on the GPU (fused vs kornia, 32 px and 224 px)"
ab bench-aug --device cuda --iters 20 --out "$OUT/bench-aug-gpu.json"

echo "== 3. SimCLR, ResNet-18 (CIFAR stem), CIFAR-10 JPEG copy, batch 512, 25 epochs (bar: kNN >= 68 %, epoch <= 2.5 s)"
train() { ab train --dataset cifar10 --backbone resnet18 --batch-size 512 --epochs 25 --no-progress \
            --results "$OUT" --ckpt-dir "/tmp/ckpt/$1-$2" --method "$1" --policy "$2"; }
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
