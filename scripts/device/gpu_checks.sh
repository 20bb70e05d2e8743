#!/usr/bin/env bash
# Run ON the lent GPU machine (H100/H200; python3.12 + torch/triton, no kornia/albumentations/submitit
# unless carried as wheels in .whl), from the repo root, with .devdata and .whl carried (prepare.sh).
# Usage: bash scripts/device/gpu_checks.sh [all|grid|parallel]            (default: all)
#   all:      EVERY GPU check in under 8 minutes, each step cut by `timeout` and the next one run anyway:
#             the CUDA tests (pytest -m cuda, and tests named *cuda* not yet marked), bench-aug --device
#             cuda, bench-train (per method: epoch with/without augmentation, eager/compiled, evaluation)
#             and a short SimCLR run; a summary table comes last. Files back in $OUT (at most 8):
#             gpu.log, pytest-cuda.xml, bench-aug-gpu.json, bench-train-gpu.json, runs.tar (row + log of
#             the SimCLR run), summary.json. Step limits: LIMIT_TESTS, LIMIT_AUG, LIMIT_TRAIN_BENCH,
#             LIMIT_RUN (seconds); RUN_EPOCHS for the SimCLR run.
#   grid:     fill the crop_matters grid for ${BUDGET_S:-400} s, ${PARALLEL:-auto} runs at once; rows of earlier
#             sessions come in as ${GRID_TAR:-.devdata/grid_runs.tar}, all rows go back as $OUT/grid_runs.tar;
#             the sweep is cut at ${GRID_LIMIT_S:-540} s so that the tar is written within the tool's 600 s
#   parallel: throughput of 1 vs 2 vs 4 runs at once (4 short runs each, ${PAR_EPOCHS:-3} epochs, one results
#             root), the ratios, what `sweep run --parallel auto` then picks; $OUT/parallel-sessions.jsonl
set -uo pipefail
mode="${1:-all}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1
# one inductor cache for every step: bench-train's compilations are reused by the SimCLR run
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}"
T0=$SECONDS
BUDGET_S="${BUDGET_S_ALL:-465}"  # every step's limit is cut to what is left of this (8 min with setup and summary)
STEPS=/tmp/gpu_steps.tsv; : > "$STEPS"

step() {  # step NAME LIMIT_S COMMAND...: run it under a timeout, record rc and seconds, never stop the script
  local name="$1" limit="$2" t=$SECONDS rc left; shift 2
  left=$((BUDGET_S - (SECONDS - T0)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    echo "== $name: skipped, the time budget is spent"; printf '%s\tskipped\t0\n' "$name" >> "$STEPS"; return
  fi
  echo "== [$((SECONDS - T0))s] $name (limit ${limit}s)"
  timeout -k 10 "$limit" "$@"; rc=$?
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "== $name: cut at its ${limit}s limit"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t))" >> "$STEPS"
  echo "== $name: rc=$rc in $((SECONDS - t))s"
}

# ---- setup: carried wheels and data are optional (a step that needs what is missing fails, the rest run)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || echo "wheels: install failed; going on without them"
fi
export PYTHONPATH="/tmp/site:$PWD"
[ -f .devdata/COMMIT ] && export AUGBENCH_GIT_COMMIT="$(cat .devdata/COMMIT)"
export AUGBENCH_DATA=/tmp/data AUGBENCH_CACHE=/tmp/cache AUGBENCH_RESULTS=/tmp/results
have_data=0
if [ -f .devdata/cifar10/train.bin ]; then
  python3 scripts/device/jpeg_pack.py unpack .devdata/cifar10 /tmp/data/cifar10 && have_data=1
fi
[ "$have_data" = 1 ] || echo "no CIFAR-10 in .devdata (run prepare.sh here first): training steps will fail"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 - <<'PY'
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "NO CUDA")
for m in ("triton", "kornia", "albumentations", "submitit", "tensorboard"):
    print(f"  {m}: {'yes' if importlib.util.find_spec(m) else 'absent'}")
PY
ab() { python3 -m augbench.cli "$@"; }

if [ "$mode" = grid ]; then
  mkdir -p "$OUT/grid"
  if [ -f "${GRID_TAR:-.devdata/grid_runs.tar}" ]; then tar -xf "${GRID_TAR:-.devdata/grid_runs.tar}" -C "$OUT/grid"; fi
  # the timeout (runs in flight are lost, their rows stay `running`) makes sure the rows still come back
  timeout -k 15 "${GRID_LIMIT_S:-540}" python3 -m augbench.cli sweep run crop_matters --local \
    --budget-s "${BUDGET_S:-400}" --parallel "${PARALLEL:-auto}" --results "$OUT/grid"
  rc=$?
  ab sweep status crop_matters --results "$OUT/grid" | head -n 1
  tar -cf "$OUT/grid_runs.tar" -C "$OUT/grid" runs sweeps && rm -rf "$OUT/grid"
  exit $rc
fi
if [ "$mode" = parallel ]; then
  # one results root: the sessions accumulate in sweeps/policy_no_crop/sessions.jsonl, new seeds each
  # time (4 runs per session: no_crop and full x 2 seeds), then `--parallel auto` decides from them
  rm -rf /tmp/par
  seeds=(0,1 2,3 4,5)
  i=0
  for n in 1 2 4; do
    echo "== $n run(s) at once: no_crop and full, seeds ${seeds[$i]}, ${PAR_EPOCHS:-3} epochs"
    ab sweep run --policy no_crop --seeds "${seeds[$i]}" --epochs "${PAR_EPOCHS:-3}" --local --parallel "$n" \
      --results /tmp/par
    i=$((i + 1))
  done
  python3 - /tmp/par/sweeps/policy_no_crop/sessions.jsonl <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
one = rows[0]
for s in rows:
    print(f"parallel {s['parallel']}: {s['done']} done, {s['failed']} failed in {s['wall_s']:.0f}s: "
          f"{s['runs_per_hour']:.0f} runs/h (x{s['runs_per_hour'] / max(one['runs_per_hour'], 1e-9):.2f}), "
          f"{s['images_per_s']:.0f} images/s (x{s['images_per_s'] / max(one['images_per_s'], 1e-9):.2f})")
PY
  ab sweep run --policy no_crop --seeds 6,7 --epochs "${PAR_EPOCHS:-3}" --local --parallel auto --dry-run \
    --results /tmp/par | grep -- "--parallel auto"
  cp /tmp/par/sweeps/policy_no_crop/sessions.jsonl "$OUT/parallel-sessions.jsonl"
  exit 0
fi
[ "$mode" = all ] || { echo "unknown mode '$mode' (all, grid, parallel)"; exit 2; }

# ---- all: every GPU check, within BUDGET_S (the limits below add up to about that)
step "cuda tests (marked)" "${LIMIT_TESTS:-90}" python3 -m pytest -q -rs -m cuda -p no:cacheprovider \
  --continue-on-collection-errors --junitxml="$OUT/pytest-cuda.xml" tests
step "cuda tests (named, unmarked)" 30 python3 -m pytest -q -rs -k cuda -m "not cuda" -p no:cacheprovider \
  --continue-on-collection-errors tests
step "bench-aug --device cuda" "${LIMIT_AUG:-50}" python3 -m augbench.cli bench-aug --device cuda --iters 20 \
  --out "$OUT/bench-aug-gpu.json"
# per method: eager with/without augmentation (+ evaluation), then compiled; the JSON grows case by case,
# so a step cut by its limit still returns the cases it finished
step "bench-train" "${LIMIT_TRAIN_BENCH:-200}" python3 -m augbench.cli bench-train --device cuda --no-progress \
  --methods simclr byol vicreg barlow simsiam --out "$OUT/bench-train-gpu.json"
step "SimCLR run (${RUN_EPOCHS:-5} epochs)" "${LIMIT_RUN:-80}" python3 -m augbench.cli train --dataset cifar10 \
  --backbone resnet18 --batch-size 512 --epochs "${RUN_EPOCHS:-5}" --method simclr --policy simclr --no-progress \
  --results /tmp/results --ckpt-dir /tmp/ckpt/simclr
[ -d /tmp/results/runs ] && tar -cf "$OUT/runs.tar" -C /tmp/results runs logs 2>/dev/null

# ---- summary (last): each step, then the figures against the issue's bars
echo
echo "== summary after $((SECONDS - T0))s"
python3 scripts/device/gpu_summary.py "$STEPS" "$OUT" || column -t -s $'\t' "$STEPS"
