# The README's two commands: `make demo` and `make test`. Each builds .venv on first use
# (pinned versions from constraints.txt) and reuses it afterwards. `make test-latest` runs
# the tests in the second environment, .venv-latest: the newest openai and anthropic and
# no LiteLLM (constraints-latest.txt). `make conformance` runs the SDKs' own test suites
# bare and under sessionware (README, "Conformance"); `make conformance-fast` is CI's part.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LATEST := .venv-latest
LATEST_STAMP := $(LATEST)/.installed-stamp
PYTEST_ARGS ?=
# One xdist worker per core, a test module at a time (a module's LiteLLM proxy starts once),
# in the order tests/conftest.py gives them (modules with slow tests first), not by size.
XDIST := --numprocesses=auto --dist loadscope --no-loadscope-reorder
CONFORMANCE_ARGS ?=

.PHONY: demo test test-latest conformance conformance-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[all,dev,conformance]"
	touch $(STAMP)

$(LATEST_STAMP): pyproject.toml constraints-latest.txt
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade "pip>=24"
	$(LATEST)/bin/python -m pip install -q -c constraints-latest.txt -e ".[openai,anthropic,redis,otel,postgres,dev,conformance]"
	touch $(LATEST_STAMP)

DEMO_DB := .demo/demo.db

demo: $(STAMP)
	rm -rf .demo && mkdir -p .demo
	$(BIN)/python examples/wrap_openai.py $(DEMO_DB)
	$(BIN)/sessionware --store sqlite:///$(DEMO_DB) sessions

test: $(STAMP)
	$(BIN)/python -m ruff check sessionware tests examples benchmarks conformance
	$(BIN)/python -m mypy
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest $(XDIST) $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report --fail-under=90

# The tests whose outcome depends on the SDKs' versions (the core never imports them).
LATEST_TESTS ?= tests/adapters tests/cli tests/test_public_api.py

test-latest: $(LATEST_STAMP)
	$(LATEST)/bin/python -m pytest $(XDIST) $(LATEST_TESTS) $(PYTEST_ARGS)

conformance: $(STAMP) $(LATEST_STAMP)
	$(BIN)/python -m conformance $(CONFORMANCE_ARGS)
	$(LATEST)/bin/python -m conformance $(CONFORMANCE_ARGS)

# CI's part: the fast subset, bare and in strict mode (which runs the same hooks as
# production behaviour and raises what production would only log), the two side by
# side in one process each: on 2 cores, xdist workers would only repeat the collection.
CONFORMANCE_FAST_ARGS ?= --modes bare,strict --jobs 2 --workers 0 --run-timeout 900

conformance-fast: $(STAMP) $(LATEST_STAMP)
	$(BIN)/python -m conformance --fast $(CONFORMANCE_FAST_ARGS) $(CONFORMANCE_ARGS)
	$(LATEST)/bin/python -m conformance --fast $(CONFORMANCE_FAST_ARGS) $(CONFORMANCE_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/core_tracking.py
	$(BIN)/python benchmarks/adapter_overhead.py
	$(BIN)/python benchmarks/context_build.py
	$(BIN)/python benchmarks/context_quality.py
	$(BIN)/python benchmarks/managed_overhead.py
	$(BIN)/python benchmarks/managed_quality.py
	$(BIN)/python benchmarks/litellm_overhead.py
	$(BIN)/python benchmarks/proxy_overhead.py
	$(BIN)/python benchmarks/zero_code_startup.py
	$(BIN)/python benchmarks/tool_overhead.py
	$(BIN)/python benchmarks/many_writers.py

clean:
	rm -rf $(VENV) $(LATEST) .demo .pytest_cache .mypy_cache .ruff_cache .coverage
