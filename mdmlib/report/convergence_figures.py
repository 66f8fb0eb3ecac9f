"""MDM Fig. 1, Fig. 2 and Fig. 3(a) from the convergence study's frames, each as PNG and PDF."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from mdmlib.report.figures import plt, save_figure
from mdmlib.report.labels import run_label
from mdmlib.studies.convergence import key_points, loss_curves, normalised_costs
from mdmlib.studies.convergence_rule import ConvergenceRule


def fig1(series: Mapping[str, pd.DataFrame], run_models: Mapping[str, Sequence[str]],
         timings: Mapping[str, pd.DataFrame], png_path: str | Path, rule: ConvergenceRule = ConvergenceRule(),
         baseline: str = "baseline", title: str = "") -> None:
    """FID against NWCT and NTC (inputs as ``table2``): 'o' best, dotted line its FID,
    'd' converged, 'x' end of run, as in the paper."""
    costed = normalised_costs(series, run_models, timings, baseline)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, label in zip(axes, ("nwct", "ntc"), ("NWCT (%)", "NTC (%)")):
        for i, (run, df) in enumerate(costed.items()):
            df, color = df.sort_values("point"), f"C{i}"
            x, fid = df[column].to_numpy(), df["fid"].to_numpy(dtype=float)
            points = key_points(df, rule, None)
            ax.plot(x, fid, "-", color=color, label=run_label(run))
            best = points["best score"]
            ax.plot(x[best], fid[best], "o", color=color, markersize=8)
            ax.axhline(fid[best], color=color, linestyle=":", linewidth=1)
            if points["converged"] is not None:
                ax.plot(x[points["converged"]], fid[points["converged"]], "d", color=color, markersize=8,
                        markerfacecolor="none")
            ax.plot(x[-1], fid[-1], "x", color=color, markersize=9)
        ax.set_xlabel(label)
        ax.set_yscale("log")  # early points are often an order of magnitude above the best
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("FID")
    axes[0].legend(title="o best, d converged, x end of run", fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, png_path)


def fig2(baseline_loss: pd.DataFrame, expert_losses: Sequence[pd.DataFrame], png_path: str | Path,
         window: int = 5, title: str = "") -> None:
    """Training loss per timestep bin: (a) the baseline, (b) each bin's expert; the mean of
    ``window`` adjacent logged points, min-max shaded. Log y: the cleanest bin's loss is
    many times the noisiest's."""
    curves = loss_curves(baseline_loss, expert_losses, window)  # bins [t_lo, t_hi) of indices = paper's (t_lo, t_hi]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (source, name) in zip(axes, (("baseline", "(a) baseline"), ("experts", "(b) experts"))):
        part = curves[curves["source"] == source]
        for b, c in part.groupby("bin"):
            color = plt.cm.viridis((b - 1) / max(1, curves["bin"].max() - 1))
            label = f"$\\tau_{{{b}}}$ ({c['t_lo'].iloc[0]}, {c['t_hi'].iloc[0]}]"
            ax.plot(c["step"], c["mean"], color=color, label=label)
            ax.fill_between(c["step"], c["min"], c["max"], color=color, alpha=0.25, linewidth=0)
        ax.set_title(name)
        ax.set_xlabel("iterations (each model's own)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"epsilon MSE (mean of {window} logged points)")
    axes[1].legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title)
    save_figure(fig, png_path)


def fig3a(curves: pd.DataFrame, convergence: pd.DataFrame, png_path: str | Path, title: str = "") -> None:
    """FID against the varying expert's iterations, the others fully trained (the frames of
    ``per_expert_curves``); 'd' marks each expert's convergence point."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    n = int(curves["expert"].max())
    converged_at = convergence.set_index("expert")["converged_at"]
    for e, c in curves.groupby("expert"):
        c = c.sort_values("iteration")
        color = plt.cm.viridis((e - 1) / max(1, n - 1))
        ax.plot(c["iteration"], c["fid"], "-o", color=color, markersize=3,
                label=f"$f_{{\\theta_{{{e}}}}}$ {c['interval'].iloc[0]}")
        if not pd.isna(converged_at[e]):
            at = c[c["iteration"] == int(converged_at[e])].iloc[0]
            ax.plot(at["iteration"], at["fid"], "d", color=color, markersize=9, markeredgecolor="black")
    ax.set_xlabel("iterations of the varied expert (others fully trained)")
    ax.set_ylabel("FID")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="d converged", fontsize=7, ncol=2)
    if title:
        ax.set_title(title)
    save_figure(fig, png_path)

