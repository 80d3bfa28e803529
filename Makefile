# Lodestar developer commands. `make setup` once, then `make up` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
LODESTAR := $(VENV)/bin/lodestar
PYTEST_ARGS ?=
UP_ARGS ?=

.PHONY: setup up test test-all lint fmt bench infra-up infra-down schemas clean

$(PY):
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

setup: $(PY)  ## venv, project + dev dependencies (torch CPU wheel), local broker binary
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(LODESTAR) infra install

up:  ## start the whole system locally on embedded defaults (Ctrl-C stops it); UP_ARGS="--gateway-port 9080 …"
	$(LODESTAR) up $(UP_ARGS)

test:  ## the default test suite (unit + integration on real servers; slow tests excluded); lists the 15 slowest (budget: ~10 min)
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

test-all:  ## every test, slow ones included
	$(PY) -m pytest -q -m '' $(PYTEST_ARGS)

lint:  ## ruff (lint + format check), mypy on the core packages, schema drift
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy src/lodestar schemas/lodestar_schemas $(wildcard services/*/lodestar_*)
	$(LODESTAR) schemas check

fmt:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schemas:  ## regenerate schemas/json-schema from the event models
	$(LODESTAR) schemas export

infra-up:  ## start the local Kafka-protocol broker (tansu) on 127.0.0.1:9092
	$(LODESTAR) infra start

infra-down:
	$(LODESTAR) infra stop

.PHONY: peers
peers:  ## peer routers (sglang-router, vllm-router) in .lodestar/peers, for benchmarks (the parity test installs its own)
	$(LODESTAR) peers install

clean:
	rm -rf .lodestar .mypy_cache .ruff_cache .pytest_cache
