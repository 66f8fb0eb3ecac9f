"""The MDM paper's convergence study from the pipeline's measured data (Sec. 3, 4.1, 5.2).

Pure functions over the frames the pipeline writes:

- evaluation series (``metrics/<run>.csv``): one row per point; ``steps`` holds the step of
  every checkpoint the point routed between, space-separated, in the order of the run's models;
- timing logs (``models/<model>/timing.csv``): ``step`` and cumulative ``elapsed_seconds``;
- loss logs (``models/<model>/loss.csv``): mean epsilon-MSE per timestep bin per logged step.

Costs come from the timing logs, never from a formula: an expert's cost at a step is its
measured seconds up to that step. The figures are in ``convergence_figures``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from mdmlib.core.intervals import Interval, expert_budgets
from mdmlib.intervals.fixed import paper_intervals
from mdmlib.report.claims import ClaimResult, verdict_claim
from mdmlib.report.labels import run_label
from mdmlib.report.verdicts import FAILS, HOLDS, UNDECIDED, Verdict
from mdmlib.studies.convergence_rule import (
    ConvergenceRule,
    convergence_index,
    fid_sds,
    reallocate_budgets,
    why_not_converged,
)
from mdmlib.training.job import parse_model_name

EIGHT_EXPERT_FRACTIONS = tuple(k / 8 for k in range(1, 8))  # MDM Sec. 4.1: tau_i = (125(i-1), 125i] at T=1000


def eight_expert_boundaries(timesteps: int) -> list[Interval]:
    """The eight intervals of MDM Sec. 4.1, (125(i-1), 125i] scaled to T, clean to noisy.

    Cut with ``paper_intervals``, so the rounding matches the pipeline's own split.
    """
    if timesteps < 8:
        raise ValueError(f"T={timesteps} cannot hold eight non-empty intervals")
    return paper_intervals(EIGHT_EXPERT_FRACTIONS, timesteps).intervals


def parse_model(name: str) -> tuple[Interval, int]:
    """'t125-250_i2000' -> (Interval(125, 250), 2000)."""
    interval, iterations, _ = parse_model_name(name)
    return interval, iterations


def int_column(values) -> pd.Series:
    """Integers with NaN for 'never': object dtype keeps them integers in CSV and Markdown
    (``tables.markdown_table`` writes NaN as '-')."""
    return pd.Series([math.nan if v is None or pd.isna(v) else int(v) for v in values], dtype=object)


def point_steps(series: pd.DataFrame) -> np.ndarray:
    """The ``steps`` column as an int array, points x checkpoints (one checkpoint reads as an int)."""
    rows = [[int(s) for s in str(v).split()] for v in series["steps"]]
    if len({len(r) for r in rows}) > 1:
        raise ValueError("evaluation points route between different numbers of checkpoints")
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), -1)


# ------------------------------------------------------------------ per-expert convergence (Fig. 3(a))


def final_change(fids: Sequence[float], rule: ConvergenceRule) -> float:
    """Largest FID change over the last ``rule.consecutive`` adjacent pairs: how far a curve's
    end is from the plateau the rule asks for (0 for a single point)."""
    changes = np.abs(np.diff(np.asarray(fids, dtype=float)))
    return float(changes[-rule.consecutive:].max()) if len(changes) else 0.0


def per_expert_curves(series: Sequence[pd.DataFrame], models: Sequence[str],
                      rule: ConvergenceRule = ConvergenceRule(),
                      relative_spread: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each expert's FID curve with the others fully trained, and where each converges.

    ``models`` are the experts clean to noisy; ``series[k]`` is the evaluation series of
    expert k's curve: its ``steps`` column lists every expert's step in ``models`` order,
    entry k varying over expert k's snapshots and every other entry at that expert's budget.

    Returns ``(curves, convergence)``. ``curves``: expert (1-based, the paper's i), model,
    interval, lo, hi, budget, point, iteration, fid, sfid, precision, recall. ``convergence``:
    one row per expert with converged_point / converged_at (the point and the expert's step
    where ``rule`` first holds; NaN when it never does), best_fid, final_fid and final_change.
    A rule in sd reads each series' own sd, else ``relative_spread`` x FID (``fid_sds``).
    """
    if len(series) != len(models):
        raise ValueError(f"{len(series)} evaluation series for {len(models)} experts")
    parsed = [parse_model(m) for m in models]
    budgets = np.array([b for _, b in parsed])
    curves, summary = [], []
    for k, (df, model, (interval, budget)) in enumerate(zip(series, models, parsed)):
        steps = point_steps(df)
        if steps.shape[1] != len(models):
            raise ValueError(f"{model}: its series routes {steps.shape[1]} checkpoints, not {len(models)}")
        others = np.delete(steps, k, axis=1)
        if (others != np.delete(budgets, k)).any():
            raise ValueError(f"{model}: the other experts are not all at their final step in its series")
        df = df.sort_values("point")
        iteration = point_steps(df)[:, k]
        fids = df["fid"].to_numpy(dtype=float)
        curves.append(pd.DataFrame({
            "expert": k + 1, "model": model, "interval": interval.label(), "lo": interval.lo, "hi": interval.hi,
            "budget": budget, "point": df["point"].to_numpy(), "iteration": iteration, "fid": fids,
            **{c: df[c].to_numpy() for c in ("sfid", "precision", "recall") if c in df},
        }))
        index = convergence_index(fids, rule, fid_sds(df, relative_spread, rule))
        summary.append({
            "expert": k + 1, "model": model, "interval": interval.label(), "lo": interval.lo, "hi": interval.hi,
            "budget": budget,
            "converged_point": None if index is None else int(df["point"].iloc[index]),
            "converged_at": None if index is None else int(iteration[index]),
            "best_fid": float(fids.min()), "final_fid": float(fids[-1]), "final_change": final_change(fids, rule),
        })
    convergence = pd.DataFrame(summary)
    for column in ("converged_point", "converged_at"):
        convergence[column] = int_column(convergence[column])
    return pd.concat(curves, ignore_index=True), convergence


def slowest_intervals(convergence: pd.DataFrame) -> pd.DataFrame:
    """Intervals from fastest to slowest: by the step they converged at, then the ones that
    never converged, closest to a plateau first (smaller ``final_change``).

    Every expert's curve ends at the same fully trained mixture, so the final FID itself
    cannot rank them; how much it still moves at the end can. ``rank`` 1 is the fastest,
    so the last rows are the slowest intervals.
    """
    never = convergence["converged_at"].isna()
    ordered = pd.concat([
        convergence[~never].sort_values(["converged_at", "expert"], kind="stable"),
        convergence[never].sort_values(["final_change", "expert"], kind="stable"),
    ])
    table = ordered[["expert", "interval", "budget", "converged_at", "final_change", "best_fid"]].copy()
    table["converged_at_fraction"] = table["converged_at"].astype(float) / table["budget"]
    table["converged_at"] = int_column(table["converged_at"]).to_numpy()
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def noisiest_last_verdict(convergence: pd.DataFrame) -> Verdict:
    """MDM Fig. 3(a): the noisiest interval's expert converges last (``convergence`` as
    ``per_expert_curves`` gives it). Never converging counts as later than any step; when the
    noisiest and another expert both never converge the order is not decided."""
    noisiest = convergence.loc[convergence["hi"].idxmax()]
    others = convergence.drop(index=noisiest.name)
    at = noisiest["converged_at"]
    never = others[others["converged_at"].isna()]
    if pd.isna(at):
        if len(never):
            return Verdict(UNDECIDED, f"{noisiest['interval']} and {len(never)} other(s) never converged")
        return Verdict(HOLDS, f"{noisiest['interval']} never converged, all others did")
    later = others[others["converged_at"].isna() | (others["converged_at"].astype(float) > float(at))]
    if len(later):
        return Verdict(FAILS, f"{noisiest['interval']} converged at {int(at)}, before {', '.join(later['interval'])}")
    ties = others[others["converged_at"].astype(float) == float(at)]
    if len(ties):
        return Verdict(UNDECIDED, f"{noisiest['interval']} converged at {int(at)}, as {', '.join(ties['interval'])}")
    return Verdict(HOLDS, f"{noisiest['interval']} converged last, at {int(at)}")


def convergence_claim(convergence: pd.DataFrame, setting: str, rule_text: str) -> ClaimResult:
    ranked = slowest_intervals(convergence)
    def where(row):
        at = "never" if pd.isna(row["converged_at"]) else f"at {int(row['converged_at'])}/{int(row['budget'])}"
        return f"{row['interval']} {at}"
    ours = "slowest first: " + ", ".join(where(r) for _, r in ranked.iloc[::-1].head(3).iterrows())
    return verdict_claim("mdm_fig3a_noisiest_slowest", ours, noisiest_last_verdict(convergence), setting,
                         f"rule: {rule_text}")


# ------------------------------------------------------------------------------ budget reallocation


def reallocation_record(intervals: Sequence[Interval], timesteps: int, baseline_iterations: int,
                        converged_at: Sequence[int | None]) -> pd.DataFrame:
    """Planned, reallocated and used budgets per expert (MDM Sec. 3).

    planned: I_e = |tau_e|/T x I_baseline (``expert_budgets``). converged_at: the expert's
    step at its convergence point, None when it never converged. reallocated:
    ``reallocate_budgets`` (converged experts stop there, the freed iterations go to the
    others, the sum stays I_baseline unless every expert converged). actually_ran: what the
    re-run trains, each converged expert stopped at its convergence step, the others to
    their reallocated budgets (the pipeline fills it from the re-run's checkpoints).
    """
    if len(intervals) != len(converged_at):
        raise ValueError(f"{len(intervals)} intervals for {len(converged_at)} convergence points")
    planned = expert_budgets(intervals, timesteps, baseline_iterations)
    converged = [None if c is None or pd.isna(c) else int(c) for c in converged_at]
    reallocated = reallocate_budgets(planned, converged)
    ran = [budget if c is None else c for c, budget in zip(converged, reallocated)]
    return pd.DataFrame({
        "expert": range(1, len(intervals) + 1), "interval": [i.label() for i in intervals],
        "planned": planned, "converged_at": int_column(converged), "reallocated": reallocated, "actually_ran": ran,
    })


# ----------------------------------------------------------------------- efficiency (Table 2, Fig. 1)


def seconds_at_step(timing: pd.DataFrame, step: int) -> float:
    """Measured training seconds up to ``step``: the cumulative ``elapsed_seconds`` of the
    timing log, linear within a logged interval (snapshots can fall between log steps)."""
    steps = timing["step"].to_numpy(dtype=float)
    elapsed = timing["elapsed_seconds"].to_numpy(dtype=float)
    if len(steps) == 0 or (np.diff(steps) <= 0).any() or (np.diff(elapsed) < 0).any():
        raise ValueError("timing log is empty or its steps / elapsed seconds do not increase")
    if not 0 <= step <= steps[-1]:
        raise ValueError(f"step {step} outside the logged run (0, {int(steps[-1])}]")
    return float(np.interp(step, np.r_[0.0, steps], np.r_[0.0, elapsed]))


def full_run_seconds(timing: pd.DataFrame) -> float:
    return seconds_at_step(timing, int(timing["step"].iloc[-1]))


def measured_span_seconds(timings: Sequence[pd.DataFrame]) -> float:
    """Wall clock from the first model's start to the last one's end, as the models really ran
    (side by side or not, restarts included); NaN for logs written before timestamps."""
    if not all("wall_clock" in t.columns and t["wall_clock"].notna().all() for t in timings):
        return math.nan
    starts = [t["wall_clock"].iloc[0] - t["interval_seconds"].iloc[0] for t in timings]
    return float(max(t["wall_clock"].iloc[-1] for t in timings) - min(starts))


def normalised_costs(series: Mapping[str, pd.DataFrame], run_models: Mapping[str, Sequence[str]],
                     timings: Mapping[str, pd.DataFrame], baseline: str = "baseline") -> dict[str, pd.DataFrame]:
    """Each run's series with ``wct_timed`` / ``tc_timed`` (seconds) and ``nwct`` / ``ntc`` (%).

    ``run_models[run]`` names the checkpoints of ``series[run]``'s ``steps`` column in order;
    ``timings[model]`` is that model's timing log. The experts train in parallel: WCT at a
    point is the longest expert's seconds up to its step, TC their sum. 100% is the baseline's
    full measured run (single model, so WCT = TC).
    """
    base_models = run_models[baseline]
    if len(base_models) != 1:
        raise ValueError(f"the baseline run {baseline!r} routes {len(base_models)} models, not one")
    reference = full_run_seconds(timings[base_models[0]])
    if not reference > 0:
        raise ValueError(f"the baseline's measured training time must be positive, got {reference}")
    out = {}
    for run, df in series.items():
        models = run_models[run]
        steps = point_steps(df)
        if steps.shape[1] != len(models):
            raise ValueError(f"run {run!r}: {steps.shape[1]} checkpoints per point for {len(models)} models")
        seconds = np.array([[seconds_at_step(timings[m], s) for m, s in zip(models, row)] for row in steps])
        df = df.assign(wct_timed=seconds.max(axis=1), tc_timed=seconds.sum(axis=1))
        out[run] = df.assign(nwct=100.0 * df["wct_timed"] / reference, ntc=100.0 * df["tc_timed"] / reference)
    return out


def key_points(df: pd.DataFrame, rule: ConvergenceRule, beat_fid: float | None,
               relative_spread: float | None = None) -> dict[str, int | None]:
    """Row positions of Table 2's points (``df`` sorted by point): converged, best score (first
    lowest FID) and the first point strictly below ``beat_fid`` (None: not applicable or never
    reached). A rule in sd reads the series' own sd, else ``relative_spread`` x FID."""
    fids = df["fid"].to_numpy(dtype=float)
    below = np.flatnonzero(fids < beat_fid) if beat_fid is not None else []
    sds = fid_sds(df, relative_spread, rule)
    return {"converged": convergence_index(fids, rule, sds), "best score": int(np.argmin(fids)),
            "baseline equivalent": int(below[0]) if len(below) else None}


def table2(series: Mapping[str, pd.DataFrame], run_models: Mapping[str, Sequence[str]],
           timings: Mapping[str, pd.DataFrame], rule: ConvergenceRule = ConvergenceRule(),
           baseline: str = "baseline", measured_wall_seconds: Mapping[str, float] | None = None,
           relative_spread: float | None = None) -> pd.DataFrame:
    """MDM Table 2: NWCT and NTC (%) at the converged, best-score and baseline-equivalent points.

    Inputs as ``normalised_costs``. Baseline equivalent: the first point whose FID is below
    the baseline's best (not applicable to the baseline itself). ``measured_wall_seconds[run]``,
    when given, is the wall clock of the run's whole training measured with its experts really
    running side by side; it is reported as a percentage next to the ideal end-of-run NWCT
    (the longest expert). NaN: not reached / not applicable.
    """
    costed = normalised_costs(series, run_models, timings, baseline)
    reference = full_run_seconds(timings[run_models[baseline][0]])
    baseline_best = float(costed[baseline]["fid"].min())
    measured = measured_wall_seconds or {}
    rows = []
    for run, df in costed.items():
        df = df.sort_values("point")
        points = key_points(df, rule, None if run == baseline else baseline_best, relative_spread)
        row = {"method": run_label(run)}
        for cost, label in (("nwct", "NWCT"), ("ntc", "NTC")):
            for name, i in points.items():
                row[f"{label} {name} (%)"] = math.nan if i is None else float(df[cost].iloc[i])
        row["NWCT end of run, ideal (%)"] = float(df["nwct"].iloc[-1])
        row["NWCT end of run, measured side by side (%)"] = (
            100.0 * measured[run] / reference if run in measured else math.nan)
        row["NTC end of run (%)"] = float(df["ntc"].iloc[-1])
        for name, i in points.items():
            row[f"{name} point"] = None if i is None else int(df["point"].iloc[i])
        row["best FID"] = float(df["fid"].min())
        row["not converged because"] = ("" if points["converged"] is not None else
                                        why_not_converged(df["fid"].to_numpy(dtype=float), rule,
                                                          fid_sds(df, relative_spread, rule)))
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in ("converged", "best score", "baseline equivalent"):
        table[f"{name} point"] = int_column(table[f"{name} point"])
    return table


# ------------------------------------------------------------------------------- losses (Fig. 2)


def block_average(steps: Sequence[float], values: Sequence[float], window: int = 5) -> pd.DataFrame:
    """Mean, min and max of each run of ``window`` adjacent points (MDM Fig. 2's smoothing);
    the step is the block's mean step, and a shorter last block is kept."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    frame = pd.DataFrame({"step": np.asarray(steps, dtype=float), "value": np.asarray(values, dtype=float)})
    blocks = frame.groupby(np.arange(len(frame)) // window)
    return pd.DataFrame({"step": blocks["step"].mean(), "mean": blocks["value"].mean(),
                         "min": blocks["value"].min(), "max": blocks["value"].max()}).reset_index(drop=True)


def loss_curves(baseline_loss: pd.DataFrame, expert_losses: Sequence[pd.DataFrame],
                window: int = 5) -> pd.DataFrame:
    """Fig. 2's data: per loss bin, the baseline's curve and the curve of the expert that owns
    the bin (its own logged loss in that bin), each block-averaged.

    Columns: source ('baseline' | 'experts'), model, bin (1-based), t_lo, t_hi, step, mean, min, max.
    A bin's expert is the one that logged most of its samples: with experts aligned to the
    bins (the 8-expert study at T divisible by 8) that is the only one; otherwise rounding can
    leave a neighbour a few stray timesteps in the bin, which should not draw its curve.
    """
    experts = pd.concat(expert_losses, ignore_index=True)
    bins = baseline_loss[["t_lo", "t_hi"]].drop_duplicates().sort_values("t_lo").itertuples(index=False)
    parts = []
    for b, (lo, hi) in enumerate(bins, start=1):
        for source, frame in (("baseline", baseline_loss), ("experts", experts)):
            rows = frame[(frame["t_lo"] == lo) & (frame["t_hi"] == hi)]
            if rows.empty:
                raise ValueError(f"loss bin [{lo}, {hi}) is logged by no {source} model")
            owner = rows.groupby("model")["count"].sum().idxmax()
            rows = rows[rows["model"] == owner].sort_values("step")
            curve = block_average(rows["step"], rows["loss"], window)
            parts.append(curve.assign(source=source, model=owner, bin=b, t_lo=lo, t_hi=hi))
    columns = ["source", "model", "bin", "t_lo", "t_hi", "step", "mean", "min", "max"]
    return pd.concat(parts, ignore_index=True)[columns]
