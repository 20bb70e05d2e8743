# Thin wrappers around the `augbench` CLI. Variables: POLICY, SWEEP, METHOD, SEEDS, EPOCHS, EXECUTOR, OUT,
# RESULTS (results root), YES=1 (start a long CPU sweep), ROWS (for import-rows).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
AUGBENCH := $(BIN)/augbench
export AUGBENCH_DATA ?= $(abspath ../shared/data)

POLICY   ?= simclr
RESULTS  ?=
SWEEP    ?=
METHOD   ?=
SEEDS    ?=
EPOCHS   ?=
EXECUTOR ?= auto
OUT      ?= results/figures/preview_$(POLICY).png

.PHONY: setup docs test preview policies bench-aug bench-train train sweep status cancel collect import-rows plots tables report slurm-up slurm-down device-prep clean

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
	$(BIN)/python -m pytest -q -ra

policies: setup
	$(AUGBENCH) policies

preview: setup
	$(AUGBENCH) preview --policy $(POLICY) --out $(OUT)

bench-aug: setup
	$(AUGBENCH) bench-aug

# per method: epoch time with/without augmentation, eager/compiled (CUDA), evaluation time -> results/bench/
bench-train: setup
	$(AUGBENCH) bench-train

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

# make import-rows ROWS=../shared/gpu-rows/f1e4a68   (a folder or a .tar of rows made elsewhere)
import-rows: setup
	$(AUGBENCH) rows import $(ROWS) $(if $(RESULTS),--results $(RESULTS))

plots: setup
	$(AUGBENCH) report --only plots

tables: setup
	$(AUGBENCH) report --only tables

report: setup
	$(AUGBENCH) report

slurm-up:
	SLURM_LOCAL_ACCOUNTING=1 bash ../shared/slurm/start-local-slurm.sh

slurm-down:
	bash ../shared/slurm/stop-local-slurm.sh

# pack CIFAR-10 JPEGs + wheels for a lent GPU machine (then: scripts/device/gpu_checks.sh there)
device-prep:
	bash scripts/device/prepare.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
