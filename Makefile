# Lamina — make setup | run | test | bench
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# command:Debian package pairs installed when the command is missing.
# bwrap: sandboxes; node/npm: the nodejs runtime; the build tools compile aws-lambda-ric for its tests;
# zip: the README's example, which a test runs.
APT_NEEDS := bwrap:bubblewrap node:nodejs npm:npm cmake:cmake make:make g++:g++ autoconf:autoconf \
	automake:automake libtoolize:libtool zip:zip

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@missing=""; for pair in $(APT_NEEDS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/lamina serve

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q --durations=15

bench: setup
	$(BIN)/python bench/invoke.py

clean:
	rm -rf $(VENV) .lamina
