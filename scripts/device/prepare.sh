#!/usr/bin/env bash
# Run HERE (no GPU) before using the lent GPU machine: packs CIFAR-10's JPEGs into .devdata/, fetches
# the Python 3.12 wheels the GPU image lacks into .whl/, and records the commit the GPU rows will name.
# Then call the device tool with carry [".devdata", ".whl"] and `bash scripts/device/gpu_checks.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "commit first: GPU results must name a clean commit" >&2; exit 1
fi
data="${AUGBENCH_DATA:-../shared/data}"
[ -f .devdata/cifar10/train.bin ] || python3 scripts/device/jpeg_pack.py pack "$data/cifar10" .devdata/cifar10
git rev-parse HEAD > .devdata/COMMIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl kornia==0.9.0 kornia_rs==0.2.0 submitit==1.5.4 2>&1 | grep -v "^WARNING: Location" || true
total=$(( $(du -sb .devdata | cut -f1) + $(du -sb .whl | cut -f1) + $(git ls-files -z | xargs -0 cat | wc -c) ))
echo "travels: $((total / 1048576)) MiB of the 64 MiB limit (commit $(cat .devdata/COMMIT))"
[ "$total" -lt $((64 * 1048576)) ] || { echo "over the device tool's 64 MiB limit" >&2; exit 1; }
