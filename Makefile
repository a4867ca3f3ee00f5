# Every target does its own set-up: a virtual environment in .venv with the project installed.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.12 || command -v python3.13 || ls -d $$HOME/.pyenv/versions/3.1[23]*/bin/python 2>/dev/null | head -1)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)

.PHONY: demo dev test lint bench clean setup browser

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 or 3.13 not found (pyenv install 3.12)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	rm -f $(VENV)/.installed-* && touch $@

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

test: lint browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile sync_assets_tests

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	-$(BIN)/python -c "from sync_assets.core.embedded import stop_embedded_server as s; s()"
	rm -rf .sync_assets
