"""DiffPruning's comparison (`make diffpruning`): Table 1 (the baseline, then per MACs budget the
single-model pruning baseline SP and the pruned mixture of experts), the experts the Expert Routing
Agent (ERA) chose, its MACs split and its training curve.

MACs per sampling step average each run's models' forward MACs over the DDIM trajectory (TDC's
``run_sizes``); throughput is measured on this machine (``mdmlib.sampling.throughput``). Every run
is scored at its final point on the same seed sets, so DP - SP is read set by set
(``mdmlib.report.verdicts``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from mdmlib.core.intervals import Interval
from mdmlib.metrics.spread import paired_difference, spread
from mdmlib.report.claims import ClaimResult, mean_sd, untested, verdict_claim
from mdmlib.report.figures import plt, save_figure
from mdmlib.report.tables import SPREAD_LABELS, write_spread_table, write_table
from mdmlib.report.verdicts import FAILS, HOLDS, UNDECIDED, Verdict, difference_verdict
from mdmlib.studies.diffpruning_runs import MIXTURE, SINGLE, run_budget
from mdmlib.studies.main import shared_set_values
from mdmlib.studies.tdc import ORIGINAL, per_run, run_sizes

EQUAL_MACS = 1.05  # claim (a) compares at equal MACs: the mixture's may exceed SP's by at most 5%
TRACKING = 0.8  # claim (b): speed-up at least 0.8 of 1 / MACs ratio
BUDGET_POINTS = 0.02  # claim (c): the agent's MACs ratio within 2 points (of the baseline's MACs) of the budget
PAIRED = ("fid", "sfid")  # Table 1's DP - SP differences


@dataclass(frozen=True)
class Measurements:
    ends: Mapping[str, pd.DataFrame]  # run -> its final point's rows, one per seed set
    sizes: Mapping[str, dict]  # run -> run_sizes' trajectory MACs and parameters per model
    throughput: dict  # run_throughputs' result: {"runs": {run: ...}, "machine": {...}}
    agents: Mapping[int, dict]  # budget (per mille) -> the agent's architecture JSON
    curves: Mapping[int, pd.DataFrame]  # budget -> the agent's training curve
    seconds: Mapping[str, float]  # model -> measured training seconds (its fine-tune)
    units: tuple[list[int], list[int], int]  # the baseline's groups per ResBlock, heads per attention, depth layers
    run_models: Mapping[str, Sequence[str]]
    single_method: str = "taylor"  # SP's importance


def mixture_run(budget: int) -> str:
    return f"{MIXTURE}{budget}"


def single_run(budget: int) -> str:
    return f"{SINGLE}{budget}"


def percent(budget: int) -> str:
    return f"{budget / 10:g}%"


def run_label(run: str, single_method: str = "taylor") -> str:
    if run == ORIGINAL:
        return "baseline (unpruned)"
    if run.startswith(MIXTURE):
        return f"DiffPruning ({percent(run_budget(run))})"
    if run.startswith(SINGLE):
        return f"SP, {single_method} ({percent(run_budget(run))})"
    return run


def end_rows(sets: pd.DataFrame) -> pd.DataFrame:
    """A run's rows at its final evaluation point, in seed-set order."""
    return sets[sets["point"] == sets["point"].max()].sort_values("seed_set").reset_index(drop=True)


def unit_totals(spec: dict) -> tuple[list[int], list[int], int]:
    """Norm groups per ResBlock, heads per attention layer (the agent's order) and depth layers of
    an unpruned U-Net spec, built on the meta device."""
    import torch

    from mdmlib.models.elastic import width_layers
    from mdmlib.models.registry import build_model
    from mdmlib.models.unet import depth_layers

    with torch.device("meta"):
        model = build_model(spec)
    blocks, attentions = width_layers(model)
    return [b.out_norm.num_groups for b in blocks], [a.num_heads for a in attentions], len(depth_layers(model))


def macs_ratio(m: Measurements, run: str) -> float:
    return m.sizes[run]["trajectory_macs"] / m.sizes[ORIGINAL]["trajectory_macs"]


def speed_up(m: Measurements, run: str) -> float:
    runs = m.throughput["runs"]
    return runs[run]["images_per_second"] / runs[ORIGINAL]["images_per_second"]


def round_speed_ups(m: Measurements, run: str) -> str:
    """The speed-up in each timing round (runs are timed in turn within a round, so a round's
    machine speed is shared): 'min-max' over rounds, how much one machine's timings move."""
    runs = m.throughput["runs"]
    ups = np.array(runs[ORIGINAL]["all_seconds"]) / np.array(runs[run]["all_seconds"])
    return f"{ups.min():.2f}-{ups.max():.2f}"


def parameters_text(parameters: Sequence[float]) -> str:
    if len(parameters) == 1:
        return f"{parameters[0] / 1e6:.3g}"
    return " / ".join(f"{p / 1e6:.3g}" for p in parameters) + f" (mean {np.mean(parameters) / 1e6:.3g})"


def table1_runs(budgets: Sequence[int], ends: Mapping[str, pd.DataFrame]) -> list[str]:
    return [ORIGINAL, *(r for b in budgets for r in (single_run(b), mixture_run(b)) if r in ends)]


def table1(m: Measurements, budgets: Sequence[int]) -> pd.DataFrame:
    """One row per run: size, MACs, throughput and speed-up, metrics mean and sd over seed sets at
    the final point, and for the mixture the paired DP - SP difference with its standard error."""
    rows = []
    for run in table1_runs(budgets, m.ends):
        budget = run_budget(run) if run != ORIGINAL else None
        ratio, up = macs_ratio(m, run), speed_up(m, run)
        row = {"method": run_label(run, m.single_method), "budget": math.nan if budget is None else budget / 1000,
               "parameters (M)": parameters_text(m.sizes[run]["parameters"]),
               "mean parameters (M)": m.sizes[run]["mean_parameters"] / 1e6,
               "MACs per step (M)": m.sizes[run]["trajectory_macs"] / 1e6, "MACs / baseline": ratio,
               "images/s": m.throughput["runs"][run]["images_per_second"], "speed-up": up,
               "speed-up per round": round_speed_ups(m, run), "speed-up / (1 / MACs ratio)": up * ratio}
        for metric, label in SPREAD_LABELS.items():
            s = spread(m.ends[run][metric])
            row[label], row[f"{label} sd"] = s.mean, s.sd
        row["sample sets"] = len(m.ends[run])
        for metric in PAIRED:
            label = f"{SPREAD_LABELS[metric]} DP - SP"
            row[label] = row[f"{label} se"] = math.nan
            if run.startswith(MIXTURE) and single_run(budget) in m.ends:
                diff = paired(m.ends, run, single_run(budget), metric)
                row[label], row[f"{label} se"] = diff.mean, diff.se
        rows.append(row)
    return pd.DataFrame(rows)


def paired(ends: Mapping[str, pd.DataFrame], a: str, b: str, metric: str):
    values = shared_set_values({a: ends[a], b: ends[b]}, metric)
    return paired_difference(values[a], values[b])


def expert_rows(m: Measurements, budgets: Sequence[int]) -> pd.DataFrame:
    """Per budget per expert: the agent's choice (kept shares of norm groups and heads, depth
    layers), its MACs, and the fine-tuned checkpoint's MACs, parameters and fine-tune seconds."""
    groups, heads, depth = m.units
    rows = []
    for b in budgets:
        run, agent = mixture_run(b), m.agents[b]
        experts = sorted(agent["experts"], key=lambda e: e["interval"][0])
        if len(experts) != len(m.run_models[run]):
            raise ValueError(f"budget {b}: the agent chose {len(experts)} experts, {run} has {len(m.run_models[run])}")
        for k, (expert, model) in enumerate(zip(experts, m.run_models[run])):
            lo, hi = expert["interval"]
            rows.append({"budget": b / 1000, "expert": k, "model": model, "interval": f"({lo}, {hi}]",
                         "groups kept": sum(expert["groups"]) / sum(groups),
                         "heads kept": sum(expert["heads"]) / sum(heads) if heads else math.nan,
                         "depth layers kept": f"{sum(map(bool, expert['depth']))} / {depth}",
                         "MACs (M)": expert["macs"] / 1e6, "MACs / baseline": expert["macs_ratio"],
                         "checkpoint MACs (M)": m.sizes[run]["macs"][k] / 1e6,
                         "parameters (M)": m.sizes[run]["parameters"][k] / 1e6,
                         "fine-tune seconds": m.seconds.get(model, math.nan),
                         # the agent's own step against the experts' passes (Alg. 1; the same per budget)
                         "agent seconds": agent["agent_seconds"], "agent share of its training": agent["agent_share"]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ claims


def combined(claim: str, ours: list[str], verdicts: list[Verdict], setting: str, spread_text: str = "") -> ClaimResult:
    """One claim over the budgets: holds when it holds at every budget, does not hold when it
    fails at any, else undecided; the reasons per budget."""
    kinds = {v.verdict for v in verdicts}
    verdict = FAILS if FAILS in kinds else HOLDS if kinds == {HOLDS} else UNDECIDED
    return verdict_claim(claim, "; ".join(ours), Verdict(verdict, "; ".join(v.reason for v in verdicts)), setting,
                         spread_text)


def mixture_claim(m: Measurements, budgets: Sequence[int], setting: str) -> ClaimResult:
    """(a) the pruned mixture beats SP at equal MACs: FID lower on paired seed sets, per budget;
    a budget whose mixture has more than 5% more trajectory MACs than SP is not tested."""
    claim, ours, verdicts, spreads, skipped = "dp_table1_mixture_vs_sp", [], [], [], []
    for b in budgets:
        dp, sp = mixture_run(b), single_run(b)
        if dp not in m.ends or sp not in m.ends:
            continue
        ratio = m.sizes[dp]["trajectory_macs"] / m.sizes[sp]["trajectory_macs"]
        if ratio > EQUAL_MACS:
            skipped.append(f"{percent(b)}: the mixture's MACs per step are {ratio:.3f} x SP's (> {EQUAL_MACS})")
            continue
        fid, sfid = paired(m.ends, dp, sp, "fid"), paired(m.ends, dp, sp, "sfid")
        ours.append(f"{percent(b)}: DP {mean_sd(m.ends[dp]['fid'])} against SP {mean_sd(m.ends[sp]['fid'])} "
                    f"at {ratio:.3f} x SP's MACs")
        verdicts.append(Verdict(difference_verdict(fid), f"{percent(b)}: FID DP - SP = {fid.mean:+.3g} "
                                f"(se {fid.se:.2g}, {fid.sets} sets), sFID {sfid.mean:+.3g} (se {sfid.se:.2g})"))
        spreads.append(f"{percent(b)}: paired se {fid.se:.2g}")
    if not verdicts:
        return untested(claim, "; ".join(skipped) or "no budget has both runs", setting)
    verdicts += [Verdict(UNDECIDED, f"not tested at {s}") for s in skipped]
    return combined(claim, ours, verdicts, setting, "; ".join(spreads))


def throughput_claim(m: Measurements, budgets: Sequence[int], setting: str) -> ClaimResult:
    """(b) throughput gains at least track MACs savings: speed-up x MACs ratio >= TRACKING."""
    ours, verdicts = [], []
    for b in (b for b in budgets if mixture_run(b) in m.ends):
        run = mixture_run(b)
        ratio, up = macs_ratio(m, run), speed_up(m, run)
        ours.append(f"{percent(b)}: x{up:.2f} at {ratio:.3f} of the MACs")
        verdicts.append(Verdict(HOLDS if up * ratio >= TRACKING else FAILS,
                                f"{percent(b)}: speed-up / (1 / MACs ratio) = {up * ratio:.2f} "
                                f"({'>=' if up * ratio >= TRACKING else '<'} {TRACKING})"))
    if not verdicts:
        return untested("dp_table1_throughput", "no mixture run", setting)
    return combined("dp_table1_throughput", ours, verdicts, setting)


def budget_claim(m: Measurements, budgets: Sequence[int], setting: str) -> ClaimResult:
    """(c) the agent meets the budget: its hard mixture MACs ratio (Eq. 14) within BUDGET_POINTS."""
    ours, verdicts = [], []
    for b in budgets:
        ratio = float(m.agents[b]["macs_ratio"])
        trajectory = f", DDIM trajectory {macs_ratio(m, mixture_run(b)):.3f}" if mixture_run(b) in m.sizes else ""
        ours.append(f"{percent(b)}: {ratio:.3f}{trajectory}")
        off = ratio - b / 1000
        met = abs(off) <= BUDGET_POINTS
        verdicts.append(Verdict(HOLDS if met else FAILS, f"{percent(b)}: {off:+.3f} from the budget "
                                                         f"({'within' if met else 'beyond'} {BUDGET_POINTS})"))
    return combined("dp_table1_era_budget", ours, verdicts, setting)


def throughput_setting(throughput: dict) -> str:
    """'<device>, N torch threads, batch B, DDIM S steps, fastest of R': what the speed-ups hold for."""
    machine, timed = throughput["machine"], next(iter(throughput["runs"].values()))
    return (f"throughput on {machine.get('device_name', machine['device'])}, {machine['torch_threads']} torch "
            f"threads, batch {timed['batch']}, DDIM {timed['steps']} steps, fastest of {timed['repeats']}")


def diffpruning_claims(m: Measurements, budgets: Sequence[int], experiment: str, setting: str) -> list[ClaimResult]:
    return [mixture_claim(m, budgets, f"{experiment}; {setting}"),
            throughput_claim(m, budgets, f"{experiment}; {throughput_setting(m.throughput)}"),
            budget_claim(m, budgets, experiment)]


# ------------------------------------------------------------------------------------ figures


def macs_split_figure(agents: Mapping[int, dict], budgets: Sequence[int], png_path: str | Path, title: str) -> None:
    """Per budget a bar per expert (its MACs / the baseline's), the budget and the mixture's ratio."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(budgets) + 2), 3.8))
    ticks = []
    for i, b in enumerate(budgets):
        experts = sorted(agents[b]["experts"], key=lambda e: e["interval"][0])
        xs = i * (len(experts) + 1) + np.arange(len(experts))
        for k, (x, e) in enumerate(zip(xs, experts)):
            label = f"({e['interval'][0]}, {e['interval'][1]}]" if i == 0 else None
            ax.bar(x, e["macs_ratio"], color=f"C{k}", label=label)
        ax.hlines(b / 1000, xs[0] - 0.45, xs[-1] + 0.45, colors="k", linestyles="--",
                  label="budget" if i == 0 else None)
        ax.hlines(agents[b]["macs_ratio"], xs[0] - 0.45, xs[-1] + 0.45, colors="0.5", linestyles=":",
                  label="mixture (Eq. 14)" if i == 0 else None)
        ticks.append((xs.mean(), percent(b)))
    ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_xlabel("MACs budget")
    ax.set_ylabel("expert MACs / baseline")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    save_figure(fig, png_path)


def agent_curve_figure(curves: Mapping[int, pd.DataFrame], png_path: str | Path, title: str) -> None:
    """The agent's loss term, MACs term and hard MACs ratio per iteration, a line per budget."""
    panels = [("loss_term", "loss term (mean interval loss)"), ("macs_term", "MACs term R(T, T_d)"),
              ("hard_macs_ratio", "hard MACs / baseline")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6))
    for i, (b, df) in enumerate(curves.items()):
        for ax, (column, _) in zip(axes, panels):
            ax.plot(df["iteration"], df[column], color=f"C{i}", label=percent(b))
        axes[-1].axhline(b / 1000, color=f"C{i}", linestyle="--", linewidth=0.8)
    for ax, (_, label) in zip(axes, panels):
        ax.set_xlabel("agent iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="budget")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, png_path)


# ------------------------------------------------------------------------------------ files


def write_diffpruning_study(m: Measurements, budgets: Sequence[int], outputs, experiment: str,
                            setting: str) -> list[ClaimResult]:
    """``outputs``: table1/experts _csv/_md, macs_split/agent_curve _png/_pdf (the PDF beside the PNG)."""
    claims = diffpruning_claims(m, budgets, experiment, setting)
    verdicts = {c.claim: c.text() for c in claims}
    table = table1(m, budgets)
    write_spread_table(table, outputs.table1_csv, outputs.table1_md,
                       f"DiffPruning Table 1 form ({experiment}): parameters (per expert for the mixture), MACs per "
                       f"sampling step averaged over the DDIM trajectory and their ratio to the baseline's, "
                       f"sampling {throughput_setting(m.throughput)} and the speed-up over the "
                       f"baseline, which tracks "
                       f"the MACs saving when speed-up / (1 / MACs ratio) is near 1; metrics mean (sd) over the seed "
                       f"sets at each run's final point, and the mixture's paired difference to SP at its budget "
                       f"(se). Mixture beats SP at equal MACs: {verdicts['dp_table1_mixture_vs_sp']}; throughput "
                       f"tracks MACs: {verdicts['dp_table1_throughput']}; {setting}.",
                       pairs={f"{SPREAD_LABELS[x]} DP - SP": f"{SPREAD_LABELS[x]} DP - SP se" for x in PAIRED})
    experts = expert_rows(m, budgets)
    write_table(experts, outputs.experts_csv, outputs.experts_md,
                f"DiffPruning's pruned experts ({experiment}): per budget, each expert's sub-network as the Expert "
                f"Routing Agent chose it (share of the baseline's norm groups and attention heads kept, depth "
                f"layers kept), its MACs by the agent's formula and counted on the fine-tuned checkpoint, "
                f"parameters and fine-tune seconds; the agent's own seconds and their share of its training "
                f"(the rest: the frozen experts' passes). Agent meets the budget: {verdicts['dp_table1_era_budget']}.")
    macs_split_figure(m.agents, budgets, outputs.macs_split_png, f"{experiment}: MACs per expert at each budget")
    agent_curve_figure({b: m.curves[b] for b in budgets}, outputs.agent_curve_png,
                       f"{experiment}: Expert Routing Agent training (Eq. 15)")
    print(table.to_string(), experts.to_string(), *verdicts.values(), sep="\n\n")
    return claims


def read_and_write_diffpruning_study(inputs, runs: Sequence[str], run_models: Mapping[str, Sequence[str]],
                                     budgets: Sequence[int], cfg, outputs, experiment: str) -> list[ClaimResult]:
    """The rule's files in, the tables, figures and claims out. ``inputs``: sets (per run, in ``runs``
    order), checkpoints (flat, per run's models), agents and curves (per budget, in ``budgets``
    order), throughput, timings (flat, per model of every run but the baseline)."""
    from mdmlib.report.writers import metric_setting
    from mdmlib.sampling.ddim import ddim_timesteps
    from mdmlib.studies.convergence import full_run_seconds
    from mdmlib.training.checkpoint import load_checkpoint
    from mdmlib.training.job import train_job

    ends = {run: end_rows(pd.read_csv(p)) for run, p in zip(runs, inputs.sets)}
    checkpoints = per_run(list(inputs.checkpoints), runs, run_models)
    intervals = {run: [train_job(m, cfg).interval for m in run_models[run]] for run in runs}  # as named
    totals = unit_totals(load_checkpoint(checkpoints[ORIGINAL][0])["model_spec"])
    sizes = run_sizes(checkpoints, intervals, ddim_timesteps(cfg.diffusion.timesteps, cfg.sampling.steps))
    agents = {b: json.loads(Path(p).read_text()) for b, p in zip(budgets, inputs.agents)}
    for b, agent in agents.items():
        if round(agent["budget"] * 1000) != b:
            raise ValueError(f"the agent file for budget {b} per mille holds budget {agent['budget']}")
        chosen = sorted((Interval(*e["interval"]) for e in agent["experts"]), key=lambda i: i.lo)
        if mixture_run(b) in intervals and chosen != sorted(intervals[mixture_run(b)], key=lambda i: i.lo):
            raise ValueError(f"budget {b}: the agent's experts serve {chosen}, {mixture_run(b)}'s checkpoints "
                             f"{intervals[mixture_run(b)]}")
    trained = [model for run in runs if run != ORIGINAL for model in run_models[run]]
    if len(trained) != len(inputs.timings):
        raise ValueError(f"{len(inputs.timings)} timing files for {len(trained)} models")
    m = Measurements(ends=ends, sizes=sizes, throughput=json.loads(Path(inputs.throughput).read_text()),
                     agents=agents, curves={b: pd.read_csv(p) for b, p in zip(budgets, inputs.curves)},
                     seconds={model: full_run_seconds(pd.read_csv(p)) for model, p in zip(trained, inputs.timings)},
                     units=totals, run_models=run_models, single_method=cfg.diffpruning.single_model_pruning)
    return write_diffpruning_study(m, budgets, outputs, experiment, metric_setting(ends))
