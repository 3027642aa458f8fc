# The two commands of the README. Each makes (or reuses) .venv by itself; nothing else is needed.
# Dependency ranges for users live in pyproject.toml; the pins of this machine live here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.semsyn-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PINS := huggingface_hub==2.4.0 safetensors==0.8.0 timm==1.0.31 pyyaml==6.0.3 pillow==13.0.0 tqdm==4.70.1 \
        numpy==2.4.6 pytest==9.2.0 ruff==0.17.6 "setuptools>=68" \
        torch-fidelity==0.4.0 scipy==1.17.1

.PHONY: demo test lint bench clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check $(TORCH_PINS)
	$(PIP) install -q --disable-pip-version-check $(PINS)
	$(PIP) install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	touch $(STAMP)

# semsyn-app's browser test drives the system's Chromium and chromedriver (.ci/install-browser) with Selenium.
APP_TEST_STAMP := $(VENV)/.semsyn-app-test
$(APP_TEST_STAMP): $(STAMP)
	$(PIP) install -q --disable-pip-version-check selenium==4.51.0
	touch $(APP_TEST_STAMP)

demo: $(STAMP)
	$(PY) -m semsyn.cli.demo --out demo_out

test: $(STAMP) $(APP_TEST_STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check semsyn semsyn_models tests benchmarks

# The quick set: a benchmark that declares --quick runs its small sizes (docs/performance.md).
# Every benchmark runs; the exit status is 1 when any of them missed a target.
bench: $(STAMP)
	status=0; for b in benchmarks/bench_*.py; do \
	  if grep -q -- '"--quick"' $$b; then $(PY) $$b --quick || status=1; else $(PY) $$b || status=1; fi; \
	done; exit $$status

clean-venv:
	rm -rf $(VENV)
