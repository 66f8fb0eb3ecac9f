# Two commands do everything: `make run` and `make test`. Setup is idempotent: the
# virtual environment is created once and reinstalled only when pyproject.toml changes.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
CORES ?= all
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run baselines convergence multistage tdc tdc-ablations diffpruning test slurm-test lint dryrun report snakemake-report browser clean bench

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	snakemake --cores $(CORES)

# A target's claims enter the claims table once its files exist, which the DAG of the target's own
# call cannot see: a second call brings tables/claims.{csv,md} up to date from the claims files
# that exist (not `make run`'s jobs as well, on a clone where it has not run).
CLAIMS = snakemake claims_table_update --cores $(CORES)

# The MDM paper's Tables 1, 3 and 4 (five more full trainings: not part of `make run`).
baselines: setup
	snakemake baselines --cores $(CORES)
	$(CLAIMS)

# The 8-expert convergence study (MDM Sec. 4.1: Fig. 2, Fig. 3a): eight more experts.
convergence: setup
	snakemake convergence --cores $(CORES)
	$(CLAIMS)

# The multi-stage paper's comparisons: unified, separate and multi-decoder models (Fig. 1(d), Tables 5, 6).
multistage: setup
	snakemake multistage --cores $(CORES)
	$(CLAIMS)

# TDC training: the baseline pruned and fine-tuned per SNR group (Tables I, VI, Fig. 3).
tdc: setup
	snakemake tdc --cores $(CORES)
	$(CLAIMS)

# TDC's ablations: FLOPs schedules (Table II) and group numbers (Table III).
tdc-ablations: setup
	snakemake tdc_ablations --cores $(CORES)
	$(CLAIMS)

# DiffPruning: the baseline pruned into a mixture of efficient experts at each MACs budget (Table 1).
diffpruning: setup
	snakemake diffpruning --cores $(CORES)
	$(CLAIMS)

# One self-contained HTML page: the claims table, then `make run`'s tables and figures, then those
# of `make baselines` / `convergence` / `multistage` once they have run (results/<dataset>/<experiment>/report.html).
report: setup
	snakemake report_page --cores $(CORES)

# Snakemake's own interactive report of the same targets (report.html here).
snakemake-report: setup
	targets=all; for t in baselines convergence multistage tdc tdc_ablations diffpruning; do \
		snakemake $$t -n 2>&1 | grep -q "Nothing to be done" && targets="$$targets $$t"; done; \
	echo "report of: $$targets"; snakemake --cores 1 --report report.html $$targets

# Headless Chromium for the report's browser test (Debian's package; root only). Without it
# the test skips and says why.
browser:
	@command -v chromium >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
			|| echo "chromium could not be installed: the browser test will skip"; \
	else echo "not root or no apt-get: chromium not installed, the browser test will skip"; fi

test: setup browser
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
