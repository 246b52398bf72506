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
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "holt: installing dependencies into $(VENV)/ (first run, or pyproject.toml changed)..."
	@start=$$(date +%s); \
	  if $(BIN)/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 \
	    && $(BIN)/python -m uv pip install --quiet --python $(BIN)/python -e '.[test]'; then :; \
	  else echo "holt: uv unavailable, installing with pip (a minute or two)..."; \
	    $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' || exit 1; fi; \
	  echo "holt: dependencies installed in $$(( $$(date +%s) - start )) s"
	@touch $(STAMP)

# The flagship demo (examples/go-microservice) with holt-tui attached; `holt demo recipe` is the small one.
demo: $(STAMP)
	$(BIN)/holt demo

lint: $(STAMP)
	$(BIN)/ruff check holt_core holt_tui tests bench
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: say so instead of a bare make error.
test: lint
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'pytest: no tests were collected'; fi; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
