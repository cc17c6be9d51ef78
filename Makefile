# newsrec: `make` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NEWSREC := $(VENV)/bin/newsrec
DEMO_DIR ?= .newsrec/demo-data
TEST_WORKERS ?= 2
# pytest-xdist workers (a file's tests stay on one worker); TEST_WORKERS=0 runs serially
MODEL_DIR ?= .newsrec/models
PROTO_SRC := protos/recommender/v1/recommender.proto

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-fast serve train proto lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,training,workbench,dask]'
	touch $@

venv: $(VENV)/.installed ## Create .venv and install the project with its dev tools

demo: venv ## Generate the demo corpus, train, serve, and show real gRPC answers
	$(NEWSREC) demo --data-dir $(DEMO_DIR) --model-dir $(MODEL_DIR)

test: venv ## Run the whole test suite (real Redis, real gRPC)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast: venv ## The inner loop: every test but the slow ones (real data, benchmarks)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

serve: venv ## Serve the live model over gRPC (NEWSREC_PORT, default 50051)
	$(NEWSREC) serve

train: venv ## Train on the demo corpus (or ARTICLES=... CLICKS=...) and publish
	@test -n "$(ARTICLES)" || $(NEWSREC) demo-data $(DEMO_DIR)
	$(NEWSREC) train --articles $(or $(ARTICLES),$(DEMO_DIR)/articles.jsonl) \
		--clicks $(or $(CLICKS),$(DEMO_DIR)/clicks.jsonl) --model-dir $(MODEL_DIR)

proto: venv ## Regenerate the Python stubs from protos/
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_SRC)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy recommender training newsrec tests

bench: venv ## Benchmarks (figures go to benchmarks/RESULTS.md by hand; BENCH_ARTICLES=100000)
	$(NEWSREC) bench related --articles $(or $(BENCH_ARTICLES),100000) --progress
	$(NEWSREC) bench serve --plots benchmarks
	$(NEWSREC) bench upsert --articles 20000
	$(NEWSREC) bench footprint

clean: ## Remove the venv, local Redis data and models
	rm -rf $(VENV) .newsrec
