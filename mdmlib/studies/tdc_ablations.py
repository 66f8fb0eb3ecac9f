"""TDC's ablations (`make tdc-ablations`): Table II (FLOPs schedules: the SNR schedule against
constant, uniformly increasing and uniformly decreasing FLOPs at the same mean), Table III
(TDC without pruning on different numbers of groups) and Fig. 6 (the FLOPs constraint k). Every
run is compared at its end (equal fine-tune steps per group) on the same disjoint sample sets,
paired."""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import pandas as pd

from mdmlib.metrics.spread import paired_difference, spread
from mdmlib.report.claims import ClaimResult, mean_sd, paired_claim, verdict_claim
from mdmlib.report.figures import plt, save_figure
from mdmlib.report.tables import write_table
from mdmlib.report.verdicts import equivalent_verdict, lowest_verdict
from mdmlib.studies.main import shared_set_values
from mdmlib.studies.tdc_runs import K_REFERENCE_RUN, k_runs

SCHEDULE_LABELS = {"snr": "SNR (Eq. 4)", "constant": "constant", "increasing": "uniformly increasing",
                   "decreasing": "uniformly decreasing"}


def ablation_rows(runs: Sequence[str], label: Mapping[str, str], reference: str, sets: Mapping[str, pd.DataFrame],
                  sizes: Mapping[str, dict], steps: Mapping[str, int], full_macs: float) -> pd.DataFrame:
    """One row per run: FID mean (sd) over the shared sample sets and the paired difference to
    ``reference``, the group limits, MACs per sampling step, mean parameters, train steps."""
    fids = shared_set_values({r: sets[r] for r in runs}, "fid")
    rows = []
    for run in runs:
        diff = paired_difference(fids[run], fids[reference]) if run != reference else None
        rows.append({"run": label[run], "groups": len(sizes[run]["macs"]),
                     "group MACs / F": " ".join(f"{m / full_macs:.3f}" for m in sizes[run]["macs"]),
                     "MACs per step / F": sizes[run]["trajectory_macs"] / full_macs,
                     "parameters per model (M)": sizes[run]["mean_parameters"] / 1e6, "train steps": steps[run],
                     "FID": spread(fids[run]).text(digits=4),
                     f"FID - {label[reference]}": "" if diff is None else f"{diff.mean:+.3g} ({diff.se:.2g})"})
    return pd.DataFrame(rows)


def ablation_claims(schedule_runs: Sequence[str], group_runs: Sequence[str], label: Mapping[str, str],
                    sets: Mapping[str, pd.DataFrame], setting: str) -> list[ClaimResult]:
    """Table II: the SNR schedule gives the lowest FID; Table III: the most groups beat the fewest."""
    claims = []
    schedules = shared_set_values({label[r]: sets[r] for r in schedule_runs}, "fid")
    ours = ", ".join(f"{name} {mean_sd(v)}" for name, v in schedules.items())
    claims.append(verdict_claim("tdc_table2_snr_schedule", ours,
                                lowest_verdict(label[schedule_runs[0]], schedules), setting))
    if len(group_runs) > 1:
        fewest, most = group_runs[0], group_runs[-1]
        values = shared_set_values({label[most]: sets[most], label[fewest]: sets[fewest]}, "fid")
        claims.append(paired_claim("tdc_table3_groups", label[most], label[fewest], values, setting))
    return claims


def k_claim(k_of: Mapping[str, float], reference: str, sets: Mapping[str, pd.DataFrame], tolerance: float,
            setting: str) -> ClaimResult:
    """Fig. 6: TDC is stable across k: every k's FID within ``tolerance`` x the reference k's FID
    (paired over the sample sets; an equivalence claim, so few sets leave it undecided)."""
    fids = shared_set_values({r: sets[r] for r in k_of}, "fid")
    diffs = {f"k = {k:g}": paired_difference(fids[r], fids[reference]) for r, k in k_of.items() if r != reference}
    ours = ", ".join(f"k = {k:g} {mean_sd(fids[r])}" for r, k in k_of.items())
    absolute = tolerance * float(spread(fids[reference]).mean)
    return verdict_claim("tdc_fig6_k_stable", ours, equivalent_verdict(diffs, absolute), setting)


def k_figure(rows: pd.DataFrame, k_of: Mapping[str, float], fids: Mapping[str, Sequence[float]], png_path,
             title: str) -> None:
    """Fig. 6 form: FID (mean and sd over sample sets) against MACs per step / F, a point per k."""
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    macs = dict(zip(rows["run"], rows["MACs per step / F"]))
    for run, k in k_of.items():
        s = spread(fids[run])
        x = macs[f"k = {k:g}"]
        ax.errorbar(x, s.mean, yerr=0 if pd.isna(s.sd) else s.sd, fmt="o", color="C0", capsize=3)
        ax.annotate(f"k = {k:g}", (x, s.mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("MACs per sampling step / original")
    ax.set_ylabel("FID (mean, sd over sample sets)")
    ax.grid(alpha=0.3)
    ax.set_title(textwrap.fill(title, 60), fontsize=8)
    save_figure(fig, png_path)


def write_tdc_ablations(schedule_runs: Sequence[str], group_runs: Sequence[str], k_of: Mapping[str, float],
                        k_reference: str, sets: Mapping[str, pd.DataFrame], sizes: Mapping[str, dict],
                        steps: Mapping[str, int], full_macs: float, pruning: str, k_tolerance: float, outputs,
                        experiment: str, setting: str) -> list[ClaimResult]:
    """``schedule_runs`` start with the SNR schedule's; ``group_runs`` go from fewest to most groups;
    ``k_of`` ({run: k}, by increasing k) holds ``k_reference``, the run at the config's k."""
    label = {r: SCHEDULE_LABELS[r.removeprefix("tdcflops_")] for r in schedule_runs}
    label |= {r: f"{r.removeprefix('tdcgroups_')} groups" for r in group_runs}
    claims = ablation_claims(schedule_runs, group_runs, label, sets, f"{experiment}; {setting}")
    claims.append(k_claim(k_of, k_reference, sets, k_tolerance, f"{experiment}; {setting}"))
    verdicts = {c.claim: c.text() for c in claims}
    table2 = ablation_rows(schedule_runs, label, schedule_runs[0], sets, sizes, steps, full_macs)
    write_table(table2, outputs.table2_csv, outputs.table2_md,
                f"TDC Table II form ({experiment}): the groups' FLOPs limits from each schedule at the same mean "
                f"over the timesteps, each group pruned with {pruning} and fine-tuned for the same steps; FID mean "
                f"(sd) over sample sets at the end and the paired difference to the SNR schedule. The SNR schedule "
                f"best: {verdicts['tdc_table2_snr_schedule']}; {setting}.")
    table3 = ablation_rows(group_runs, label, group_runs[-1], sets, sizes, steps, full_macs)
    write_table(table3, outputs.table3_csv, outputs.table3_md,
                f"TDC Table III form ({experiment}): TDC without pruning on each number of SNR groups, every group "
                f"fine-tuned for the same steps; FID mean (sd) over sample sets at the end and the paired "
                f"difference to the most groups. Most groups beat the fewest: "
                f"{verdicts.get('tdc_table3_groups', 'not run')}; {setting}.")
    k_label = {r: f"k = {k:g}" for r, k in k_of.items()}
    table_k = ablation_rows(list(k_of), k_label, k_reference, sets, sizes, steps, full_macs)
    write_table(table_k, outputs.table_k_csv, outputs.table_k_md,
                f"TDC Fig. 6 form ({experiment}): TDC with {pruning} pruning on the same SNR groups at each FLOPs "
                f"constraint k (group limits kF + (i + 1)(1 - k)F / N), every group fine-tuned for the same steps; "
                f"FID mean (sd) over sample sets at the end and the paired difference to {k_label[k_reference]}. "
                f"Stable across k (every FID within {k_tolerance:.0%} of {k_label[k_reference]}'s): "
                f"{verdicts['tdc_fig6_k_stable']}; {setting}.")
    k_figure(table_k, k_of, shared_set_values({r: sets[r] for r in k_of}, "fid"), outputs.figure_k_png,
             f"{experiment}: FID against MACs per k; stable: {verdicts['tdc_fig6_k_stable']}")
    print(table2.to_string(), table3.to_string(), table_k.to_string(), *verdicts.values(), sep="\n\n")
    return claims


def read_and_write_tdc_ablations(inputs, runs: Sequence[str], run_models: Mapping[str, Sequence[str]], cfg,
                                 outputs, experiment: str) -> list[ClaimResult]:
    """The rule's files in (spreads and final checkpoints per run, in ``runs`` order), the tables out."""
    from mdmlib.pruning.scheme import spec_macs
    from mdmlib.report.writers import metric_setting
    from mdmlib.sampling.ddim import ddim_timesteps
    from mdmlib.studies.convergence import point_steps
    from mdmlib.studies.tdc import per_run, run_sizes
    from mdmlib.training.checkpoint import load_checkpoint
    from mdmlib.training.job import parse_tdc_name

    sets = {run: pd.read_csv(p) for run, p in zip(runs, inputs.spreads)}
    checkpoints = per_run(inputs.checkpoints, runs, run_models)
    intervals = {run: [parse_tdc_name(m)[2] for m in run_models[run]] for run in runs}
    sizes = run_sizes(checkpoints, intervals, ddim_timesteps(cfg.diffusion.timesteps, cfg.sampling.steps))
    base = parse_tdc_name(run_models[runs[0]][0])[1]
    steps = {run: int(base + point_steps(sets[run].iloc[:1]).sum()) for run in runs}
    full_macs = spec_macs(load_checkpoint(inputs.base)["model_spec"])
    schedule_runs = [r for r in runs if r.startswith("tdcflops_")]
    group_runs = sorted((r for r in runs if r.startswith("tdcgroups_")), key=lambda r: int(r.split("_")[1]))
    return write_tdc_ablations(schedule_runs, group_runs, k_runs(cfg), K_REFERENCE_RUN, sets, sizes, steps,
                               full_macs, cfg.tdc.ablation_pruning, cfg.tdc.k_tolerance, outputs, experiment,
                               metric_setting({r: df for r, df in sets.items()}))
