# Entry points of the MLOps platform template.
# Quick start is two commands: `make demo` (whole pipeline as local processes, SQLite, no
# Docker) and `make test` (every subtree's suite in its own venv, then integration-tests).
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath .)
PYTHON ?= python3
VENVS := $(ROOT)/.venvs
SERVICES := ml-training-service ml-serving-service airflow-orchestrator
SUBTREES := $(SERVICES) integration-tests
STACK := cd $(ROOT) && $(PYTHON) -m scripts.embedded

.PHONY: help setup lint test test-services test-integration demo up down status logs screenshots openapi notebooks

# Image builds and .env for Docker Compose (make images, make env).
-include mk/containers.mk
# make security: static checks, checkov, compose policy, attack tests (run by make test).
-include mk/security.mk
# make k8s-check: Kubernetes manifests rendered, validated (strict), scanned by checkov, held to
# docker-compose.yml (run by make test).
-include mk/k8s.mk

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# The venvs are independent: build them side by side (downloads and unpacking overlap).
setup: ## one venv per subtree under .venvs/ (reused when unchanged)
	@$(MAKE) --no-print-directory -j3 $(addprefix setup-,$(SUBTREES)) $(VENVS)/mlflow-server/.installed

setup-%:
	@$(MAKE) --no-print-directory -C $* setup VENV=$(VENVS)/$*

# The embedded MLflow tracking server gets the same pinned requirements as its image.
$(VENVS)/mlflow-server/.installed: infra/mlflow/requirements.txt
	test -x $(VENVS)/mlflow-server/bin/python || $(PYTHON) -m venv $(VENVS)/mlflow-server
	$(VENVS)/mlflow-server/bin/pip install -q -r $<
	touch $@

lint: ## ruff (lint + format) and mypy in every subtree and in scripts/; module docstrings and sizes
	@for s in $(SUBTREES); do echo "== lint $$s"; $(MAKE) --no-print-directory -C $$s lint VENV=$(VENVS)/$$s || exit 1; done
	@echo "== module docstrings and sizes"
	$(PYTHON) scripts/check_modules.py
	@echo "== lint scripts"
	$(VENVS)/integration-tests/bin/ruff check scripts
	$(VENVS)/integration-tests/bin/ruff format --check scripts
	$(VENVS)/integration-tests/bin/mypy --ignore-missing-imports --check-untyped-defs --explicit-package-bases scripts

# Side by side where it pays on two cores: the static checks together, then the three service
# suites together (each waits on its servers and jobs much of the time: 12 min instead of
# 17 here); -Otarget prints each one's output in one piece when it ends. The end-to-end
# suites run alone after them: their containers need the whole machine.
test: setup ## lint, security checks, then every suite (what CI runs)
	@$(MAKE) --no-print-directory -j3 -Otarget lint security k8s-check
	@$(MAKE) --no-print-directory test-services test-integration

# Each service is tested as its own repository: split out with `git subtree split` into a
# temporary clone (in place when it has uncommitted changes), in its own venv.
test-services: setup ## each service's own suite, from its subtree split, in its own venv (side by side)
	@$(MAKE) --no-print-directory -j3 -Otarget $(addprefix test-service-,$(SERVICES))

test-service-%:
	@scripts/test_subtree.sh $* $(VENVS)/$* test

test-integration: setup ## end-to-end: embedded stack, then containers
	$(MAKE) --no-print-directory -C integration-tests test VENV=$(VENVS)/integration-tests

up: setup ## start MLflow, training, serving, Airflow (and Prometheus if installed) as local processes
	$(STACK) up

down: ## stop exactly the processes `make up` started
	$(STACK) down

status: ## what the embedded stack runs, and whether it is healthy
	$(STACK) status

logs: ## last lines of every component's log (LINES=n)
	$(STACK) logs --lines $${LINES:-40}

demo: setup ## the whole pipeline on the embedded stack, with a summary at the end
	$(STACK) demo

# The same test CI runs on its own stack, pointed at the running one (StackConfig.from_env()).
notebooks: ## run notebooks/ top to bottom against the running stack (after `make demo`)
	$(MAKE) --no-print-directory -C integration-tests setup VENV=$(VENVS)/integration-tests
	cd $(ROOT)/integration-tests && NOTEBOOKS_STACK=running $(VENVS)/integration-tests/bin/python \
		-m pytest -o log_cli=false tests/embedded/test_notebooks.py

screenshots: ## PNGs of the Airflow, MLflow and serving UIs into docs/images/ (after `make demo`)
	bash scripts/ensure_chromium.sh
	$(MAKE) --no-print-directory -C integration-tests setup VENV=$(VENVS)/integration-tests
	cd $(ROOT) && $(VENVS)/integration-tests/bin/python -m scripts.ui

openapi: setup ## export each service's OpenAPI document and the orchestrator's vendored copies
	$(PYTHON) scripts/export_openapi.py

# The serving benchmark on the model the training service registers: its own CLI, from its
# subtree and venv, trains and registers the digits CNN that the bench then serves.
.PHONY: bench
bench: setup-ml-serving-service setup-ml-training-service ## serving benchmark (wrk) on the model training registers; BENCH_ARGS="--repeat 1 ..."
	$(MAKE) --no-print-directory -C ml-serving-service bench VENV=$(VENVS)/ml-serving-service \
	  TRAINING_SERVICE=$(ROOT)/ml-training-service \
	  TRAINING_PYTHON=$(VENVS)/ml-training-service/bin/python BENCH_ARGS="$(BENCH_ARGS)"
