# Every target installs what it needs first; `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help install run test test-services lint typecheck format check bench bench-presidio openapi clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip uv
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create the virtual environment and install Custos with its dev tools

run: $(STAMP) ## Serve on http://127.0.0.1:8000 (SQLite, in-process jobs), with a demo tenant
	$(VENV)/bin/custos migrate
	$(VENV)/bin/custos demo
	$(VENV)/bin/custos serve --host 127.0.0.1 --port 8000

test: $(STAMP) ## Run the test suite (SQLite; set DATABASE_URL and REDIS_URL for PostgreSQL + Redis)
	$(PY) -m pytest $(PYTEST_ARGS)

test-services: $(STAMP) ## Run the suite against local PostgreSQL and Redis
	DATABASE_URL=$${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff format check and lint
	$(VENV)/bin/ruff format --check src tests bench migrations
	$(VENV)/bin/ruff check src tests bench migrations

typecheck: $(STAMP) ## mypy (strict)
	$(VENV)/bin/mypy

format: $(STAMP) ## Format and fix what ruff can
	$(VENV)/bin/ruff format src tests bench migrations
	$(VENV)/bin/ruff check --fix src tests bench migrations

check: lint typecheck test ## Everything CI checks: format, lint, types, tests

bench: $(STAMP) ## Run every benchmark in bench/ (prints tables and a JSON line each)
	@set -e; for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script; done

bench-presidio: ## Make .venv-presidio: Presidio for bench/pii.py, apart from Custos's environment
	test -x .venv-presidio/bin/python || python3 -m venv .venv-presidio
	.venv-presidio/bin/python -m pip install -q presidio-analyzer==2.2.366

openapi: $(STAMP) ## Write the OpenAPI schema to openapi.json
	$(VENV)/bin/custos openapi --output openapi.json

clean: ## Remove the virtual environment, caches and the local database
	rm -rf $(VENV) .venv-presidio .mypy_cache .ruff_cache .pytest_cache custos.db custos.db-*
