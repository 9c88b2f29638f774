# Lamina — make setup | run | test | bench
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# command:Debian package pairs installed when the command is missing.
# bwrap: sandboxes; node/npm: the nodejs runtime; the build tools compile aws-lambda-ric for its tests;
# zip: the README's example, which a test runs; debootstrap: the runtime images' base systems;
# ruby: the Ruby runtime client's own contract tests.
APT_NEEDS := bwrap:bubblewrap node:nodejs npm:npm cmake:cmake make:make g++:g++ autoconf:autoconf \
	automake:automake libtoolize:libtool zip:zip debootstrap:debootstrap ruby:ruby
# The runtime images `make setup` builds: the ones the test suite runs on (others build on first
# use). One cache outside the checkout, shared by every checkout, `make setup` and the test suite.
RUNTIMES ?= python3.11 python3.13 python3.14 nodejs18.x nodejs20.x nodejs22.x nodejs24.x ruby3.3 \
	provided.al2023 provided.al2
LAMINA_RUNTIMES_DIR ?= $(HOME)/.cache/lamina/runtimes
export LAMINA_RUNTIMES_DIR

.PHONY: setup runtimes run test lint bench clean

setup: $(STAMP) runtimes

$(STAMP): pyproject.toml Makefile
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

# builds each missing or outdated image once (a few minutes each, cold); a built one costs nothing
runtimes: $(STAMP)
	$(BIN)/lamina runtimes install $(RUNTIMES)

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
