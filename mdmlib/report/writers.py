"""Assemble the tables and figures that a person reads, with self-describing captions."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from mdmlib.report.claims import ClaimResult
from mdmlib.report.convergence_figures import fig1, fig2, fig3a
from mdmlib.report.figures import sample_grid_figure
from mdmlib.report.labels import run_label
from mdmlib.report.tables import best_point, write_spread_table, write_table
from mdmlib.sampling.points import load_samples
from mdmlib.studies.convergence import (
    convergence_claim,
    full_run_seconds,
    measured_span_seconds,
    normalised_costs,
    per_expert_curves,
    slowest_intervals,
    table2,
)
from mdmlib.studies.convergence_rule import ConvergenceRule
from mdmlib.studies.main import main_claims, quality_table, quality_verdicts
from mdmlib.studies.reallocation import write_reallocation_tables


def metric_setting(series: dict[str, pd.DataFrame]) -> str:
    """'<feature network>, N generated vs M reference images' (equal for every run, checked)."""
    settings = {(r["feature_network"], int(r["num_samples"]), int(r["num_reference"]), r.get("reference", "validation"))
                for df in series.values() for _, r in df.iterrows()}
    if len(settings) != 1:
        raise ValueError(f"runs were scored in different settings {settings}: their FIDs are not comparable")
    network, n, m, reference = settings.pop()
    images = {"both": "training and validation"}.get(reference, reference)
    return f"features: {network}; {n} generated vs {m} {images} images"


def write_paper_tables(series: dict[str, pd.DataFrame], run_models: dict[str, list[str]],
                       timings: dict[str, pd.DataFrame], rule: ConvergenceRule, outputs, experiment: str,
                       sets: dict[str, pd.DataFrame] | None = None) -> list[ClaimResult]:
    """outputs has quality_csv/_md, efficiency_csv/_md and figure (PNG; the PDF goes beside it);
    ``sets``: each run's series by point and sample set (mean, sd and paired differences).
    Returns the Tables 2 and 3 claims (with ``sets`` and both main runs; else none)."""
    setting = metric_setting(series)
    quality = quality_table(series, sets)
    claim_text = ""
    if sets is not None and {"mdm", "baseline"} <= set(series):
        verdicts = quality_verdicts(series, sets)
        claim_text = "; paper's claim (MDM lower than its baseline) " + ", ".join(
            f"in {metric}: {text}" for metric, text in verdicts.items())
    n_sets = int(quality["sample sets"].min())
    write_spread_table(quality, outputs.quality_csv, outputs.quality_md,
                       f"Table 3 form ({experiment}): each run at its best point, chosen on the mean FID over "
                       f"{n_sets} disjoint sample sets; mean (sd) over the sets; '- baseline' = the paired difference "
                       f"to the baseline's best point set by set, mean (se){claim_text}; {setting}.",
                       pairs={f"{m} - baseline": f"{m} - baseline se" for m in ("FID", "sFID")})
    spans = {run: measured_span_seconds([timings[m] for m in models]) for run, models in run_models.items()
             if run != "baseline"}
    efficiency = table2(series, run_models, timings, rule, measured_wall_seconds=spans)
    baseline_seconds = full_run_seconds(timings[run_models["baseline"][0]])
    write_table(efficiency, outputs.efficiency_csv, outputs.efficiency_md,
                f"Table 2 form ({experiment}): wall-clock time (NWCT) and total cost (NTC) in % of the "
                f"baseline's measured full run ({baseline_seconds:.1f} s), from the training logs; MDM experts "
                f"counted as parallel jobs (WCT = slowest expert, TC = sum; 'measured side by side' = first expert's "
                f"start to last expert's end as the jobs really ran in this run, sharing the cores with the rest of "
                f"the workflow); converged = MDM's rule ({rule.text()}; sd = the FID's sd over the point's "
                f"sample sets); "
                f"baseline equivalent = first point below the baseline's best FID; '-' = not reached; {setting}.")
    fig1(series, run_models, timings, outputs.figure, rule=rule, title=f"{experiment}: {setting}")
    print(quality.to_string(), efficiency.to_string(), sep="\n\n")
    if not claim_text:
        return []
    return main_claims(series, sets, efficiency, normalised_costs(series, run_models, timings), f"{experiment}; {setting}",
                       rule.text())


def write_sample_grid(series: pd.DataFrame, sample_paths: Sequence[str | Path], grid_size: int,
                      png_path: str | Path) -> None:
    best = best_point(series)
    samples = load_samples(sample_paths[int(best["point"]) - 1])
    run = str(best["run"])
    title = (f"{run_label(run)}, best-FID point {int(best['point'])} "
             f"(steps {best['steps']}), FID {best['fid']:.2f}")
    sample_grid_figure(samples["images"][: grid_size**2], grid_size, png_path, title)


def write_convergence_study(series: list[pd.DataFrame], models: list[str], baseline_loss: pd.DataFrame,
                            expert_losses: list[pd.DataFrame], rule: ConvergenceRule, plan: dict,
                            reallocated: pd.DataFrame, baseline_timing: pd.DataFrame, outputs,
                            experiment: str) -> list[ClaimResult]:
    """outputs: fig2_/fig3a_ png and pdf, slowest_intervals_, reallocation_ and reallocation_summary_ csv and md.
    Returns the Fig. 3(a) claim."""
    setting = metric_setting({**{f"expert {k + 1}": df for k, df in enumerate(series)}, "reallocated": reallocated})
    curves, convergence = per_expert_curves(series, models, rule, plan.get("relative_spread"))
    rule_text = f"converged = {rule.text()}"
    fig3a(curves, convergence, outputs.fig3a_expert_convergence_png,
          title=f"{experiment}: each expert with the others fully trained; {rule_text}")
    fig2(baseline_loss, expert_losses, outputs.fig2_loss_per_interval_png, title=f"{experiment}: training loss per interval")
    slowest = slowest_intervals(convergence)
    write_table(slowest, outputs.slowest_intervals_csv, outputs.slowest_intervals_md,
                f"Eight experts ({experiment}), fastest to slowest to converge; {rule_text}; "
                f"never-converged last, nearest a plateau first; {setting}.")
    print(slowest.to_string())
    # Every expert's series ends at the same fully trained mixture: the equal-budget run.
    write_reallocation_tables(plan, reallocated, series[0], full_run_seconds(baseline_timing), outputs, experiment,
                              setting)
    return [convergence_claim(convergence, f"{experiment}; {setting}", rule.text())]
