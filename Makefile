# Two entry points, each bootstrapping what it needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: run test lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check --upgrade pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The dashboard's front-end packages (uPlot), from the npm registry, pinned by the lock file.
UI := dashboard/node_modules/.package-lock.json

$(UI): dashboard/package.json dashboard/package-lock.json
	npm ci --prefix dashboard --no-audit --no-fund --loglevel=error
	touch $(UI)

run: $(STAMP) $(UI)
	$(VENV)/bin/snakepit-perf run $(ARGS)

# Debian's prometheus (a real Prometheus scrapes /metrics), prometheus-alertmanager (receives our
# alerts), chromium (the dashboard tests), and elixir with the Erlang/OTP it needs (the Elixir
# forwarder's `mix test`; erlang-ssl for :httpc over https).
MISSING_DEBS := $(if $(shell command -v prometheus),,prometheus) \
	$(if $(wildcard /usr/bin/prometheus-alertmanager),,prometheus-alertmanager) \
	$(if $(wildcard /usr/bin/chromium),,chromium) \
	$(if $(shell command -v mix),,elixir erlang-ssl)

test: $(STAMP) $(UI)
ifneq ($(strip $(MISSING_DEBS)),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(MISSING_DEBS) >/dev/null
endif
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
