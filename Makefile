# Two commands for users: `make run` (the pipeline on the embedded sample) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

export MLFLOW_DISABLE_TELEMETRY := true
# The pipeline's rules call `squall` and `snakemake` from the venv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: run test lint report clean venv reproduce containers containers-cuda

venv: $(STAMP)

# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build. Then the lock, then squall.
$(STAMP): requirements/cpu.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements/cpu.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --report results/report.html
	@echo "Report: results/report.html   MLflow: make mlflow-ui"

# Rebuild all results from scratch with the pinned configs and lock; compare scores with the last build.
reproduce: $(STAMP)
	CORES=$(CORES) scripts/reproduce

# Apptainer images for --sdm apptainer (README: "On a Slurm cluster, in containers").
containers: $(STAMP)
	containers/build cpu

containers-cuda: $(STAMP)
	containers/build cuda

test: $(STAMP)
	$(BIN)/python -m pytest -n $(CORES) --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

mlflow-ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid $(BIN)/mlflow ui --workers 1 \
	  --backend-store-uri sqlite:///results/mlflow.db --port 5000

clean:
	rm -rf results .snakemake
