# Thin wrappers around the `augbench` CLI. Variables: POLICY, SWEEP, METHOD, SEEDS, EPOCHS, EXECUTOR, OUT,
# RESULTS (results root), YES=1 (start a long CPU sweep; download missing data first), ROWS (for import-rows),
# DATASET (for data: cifar10, cifar100 or stl10).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
AUGBENCH := $(BIN)/augbench
# Datasets: $AUGBENCH_DATA when it is set (CI exports ../shared/data), else ./data (`make data` fills it).
export AUGBENCH_DATA ?= $(abspath data)
# `make test` with neither $AUGBENCH_DATA nor ./data: the suite's own default (tests/conftest.py: ../shared/data)
TEST_ENV := $(if $(and $(filter file,$(origin AUGBENCH_DATA)),$(if $(wildcard data/.),,1)),env -u AUGBENCH_DATA)
# the local SLURM of our build machines (make slurm-up); a real cluster needs none
SLURM_LOCAL ?= ../shared/slurm
DATASET  ?= cifar10

POLICY   ?= simclr
RESULTS  ?=
SWEEP    ?=
METHOD   ?=
SEEDS    ?=
EPOCHS   ?=
EXECUTOR ?= auto
OUT      ?= results/figures/preview_$(POLICY).png

.PHONY: setup data docs test preview policies bench-aug bench-train train sweep status cancel collect import-rows verify-sample plots tables report slurm-up slurm-down device-prep clean

setup: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	# torch first, pinned (a CPU wheel on local disk here); a torch already in the venv (a cluster's CUDA build) is kept.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "torch==2.13.0"
	# the core is torch + numpy + pyyaml; the tests exercise every backend and the analysis: all extras
	$(BIN)/pip install -q -e ".[all,test]"
	touch $@

# API reference (HTML) of the library: docs/api/, committed; needs the `docs` extra (pdoc)
API_MODULES := augbench.augment $(addprefix augbench.augment.,engine policy transform sizing ops \
	backends.fused backends.numba_view backends.kornia_backend backends.albu)
docs: setup
	$(BIN)/python -c "import pdoc" 2>/dev/null || $(BIN)/pip install -q -e ".[docs]"
	rm -rf docs/api
	$(BIN)/python -m pdoc -o docs/api --docformat markdown --no-show-source --no-search $(API_MODULES)

test: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -ra

# make data [DATASET=cifar100]: download, check the md5 and unpack into $(AUGBENCH_DATA); a no-op when there
data: setup
	$(AUGBENCH) data get $(DATASET)

policies: setup
	$(AUGBENCH) policies

preview: setup
	$(AUGBENCH) preview --policy $(POLICY) --out $(OUT)

bench-aug: setup
	$(AUGBENCH) bench-aug

# per method: epoch time with/without augmentation, eager/compiled (CUDA), evaluation time -> results/bench/
# Without CUDA: the chosen CPU grids' setting (crop_matters_cpu24: 24 px; one thread, as its runs use), 500
# images per class; BENCH_TRAIN_ARGS replaces the arguments on any device
BENCH_TRAIN_CPU ?= --sweep crop_matters_cpu24 --subset 500 --epochs 2 --threads 1
bench-train: setup
	$(AUGBENCH) bench-train $(if $(BENCH_TRAIN_ARGS),$(BENCH_TRAIN_ARGS),$$($(BIN)/python -c \
	  "import torch; print('' if torch.cuda.is_available() else '$(BENCH_TRAIN_CPU)')"))

train: setup
	$(AUGBENCH) train --policy $(POLICY) $(if $(METHOD),--method $(METHOD)) $(if $(EPOCHS),--epochs $(EPOCHS))

# make sweep POLICY=no_crop  |  make sweep SWEEP=crop_matters
sweep: setup
	$(AUGBENCH) sweep run $(if $(SWEEP),$(SWEEP),--policy $(POLICY)) --executor $(EXECUTOR) \
	  $(if $(METHOD),--method $(METHOD)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	  $(if $(RESULTS),--results $(RESULTS)) $(if $(YES),--yes)

status: setup
	$(AUGBENCH) sweep status $(SWEEP) $(if $(RESULTS),--results $(RESULTS))

cancel: setup
	$(AUGBENCH) sweep cancel $(SWEEP) $(if $(RESULTS),--results $(RESULTS))

collect: setup
	$(AUGBENCH) collect $(if $(RESULTS),--results $(RESULTS))

# retrain N committed rows picked at random and check that metrics and weights match exactly
N ?= 2
verify-sample: setup
	$(AUGBENCH) rows verify --sample $(N) $(if $(RESULTS),--results $(RESULTS))

# make import-rows ROWS=../shared/gpu-rows/f1e4a68   (a folder or a .tar of rows made elsewhere)
import-rows: setup
	$(AUGBENCH) rows import $(ROWS) $(if $(RESULTS),--results $(RESULTS))

plots: setup
	$(AUGBENCH) report --only plots

tables: setup
	$(AUGBENCH) report --only tables

report: setup
	$(AUGBENCH) report

NO_SLURM = echo "make $@: no local SLURM here ($(SLURM_LOCAL)/$(1) is missing; it comes with our build machines, \
or set SLURM_LOCAL=DIR). On a real cluster none is needed: with sbatch on the PATH, \`make sweep\` submits \
job arrays there (EXECUTOR=slurm); without SLURM, \`make sweep\` runs locally (EXECUTOR=local)." >&2; exit 1

slurm-up:
	@test -f $(SLURM_LOCAL)/start-local-slurm.sh || { $(call NO_SLURM,start-local-slurm.sh); }
	SLURM_LOCAL_ACCOUNTING=1 bash $(SLURM_LOCAL)/start-local-slurm.sh

slurm-down:
	@test -f $(SLURM_LOCAL)/stop-local-slurm.sh || { $(call NO_SLURM,stop-local-slurm.sh); }
	bash $(SLURM_LOCAL)/stop-local-slurm.sh

# pack CIFAR-10 JPEGs + wheels for a lent GPU machine (then: scripts/device/gpu_checks.sh there)
device-prep:
	bash scripts/device/prepare.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
