# Every target does its own set-up: a virtual environment in .venv with the project installed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || command -v python3.13 || ls -d $$HOME/.pyenv/versions/3.1[23]*/bin/python 2>/dev/null | head -1)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | md5sum | cut -c1-8)
# uv installs the exact versions in uv.lock; when it is not on PATH, the pinned release is
# installed once into .tools/uv (pip's own bootstrap, the only thing pip installs).
# --compile-bytecode: every process (a run worker, `dagster job execute`, a Celery worker) loads
# Dagster's .pyc files instead of compiling its sources, which took over 4 s per process where
# PYTHONDONTWRITEBYTECODE is set (CI images, containers) and bytecode is never cached.
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/uv/bin/uv)
EXTRAS := --extra test --extra bench --extra celery --extra s3

.PHONY: demo dev test lint bench clean setup browser redis lock

.tools/uv/bin/uv:
	@test -n "$(PYTHON)" || { echo "Python 3.12 or 3.13 not found (pyenv install 3.12)"; exit 1; }
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	@test -n "$(PYTHON)" || { echo "Python 3.12 or 3.13 not found (pyenv install 3.12)"; exit 1; }
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet --compile-bytecode --python $(PYTHON) $(EXTRAS)
	$(BIN)/python -m compileall -q sync_assets >/dev/null
	rm -f $(VENV)/.installed-* && touch $@

# After changing dependencies in pyproject.toml: resolve them again into uv.lock.
lock: | $(UV)
	$(UV) lock --python $(PYTHON)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/sync-assets demo

dev: $(STAMP)
	$(BIN)/sync-assets dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The browser test drives Debian's Chromium (Playwright's own download does not work here).
CHROMIUM_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then $(CHROMIUM_INSTALL); else sudo -n sh -c '$(CHROMIUM_INSTALL)'; fi; }

# The Celery tests and `sync-assets dev --celery` start Debian's redis-server themselves.
REDIS_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server

redis:
	@command -v redis-server >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then $(REDIS_INSTALL); else sudo -n sh -c '$(REDIS_INSTALL)'; fi; }

# Four workers on two cores: most tests wait on processes, the network and PostgreSQL, and the
# suite is meant to pass on a busy machine (each worker has its own embedded server).
test: lint browser redis
	$(BIN)/python -m pytest -q -n 4 --dist loadfile sync_assets_tests

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	-$(BIN)/python -c "from sync_assets.core.embedded import stop_embedded_server as s; s()"
	rm -rf .sync_assets
