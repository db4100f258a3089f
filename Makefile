# minegate: the two commands a newcomer runs are `make demo` and `make test`.
# Both set up what they need on a fresh Debian machine (as root): Debian
# packages for the real servers the tests talk to, and a virtual environment.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
DEBS := mosquitto mosquitto-clients influxdb victoria-metrics socat mbpoll postgresql chromium redis-server cloudcompare nginx-light curl
STAMP := $(VENV)/.installed

.PHONY: all setup debs venv bytecode demo demo-gateway test lint typecheck pytest bench bench-survey bench-openpit bench-gateway bench-gateway-scale bench-bus bench-alarms bench-platform bench-uploads clean

all: test

# Debian packages: only installed when missing, and only when we can (root).
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing (run as root or install them with apt-get)"; exit 1; \
	  fi; \
	fi
	@# The Debian packages enable services; the tests start their own servers.
	@for s in mosquitto influxdb victoria-metrics postgresql redis-server nginx; do \
	  (command -v systemctl >/dev/null && systemctl is-active --quiet $$s 2>/dev/null && systemctl stop $$s) >/dev/null 2>&1 || true; done

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip >/dev/null
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Bytecode of our own packages, as a wheel install would have it: the
# editable install leaves them uncompiled, and where PYTHONDONTWRITEBYTECODE
# is set every `minegate` start compiles them again (~0.1 s). Only changed
# files are compiled.
bytecode: venv
	$(PY) -m compileall -q drivers gateway survey simulators supervision bench

setup: debs venv

demo: setup bytecode
	$(VENV)/bin/minegate platform demo $(DEMO_ARGS)

# The gateway alone against one simulated mine, with a live table.
demo-gateway: setup bytecode
	$(VENV)/bin/minegate demo $(DEMO_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check drivers gateway survey simulators supervision tests bench

typecheck: venv
	$(VENV)/bin/mypy

pytest: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: setup lint typecheck pytest

bench: bench-gateway bench-gateway-scale bench-bus bench-alarms bench-survey bench-openpit bench-platform bench-uploads

bench-gateway: setup bytecode
	$(PY) -m bench.gateway_bench

bench-gateway-scale: setup bytecode
	$(PY) -m bench.gateway_scale

# open pits: a 10,000 x 10,000 DSM and a 100 M-point LAZ through check-pit,
# CloudCompare's volume on the same cloud (bench/results/openpit.md)
bench-openpit: setup bytecode
	$(PY) -m bench.openpit_bench

bench-bus: setup bytecode
	$(PY) -m bench.bus_bench

bench-alarms: setup bytecode
	$(PY) -m bench.alarms_bench
	$(PY) -m bench.alarms_latency --devices 50
	$(PY) -m bench.alarms_latency --devices 50 --backlog 1000000

bench-survey: setup bytecode
	$(PY) -m bench.survey_bench

bench-platform: setup bytecode
	$(PY) -m bench.platform_bench

# nginx-light: the plain HTTP PUT the uploads are compared with
bench-uploads: setup bytecode
	$(PY) -m bench.uploads_bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
