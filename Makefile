# The two commands of the README: `make run` and `make test`. Each creates .venv and installs
# what it needs by itself; nothing else has to be on the machine but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench demo clean install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/p2p up

# Prometheus (Debian package) backs one deployment test; installed here when we may.
test: $(STAMP)
	@command -v prometheus >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) || true
	$(BIN)/pytest tests

test-fast: $(STAMP)
	$(BIN)/pytest tests/unit

# wrk (Debian package) drives the end-to-end saturation run; without it a Python client does.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) || true
	$(BIN)/p2p bench

demo: $(STAMP)
	$(BIN)/p2p demo

clean:
	rm -rf $(VENV) .p2p .pytest_cache
