"""Which expert holds the mixture back (`make run`): MDM with one expert's interval served by the
baseline instead, paired over sample sets, and each expert's held-out epsilon loss on its
interval against the baseline's.

The swap runs (``swap_k``, ``mdmlib.studies.runs``) are sampled on the same seed sets as MDM's
last point, so the change in FID is read set by set. The held-out loss is the epsilon MSE on
the validation images with timesteps and noise drawn once per bin from a fixed seed, the same
draws for every model; the baseline's snapshots give its loss as it trained, so an expert's loss
can be read as "the baseline's after this many steps".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.report.figures import plt, save_figure
from mdmlib.report.tables import write_spread_table
from mdmlib.studies.main import paired_to
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint

BINS_PER_EXPERT = 4  # held-out loss bins within each expert's interval


def loss_bins(intervals: Sequence[Interval], per_interval: int = BINS_PER_EXPERT) -> list[tuple[int, Interval]]:
    """(expert index, bin) pairs: each interval cut into ``per_interval`` near-equal bins of indices."""
    bins = []
    for k, interval in enumerate(intervals):
        edges = np.linspace(interval.lo, interval.hi, min(per_interval, interval.size) + 1).round().astype(int)
        bins += [(k, Interval(int(a), int(b))) for a, b in zip(edges, edges[1:]) if b > a]
    return bins


@torch.no_grad()
def heldout_losses(models: Mapping[str, torch.nn.Module], schedule: NoiseSchedule, images: torch.Tensor,
                   bins: Sequence[Interval], seed: int, batch_size: int = 500) -> pd.DataFrame:
    """Mean epsilon MSE of each model in each bin: timesteps uniform in the bin's indices [lo, hi)
    and Gaussian noise, drawn from ``seed`` and the bin alone (``bin_draws``), so every model,
    and every call, sees the same draws in a bin. Columns: model, lo, hi, loss."""
    draws = [bin_draws(b, images.shape, seed) for b in bins]
    rows = []
    for name, model in models.items():
        model.eval()
        for b, (t, noise) in zip(bins, draws):
            losses = [epsilon_loss_per_sample(model, schedule, images[i:i + batch_size], t[i:i + batch_size],
                                              noise[i:i + batch_size]) for i in range(0, len(images), batch_size)]
            rows.append({"model": name, "lo": b.lo, "hi": b.hi, "loss": float(torch.cat(losses).mean())})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class HeldoutLosses:
    losses: pd.DataFrame  # model, lo, hi, loss: each expert on its own bins, the baseline's snapshots on all
    intervals: list[Interval]  # the experts', clean to noisy
    expert_names: list[str]
    expert_iterations: list[int]
    baseline_steps: dict[str, int]  # '<name>@<step>' of each baseline snapshot -> its step

    @property
    def baseline_final(self) -> str:
        return max(self.baseline_steps, key=self.baseline_steps.get)


def expert_and_baseline_losses(expert_paths: Sequence[str | Path], baseline_paths: Sequence[str | Path],
                               schedule: NoiseSchedule, images: torch.Tensor, seed: int,
                               device: torch.device | str = "cpu") -> HeldoutLosses:
    """Held-out losses of MDM's experts, each on its own interval's bins, and of every baseline
    snapshot on all of them (the curve an expert's loss is read against)."""
    experts = [load_checkpoint(p) for p in expert_paths]
    intervals = [Interval(*c["interval"]) for c in experts]
    bins = loss_bins(intervals)
    frames = [heldout_losses({c["name"]: model_from_checkpoint(c).to(device)}, schedule, images,
                             [b for owner, b in bins if owner == k], seed) for k, c in enumerate(experts)]
    baseline_steps = {}
    for path in baseline_paths:
        ckpt = load_checkpoint(path)
        name = f"{ckpt['name']}@{ckpt['step']}"
        baseline_steps[name] = int(ckpt["step"])
        frames.append(heldout_losses({name: model_from_checkpoint(ckpt).to(device)}, schedule, images,
                                     [b for _, b in bins], seed))
    return HeldoutLosses(pd.concat(frames, ignore_index=True), intervals, [c["name"] for c in experts],
                         [int(c["iterations"]) for c in experts], baseline_steps)


def bin_draws(bin: Interval, shape: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The timesteps and noise of one bin, from a generator seeded by ``seed`` and the bin's edges."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + bin.lo * 1009 + bin.hi)
    return torch.randint(bin.lo, bin.hi, (shape[0],), generator=generator), torch.randn(shape, generator=generator)


def equivalent_steps(loss: float, steps: Sequence[int], baseline_losses: Sequence[float]) -> float:
    """The baseline's training steps at which its held-out loss on the interval equals ``loss``,
    interpolated between its snapshots (in log steps); NaN outside the snapshots' range."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(baseline_losses, dtype=float)
    order = np.argsort(values)  # falling loss with steps: interpolate on the loss axis
    if not values.min() <= loss <= values.max():
        return float("nan")
    return float(np.exp(np.interp(loss, values[order], np.log(steps[order]))))


def swap_table(intervals: Sequence[Interval], budgets: Sequence[int], mdm_sets: pd.DataFrame, mdm_point: int,
               swap_sets: Mapping[int, pd.DataFrame], swap_point: int, losses: pd.DataFrame,
               baseline_steps: Mapping[str, int], expert_names: Sequence[str], baseline_final: str) -> pd.DataFrame:
    """One row per expert: the paired change of FID and sFID when the baseline serves its
    interval (negative: the baseline does better there), and the held-out loss on its interval of
    the expert, the trained baseline, and the baseline steps that match the expert's loss."""
    rows = []
    for k, interval in enumerate(intervals):
        row = {"expert": k + 1, "interval": interval.label(), "iterations": int(budgets[k])}
        for metric, label in (("fid", "FID"), ("sfid", "sFID")):
            diff = paired_to(swap_sets[k + 1], swap_point, mdm_sets, mdm_point, metric)
            row[f"{label} change"], row[f"{label} change se"] = diff.mean, diff.se
            if label == "FID":
                row["decided"] = diff.decided()
        inside = losses[(losses["lo"] >= interval.lo) & (losses["hi"] <= interval.hi)]
        mean_loss = inside.groupby("model")["loss"].mean()
        row["held-out loss, expert"] = float(mean_loss[expert_names[k]])
        row["held-out loss, baseline"] = float(mean_loss[baseline_final])
        snapshots = sorted(baseline_steps.items(), key=lambda kv: kv[1])
        row["baseline steps at the expert's loss"] = equivalent_steps(
            row["held-out loss, expert"], [s for _, s in snapshots], [mean_loss[n] for n, _ in snapshots])
        rows.append(row)
    return pd.DataFrame(rows)


def swap_verdict(table: pd.DataFrame) -> str:
    """Which experts the baseline beats on their own interval, decided set by set."""
    held_back = table[(table["FID change"] < 0) & table["decided"]]
    if held_back.empty:
        return "no expert is replaced by the baseline with a decided FID gain"
    return "the baseline on " + ", ".join(
        f"expert {int(r['expert'])}'s {r['interval']} ({int(r['iterations'])} iterations) lowers FID by "
        f"{-r['FID change']:.3g} (se {r['FID change se']:.2g})" for _, r in held_back.iterrows())


def swap_figure(table: pd.DataFrame, losses: pd.DataFrame, expert_names: Sequence[str], baseline_final: str,
                png_path: str | Path, title: str = "") -> None:
    """Left: held-out loss per timestep bin, each expert on its interval against the trained
    baseline. Right: the FID change when the baseline serves each expert's interval (2 se bars)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    base = losses[losses["model"] == baseline_final].sort_values("lo")
    left.plot((base["lo"] + base["hi"]) / 2, base["loss"], "k--o", ms=3, label="ADM (trained)")
    for k, name in enumerate(expert_names):
        mine = losses[losses["model"] == name].sort_values("lo")  # its own interval's bins
        left.plot((mine["lo"] + mine["hi"]) / 2, mine["loss"], "o-", ms=3, color=f"C{k}", label=f"expert {k + 1}")
    left.set_yscale("log")
    left.set_xlabel("timestep index")
    left.set_ylabel("held-out epsilon MSE")
    left.legend(fontsize=8)
    left.grid(alpha=0.3, which="both")
    right.bar(table["expert"], table["FID change"], yerr=2 * table["FID change se"].fillna(0),
              color=[f"C{k}" for k in range(len(table))], capsize=4)
    right.axhline(0, color="k", lw=0.8)
    right.set_xticks(table["expert"], [f"{int(e)}: {i}" for e, i in zip(table["expert"], table["interval"])])
    right.set_ylabel("FID change when ADM serves it (2 se)")
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, png_path)


def write_swap_study(table: pd.DataFrame, losses: pd.DataFrame, expert_names: Sequence[str], baseline_final: str,
                     outputs, experiment: str, setting: str) -> str:
    """outputs has table_csv/_md and figure_png (the PDF goes beside it); returns the verdict."""
    verdict = swap_verdict(table)
    write_spread_table(table, outputs.table_csv, outputs.table_md,
                       f"Which expert holds MDM back ({experiment}): MDM's final mixture with one expert's interval "
                       f"served by the trained baseline instead, minus MDM, set by set over the same sample sets, "
                       f"mean (se) (negative: the baseline does better there; decided = a paired t-test at 95%); held-out "
                       f"epsilon MSE on the validation images in {BINS_PER_EXPERT} bins per interval (fixed timesteps "
                       f"and noise), and the baseline's training steps whose loss matches the expert's, between its "
                       f"snapshots; {verdict}; {setting}.",
                       pairs={"FID change": "FID change se", "sFID change": "sFID change se"})
    swap_figure(table, losses, expert_names, baseline_final, outputs.figure_png, title=f"{experiment}: {setting}")
    print(table.to_string(), verdict, sep="\n\n")
    return verdict
