# The two commands a fresh clone needs: `make migrate` and `make test`.
# Each installs the project into .venv/ first when that has not happened yet.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install migrate test clean

install: $(STAMP)

# Re-installs when pyproject.toml changes (new dependencies).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

migrate: install
	$(BIN)/runner migrate

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
