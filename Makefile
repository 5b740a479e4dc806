# The two commands a fresh clone needs: `make migrate` and `make test`.
# Each installs the project into .venv/ first when that has not happened yet.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install migrate test clean bench bench-quick

install: $(STAMP)

# Re-installs when pyproject.toml changes (new dependencies).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@$(BIN)/python -m compileall -q runner  # bytecode, even where PYTHONDONTWRITEBYTECODE is set: a faster start
	@touch $(STAMP)

migrate: install
	$(BIN)/runner migrate

test: install
	$(BIN)/python -m pytest

# Benchmark against the psql floor and the peers (dbmate, yoyo, sqitch, postgrator), installed on
# first use into bench/.tools/. `make bench-quick` is the few-minutes version; pass more
# options with ARGS, e.g. make bench ARGS="--only runner,psql --workloads W1,W4".
bench: install
	$(BIN)/python bench/run.py $(ARGS)

bench-quick: install
	$(BIN)/python bench/run.py --quick $(ARGS)

# The embedded PostgreSQL (.runner/, or /var/lib/runner-pg as root) is kept: `runner db destroy` deletes it.
clean:
	rm -rf $(VENV) .pytest_cache
	@if [ -d .runner ]; then echo "The embedded PostgreSQL is kept; to delete it too: make install && $(BIN)/runner db destroy"; fi

# psql on the database `make migrate` built (the embedded one unless DATABASE_URL is set), kept up
# while psql runs. For other tools: `runner db start`, then `runner db url`, then `runner db stop`.
.PHONY: psql
psql: install
	$(BIN)/runner db shell
