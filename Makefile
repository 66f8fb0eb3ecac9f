# Two commands do everything: `make run` and `make test`. Setup is idempotent: the
# virtual environment is created once and reinstalled only when pyproject.toml changes.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test lint dryrun report clean bench

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	snakemake --cores $(CORES)

report: setup
	snakemake --cores 1 --report report.html

test: setup
	$(PY) -m pytest

lint: setup
	snakemake --lint

dryrun: setup
	snakemake -n

clean:
	rm -rf results .snakemake report.html

bench: setup
	$(PY) benchmarks/run_benchmarks.py
