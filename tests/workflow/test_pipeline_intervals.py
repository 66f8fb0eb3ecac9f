"""Interval selection in the real pipeline: every method's file, the study, and a method switch."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, SMOKE_OUT, copy_smoke_run, snakemake

from mdmlib import paths
from mdmlib.intervals.choice import read_choice
from mdmlib.intervals.registry import method_names
from mdmlib.report.labels import METHOD_LABELS


def test_every_method_writes_its_interval_file_and_figures(smoke_run):
    workdir, _ = smoke_run
    out = workdir / SMOKE_OUT
    for method in method_names():
        choice = read_choice(paths.choice(out, method, 3))
        assert choice.method == method and choice.n == 3 and choice.timesteps == 1000
        figures = out / f"figures/intervals/{method}_n3"
        assert figures.is_dir()
    for stem in ("attention/attention_curves", "attention/attention_maps", "gradient/gradient_similarity",
                 "gradient/gradient_objective", "optimal_denoiser/optimal_denoiser_distance", "snr/snr_flops"):
        method, name = stem.split("/")
        assert (out / f"figures/intervals/{method}_n3/{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"figures/intervals/{method}_n3/{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_the_study_trains_each_methods_intervals_at_equal_total_iterations(smoke_run):
    workdir, _ = smoke_run
    out = workdir / SMOKE_OUT
    iterations = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())["intervals"]["study"]["iterations"]
    study = pd.read_csv(paths.table(out, "interval_study", "csv"))
    methods = [m for m in study["method"] if m != "single model (no split)"]
    assert methods == [METHOD_LABELS[m] for m in method_names()]
    for col in ("FID", "sFID", "precision", "recall"):
        assert np.isfinite(study[col]).all(), col
    assert (study["total iterations"] == iterations).all()
    for method in method_names():
        row = study[study["method"] == METHOD_LABELS[method]].iloc[0]
        series = pd.read_csv(paths.series(out, f"study_{method}"))
        assert row["FID"] == pytest.approx(series["fid"].iloc[-1])  # this run's number, not a constant
        choice = read_choice(paths.choice(out, method, 3))
        budgets = [int(b) for b in row["iterations per expert"].split()]
        assert sum(budgets) == iterations
        assert [int(s) for s in series["steps"].iloc[-1].split()] == budgets  # scored at those steps
        for interval, budget in zip(choice.intervals, budgets):  # the experts really trained on them
            own = out / f"models/t{interval.lo}-{interval.hi}_i{budget}/timing.csv"
            longer = [d for d in (out / "models").glob(f"t{interval.lo}-{interval.hi}_i*")
                      if int(d.name.rsplit("_i", 1)[1]) > budget]
            if method == "paper":  # the main MDM run's snapshots at its first point serve it
                assert not own.exists() and longer
            else:  # trained on its own, or served by a longer model's snapshot in the same way
                assert (own.exists() and pd.read_csv(own)["step"].iloc[-1] == budget) or longer
    main_first_point = pd.read_csv(paths.series(out, "mdm")).iloc[0]
    paper_row = study[study["method"] == METHOD_LABELS["paper"]].iloc[0]
    assert paper_row["FID"] == main_first_point["fid"]  # the same samples, scored the same way
    chosen = pd.read_csv(paths.table(out, "intervals", "csv"))
    od = chosen[chosen["method"] == METHOD_LABELS["optimal_denoiser"]]
    assert sorted(od["n"]) == [2, 3, 4, 5]
    assert "64 generated vs 64 validation images" in (out / "tables/interval_study.md").read_text()
    assert (out / "figures/interval_study.pdf").read_bytes()[:5] == b"%PDF-"


# A method that reads a trained model (the longest wiring: checkpoint -> choice_path -> expert
# models); the wiring is the same code for every method, and each method's own file and experts
# are already exercised by the study in the smoke run.
SWITCHED_METHODS = ("attention",)


def test_switching_the_method_retrains_only_the_experts_it_changes(smoke_run, tmp_path):
    """experts.intervals=<method>, for methods in turn: the MDM run follows that method's
    file, and only its experts are trained (the baseline and the interval files are kept)."""
    workdir = tmp_path / "workflow"
    copy_smoke_run(smoke_run[0], workdir)
    out = workdir / SMOKE_OUT
    target = paths.series(SMOKE_OUT, "mdm")
    for method in SWITCHED_METHODS:
        (workdir / "method.yaml").write_text(f"experts: {{intervals: {method}}}\n")
        args = ("--configfile", "configs/smoke.yaml", "method.yaml")
        plan = snakemake(workdir, target, *args, "-n").stdout
        assert "train_baseline" not in plan and "select_intervals" not in plan, method
        snakemake(workdir, target, *args)
        choice = read_choice(paths.choice(out, method, 3))
        series = pd.read_csv(paths.series(out, "mdm"))
        assert np.isfinite(series["fid"]).all(), method
        expected = sorted(f"t{i.lo}-{i.hi}" for i in choice.intervals)
        samples = np.load(paths.samples(out, "mdm", series["point"].iloc[-1]))
        assert sorted(n.rsplit("_i", 1)[0] for n in samples["checkpoint_names"]) == expected, method
