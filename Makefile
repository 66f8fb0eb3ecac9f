# Two commands do everything: `make run` and `make test`. Setup is idempotent: the
# virtual environment is created once and reinstalled only when pyproject.toml changes.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run baselines convergence multistage test slurm-test lint dryrun report clean bench

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	snakemake --cores $(CORES)

# The MDM paper's Tables 1, 3 and 4 (five more full trainings: not part of `make run`).
baselines: setup
	snakemake baselines --cores $(CORES)

# The 8-expert convergence study (MDM Sec. 4.1: Fig. 2, Fig. 3a): eight more experts.
convergence: setup
	snakemake convergence --cores $(CORES)

# The multi-stage paper's comparisons: unified, separate and multi-decoder models (Fig. 1(d), Tables 5, 6).
multistage: setup
	snakemake multistage --cores $(CORES)

# The report covers `make run`, plus `make baselines` / `make convergence` once they have run.
report: setup
	targets=all; for t in baselines convergence multistage; do \
		snakemake $$t -n 2>&1 | grep -q "Nothing to be done" && targets="$$targets $$t"; done; \
	echo "report of: $$targets"; snakemake --cores 1 --report report.html $$targets

test: setup
	$(PY) -m pytest --durations=15

# The SLURM profile on a one-node cluster started here (root, Debian), as CI runs it.
# The cluster stays up for the next run: .ci/slurm_cluster.sh stop ends it.
slurm-test: setup
	.ci/slurm_cluster.sh start
	MDM_TEST_SLURM=1 $(PY) -m pytest tests/workflow/test_slurm.py

lint: setup
	snakemake --lint

dryrun: setup
	snakemake -n

clean:
	rm -rf results .snakemake report.html

# The bench extra (diffusers) is optional: without it the model-efficiency benchmark skips.
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]' && touch $@ \
		|| echo "bench extra not installed: model_efficiency will skip diffusers"

bench: setup $(BENCH_STAMP)
	$(PY) -m benchmarks.run
