# Two entry points for a fresh machine (Python 3.11+ and git only):
#   make demo   - set up, start the embedded Redis and the demo (holt demo), with holt-tui attached
#   make test   - set up and run lint, type checks and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "holt needs Python 3.11+, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project metadata changed.
# uv (a pip-installable installer) takes ~10 s where pip takes over a minute; pip stays the fallback.
# --compile-bytecode: uv, unlike pip, leaves no .pyc behind, and where PYTHONDONTWRITEBYTECODE is set none is ever
# written, so every Python start (each holt command, each pup a claim launches) recompiled redis, pydantic and rich
# from source: ~1.5 s of CPU per start, hundreds of starts in the test suite.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "holt: installing dependencies into $(VENV)/ (first run, or pyproject.toml changed)..."
	@start=$$(date +%s); \
	  if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 \
	    && $(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[test]'; then :; \
	  else echo "holt: uv unavailable, installing with pip (a minute or two)..."; \
	    $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' || exit 1; fi; \
	  echo "holt: dependencies installed in $$(( $$(date +%s) - start )) s"
	@touch $(STAMP)

# The flagship demo (examples/go-microservice) with holt-tui attached; `holt demo recipe` is the small one.
# holt's own modules are compiled first: where PYTHONDONTWRITEBYTECODE is set, each holt, pup and holt-tui start
# would compile them again (compileall is a no-op when they are up to date).
demo: $(STAMP)
	@$(BIN)/python -m compileall -q holt_core holt_tui examples >/dev/null
	$(BIN)/holt demo

lint: $(STAMP)
	$(BIN)/ruff check holt_core holt_tui tests bench
	$(BIN)/mypy

# PYTHONDONTWRITEBYTECODE is lifted for the run so the project's own modules and pytest's rewritten test modules
# are compiled once, not again in each of the hundreds of processes the suite starts.
# One process by default: on this 2-core machine, shared with other work, two pytest-xdist workers were no faster
# (58 engine/HITL tests: 102 s serial, 120 s with -n 2; 33 debug/restart tests: 154 s vs 164 s) and cost more CPU.
# Where there are more cores, PYTEST_XDIST="-n auto --dist worksteal" runs it in parallel: each worker has its own
# redis-server, session dir, HOLT_DATA_DIR and XDG_CONFIG_HOME (tests/conftest.py).
PYTEST_XDIST ?=
# pytest exits 5 when it collected nothing: say so instead of a bare make error.
test: lint
	@env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest: no tests were collected'; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
