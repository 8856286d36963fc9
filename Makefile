# ltcl developer commands. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# tcmalloc makes CPU training about 1.5x faster; used when the library is present.
TCMALLOC := $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4))
RUN := $(if $(TCMALLOC),LD_PRELOAD=$(TCMALLOC)) WANDB_MODE=$${WANDB_MODE:-offline}

.PHONY: help install test test-all test-gpu test-slow test-ddp lint format demo docs clean benchmark-simclr

help: ## list the commands
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install ltcl with its dev tools (once)

test: install ## fast test suite (not slow, not ddp, not gpu)
	$(RUN) $(PY) -m pytest -m "not slow and not ddp and not gpu" -q

test-all: install ## every CPU test, slow and 2-process DDP tiers included
	$(RUN) $(PY) -m pytest -m "not gpu" -q

test-gpu: install ## the CUDA tests (needs a GPU)
	$(RUN) $(PY) -m pytest -m gpu -q

test-slow: install ## only the slow tier
	$(RUN) $(PY) -m pytest -m slow -q

test-ddp: install ## only the 2-process DDP tier
	$(RUN) $(PY) -m pytest -m ddp -q

lint: install ## ruff lint and format check; the package's layers (import-linter, pyproject.toml)
	$(VENV)/bin/ruff check ltcl tests hydra_plugins benchmarks
	$(VENV)/bin/ruff format --check ltcl tests hydra_plugins benchmarks
	$(VENV)/bin/lint-imports --no-cache --no-logo

format: install ## ruff format and autofix
	$(VENV)/bin/ruff format ltcl tests hydra_plugins benchmarks
	$(VENV)/bin/ruff check --fix ltcl tests hydra_plugins benchmarks

demo: install ## the whole method on the embedded data (no download): guide -> student, and SimCLR at the same budget; prints the table
	$(RUN) $(VENV)/bin/ltcl-pipeline experiment=demo_pipeline trainer.enable_progress_bar=false
	$(VENV)/bin/ltcl-report outputs/demo/pipeline_demo --metrics knn linear few_shot.1pct few_shot.100shot
	@echo "Run directory: outputs/demo/pipeline_demo/{guide,student,simclr}/ (results.json, *.png, checkpoints/); report: outputs/demo/pipeline_demo/report.md"

docs: install ## build the documentation site into site/ (--strict: a broken link or a page missing from the nav fails)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

benchmark-simclr: install ## recorded CPU run: SimCLR, small backbone, CIFAR-10-LT (JPEG copy) from ../shared/data
	$(RUN) bash benchmarks/baseline/simclr_cifar10_lt_cpu.sh

clean: ## remove run outputs and caches (not the venv)
	rm -rf outputs site .pytest_cache .ruff_cache
