"""The multi-stage paper's comparisons (`make multistage`): unified, separate and multi-stage models
at equal training iterations and samples.

Fig. 1(d) form (FID against iterations and measured training cost), Table 5 form (iterations,
MACs per training step, total training MACs, FID), Table 6 form (precision and recall) and the
per-stage parameters and MACs of the multi-decoder model (Tables 7 and 9 count them this way).
A multi-stage step trains every stage on its share of the batch, so a step sees as many samples
as a unified step: iterations compare directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mdmlib.metrics.spread import paired_difference
from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.multi_decoder import nfe_weighted_macs, stage_costs
from mdmlib.report.claims import (
    ClaimResult,
    difference_spread,
    mean_sd,
    paired_claim,
    untested,
    verdict_claim,
)
from mdmlib.report.figures import fid_curves_figure
from mdmlib.report.labels import run_label
from mdmlib.report.tables import best_point, write_table
from mdmlib.report.verdicts import FAILS, HOLDS, Verdict, less_verdict
from mdmlib.sampling.ddim import ddim_timesteps
from mdmlib.studies.convergence import normalised_costs, point_steps
from mdmlib.studies.main import shared_set_values
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint

RUNS = ("baseline", "separate", "multistage")  # unified, one full U-Net per stage, shared encoder


def training_cost_table(series: Mapping[str, pd.DataFrame], run_models: Mapping[str, Sequence[str]],
                        macs_per_sample: Mapping[str, float], batch_size: int) -> pd.DataFrame:
    """Table 5 form. ``macs_per_sample[model]``: forward MACs per training sample (a multi-stage
    model's is the mean over its stages: each trains on an equal share of every batch).
    Training MACs count forward and backward as 3 forwards, as the paper does."""
    rows = []
    for run, df in series.items():
        models = run_models[run]
        steps = point_steps(df)[-1]  # each model's steps at the end of the series
        total = sum(3.0 * batch_size * macs_per_sample[m] * s for m, s in zip(models, steps))
        per_step = [3.0 * batch_size * macs_per_sample[m] for m in models]
        best = best_point(df)
        rows.append({"method": run_label(run), "models": len(models), "iterations": int(steps.sum()),
                     "training MACs per step (G)": float(np.mean(per_step)) / 1e9,
                     "total training MACs (T)": total / 1e12, "best FID": float(best["fid"]),
                     "at iterations": int(best["total_steps"]),
                     "FID at end": float(df.sort_values("point")["fid"].iloc[-1])})
    return pd.DataFrame(rows)


def quality_rows(series: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Table 6 form: each run at its best FID with precision and recall."""
    rows = []
    for run, df in series.items():
        best = best_point(df)
        rows.append({"method": run_label(run), "FID": float(best["fid"]), "precision": float(best["precision"]),
                     "recall": float(best["recall"]), "point": int(best["point"]),
                     "iterations": int(best["total_steps"])})
    return pd.DataFrame(rows)


def stage_cost_rows(stage_rows: Sequence[dict], nfe_weighted: float, unified: dict) -> pd.DataFrame:
    """Parameters and MACs of the shared encoder, each decoder and each stage, the NFE-weighted
    average over the sampling trajectory ("Total GFLOPs" in the paper), and the unified model."""
    rows = [{"part": r["part"], "parameters (M)": r["parameters"] / 1e6, "forward MACs (M)": r["macs"] / 1e6}
            for r in stage_rows]
    rows.append({"part": "multi-stage, NFE-weighted over the sampling steps", "parameters (M)": np.nan,
                 "forward MACs (M)": nfe_weighted / 1e6})
    rows.append({"part": "unified model", "parameters (M)": unified["parameters"] / 1e6,
                 "forward MACs (M)": unified["macs"] / 1e6})
    return pd.DataFrame(rows)


def set0_series_and_spreads(sets: Mapping[str, pd.DataFrame], multistage_spread: pd.DataFrame
                            ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The comparison's series, every run on its sample set 0 (the baseline scores more sets in
    `make run`, the others one), and the claim's scores at the best points: the multi-stage
    model's seed spread, the baseline's sets at its best point."""
    series = {run: df[df["seed_set"] == 0].reset_index(drop=True) for run, df in sets.items()}
    base_point = int(best_point(series["baseline"])["point"])
    baseline = sets["baseline"]
    return series, {"multistage": multistage_spread, "baseline": baseline[baseline["point"] == base_point]}


def claim_verdict(series: Mapping[str, pd.DataFrame], spreads: Mapping[str, pd.DataFrame] | None = None) -> Verdict:
    """The paper's claim (multi-stage reaches a better FID than unified in fewer iterations), read
    from this run's numbers: each run's best point on its series (sample set 0), then, with
    ``spreads`` (run -> that point's scores on several seed sets, column seed_set), the FIDs
    compared set by set (``mdmlib.report.verdicts``); without them, on set 0 alone."""
    multi, unified = best_point(series["multistage"]), best_point(series["baseline"])
    sooner = int(multi["total_steps"]) <= int(unified["total_steps"])
    at = f"best points at {int(multi['total_steps'])} and {int(unified['total_steps'])} iterations"
    if spreads is None:
        better = float(multi["fid"]) < float(unified["fid"])
        return Verdict(HOLDS if better and sooner else FAILS,
                       f"on one sample set per point: best FID {float(multi['fid']):.4g} against "
                       f"{float(unified['fid']):.4g}, {at}")
    lower = less_verdict("multistage", "baseline", shared_set_values(spreads, "fid"))
    if lower.verdict == HOLDS and not sooner:
        lower = Verdict(FAILS, f"{lower.reason}, but not in fewer iterations")
    return Verdict(lower.verdict, f"{lower.reason}; {at}")


def multistage_claims(series: Mapping[str, pd.DataFrame], spreads: Mapping[str, pd.DataFrame] | None,
                      setting: str) -> list[ClaimResult]:
    """Fig. 1(d)/Table 5 (better FID in fewer iterations) and Table 6 (recall) claims."""
    multi, unified = best_point(series["multistage"]), best_point(series["baseline"])
    if spreads is None:
        fid_ours = f"multi-stage {float(multi['fid']):.4g}, unified {float(unified['fid']):.4g} (set 0)"
        return [verdict_claim("ms_table5_fid", fid_ours, claim_verdict(series), setting),
                untested("ms_table6_recall", "one sample set per point", setting)]
    fids = shared_set_values(spreads, "fid")
    fid_ours = (f"multi-stage {mean_sd(fids['multistage'])} at {int(multi['total_steps'])} its, unified "
                f"{mean_sd(fids['baseline'])} at {int(unified['total_steps'])} its")
    spread_text = difference_spread(paired_difference(fids["multistage"], fids["baseline"]))
    recall = {"multi-stage" if r == "multistage" else "unified": v
              for r, v in shared_set_values(spreads, "recall").items()}
    return [verdict_claim("ms_table5_fid", fid_ours, claim_verdict(series, spreads), setting, spread_text),
            paired_claim("ms_table6_recall", "multi-stage", "unified", recall, setting, lower=False)]


def fid_against_iterations_figure(series: Mapping[str, pd.DataFrame], run_models: Mapping[str, Sequence[str]],
                                  timings: Mapping[str, pd.DataFrame], png_path: str | Path, title: str = "") -> None:
    """Fig. 1(d) form: FID against training iterations and against measured total cost (s)."""
    costed = normalised_costs(series, run_models, timings)
    fid_curves_figure({run_label(run): df.sort_values("point") for run, df in costed.items()},
                      [("total_steps", "training iterations"), ("tc_timed", "measured TC (s)")], png_path, title)


def write_multistage_study(series: Mapping[str, pd.DataFrame], run_models: Mapping[str, Sequence[str]],
                           timings: Mapping[str, pd.DataFrame], costs: dict, batch_size: int, outputs,
                           experiment: str, setting: str,
                           spreads: Mapping[str, pd.DataFrame] | None = None) -> list[ClaimResult]:
    """``costs``: "macs_per_sample" (model -> forward MACs), "stages" (``stage_costs`` rows),
    "nfe_weighted" and "unified" ({parameters, macs}); ``outputs`` has table5/table6/stages
    _csv/_md and figure_png (the PDF goes beside it)."""
    verdict = (f"paper's claim (multi-stage better FID than unified in fewer iterations): "
               f"{claim_verdict(series, spreads).text()}")
    table5 = training_cost_table(series, run_models, costs["macs_per_sample"], batch_size)
    write_table(table5, outputs.table5_csv, outputs.table5_md,
                f"Table 5 form ({experiment}): unified, separate (one full U-Net per stage) and multi-stage "
                f"(shared encoder, one decoder per stage) at equal iterations and samples (batch {batch_size} a "
                f"step); training MACs = 3 x forward MACs x batch x iterations; FIDs on sample set 0 (the curve's "
                f"one set per point; the verdict compares the best points on every scored set); {verdict}; "
                f"{setting}.")
    table6 = quality_rows(series)
    write_table(table6, outputs.table6_csv, outputs.table6_md,
                f"Table 6 form ({experiment}): precision and recall at each run's best FID, on sample set 0 "
                f"(mean and sd over every scored set at the best points: the claims table); {setting}.")
    stages = stage_cost_rows(costs["stages"], costs["nfe_weighted"], costs["unified"])
    write_table(stages, outputs.stages_csv, outputs.stages_md,
                f"Parameters and forward MACs per image of the multi-decoder model ({experiment}): a stage is the "
                f"shared encoder with its decoder (the paper's Table 7 count); the NFE-weighted row averages the "
                f"stages over the sampler's steps (the paper's 'Total GFLOPs').")
    fid_against_iterations_figure(series, run_models, timings, outputs.figure_png, title=f"{experiment}: {setting}")
    print(table5.to_string(), table6.to_string(), stages.to_string(), verdict, sep="\n\n")
    return multistage_claims(series, spreads, f"{experiment}; {setting}")


def model_costs(checkpoints: Mapping[str, str | Path], multistage: str, unified: str, timesteps: int,
                sampling_steps: int) -> dict:
    """Forward MACs per sample of every model (a multi-stage model's: the mean over its stages),
    the multi-decoder model's stage costs and NFE-weighted MACs, and the unified model's size."""
    models = {name: model_from_checkpoint(load_checkpoint(path)) for name, path in checkpoints.items()}
    ms = models[multistage]
    sample = torch.zeros(1, ms.in_channels, ms.resolution, ms.resolution)
    stages = stage_costs(ms, sample)
    per_sample = {}
    for name, model in models.items():
        if name == multistage:
            per_sample[name] = float(np.mean([r["macs"] for r in stages if r["part"].startswith("stage")]))
        else:
            per_sample[name] = float(forward_macs(model, sample, torch.zeros(1, dtype=torch.long)))
    return {"macs_per_sample": per_sample, "stages": stages,
            "nfe_weighted": nfe_weighted_macs(ms, stages, ddim_timesteps(timesteps, sampling_steps)),
            "unified": {"parameters": count_parameters(models[unified]), "macs": per_sample[unified]}}
