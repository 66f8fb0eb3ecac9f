"""The multi-stage paper's ablations (`make multistage`): the number of stages (Table 9 form) and
the split of parameters between the shared encoder and the decoders (Table 7 form).

Every model trains for ``multistage.ablation_iterations`` steps and is scored at its end on
``sampling.seed_sets`` disjoint sample sets, the same sets for all, so the verdicts compare
them set by set (``mdmlib.report.verdicts``). Parameters and MACs are counted per stage as the
paper does: a stage is the shared encoder with its decoder; a model's total MACs are the
stages' averaged over the sampler's network evaluations.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch

from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.multi_decoder import MultiDecoderUNet, nfe_weighted_macs, stage_costs
from mdmlib.report.claims import ClaimResult, mean_sd, untested, verdict_claim
from mdmlib.report.tables import SPREAD_LABELS, write_spread_table
from mdmlib.report.verdicts import lowest_verdict
from mdmlib.report.writers import metric_setting
from mdmlib.studies.main import shared_set_values


def part_rows(model: torch.nn.Module, timesteps: int, sampling_timesteps: Sequence[int]) -> list[dict]:
    """One row per stage ('k/n': its interval as fractions of T, parameters and forward MACs of the
    encoder with its decoder), 'shared' (the encoder) and 'total' (all parameters; MACs averaged
    over ``sampling_timesteps``). A plain U-Net is one stage over all timesteps."""
    sample = torch.zeros(1, model.in_channels, model.resolution, model.resolution)
    if not isinstance(model, MultiDecoderUNet):
        params, macs = count_parameters(model), forward_macs(model, sample, torch.zeros(1, dtype=torch.long))
        return [{"stage": "1/1", "interval": "[0, 1]", "parameters": params, "macs": macs},
                {"stage": "total", "interval": "", "parameters": params, "macs": macs}]
    costs = stage_costs(model, sample)
    edges = [0, *model.stage_uppers.tolist(), timesteps]
    n = model.stages
    rows = [{"stage": f"{r['stage']}/{n}", "interval": f"[{edges[r['stage'] - 1] / timesteps:.3g}, "
                                                       f"{edges[r['stage']] / timesteps:.3g})",
             "parameters": r["parameters"], "macs": r["macs"]} for r in costs if r["part"].startswith("stage")]
    rows.append({"stage": "shared", "interval": "", "parameters": costs[0]["parameters"], "macs": costs[0]["macs"]})
    rows.append({"stage": "total", "interval": "", "parameters": count_parameters(model),
                 "macs": nfe_weighted_macs(model, costs, sampling_timesteps)})
    return rows


def metric_cells(spread: pd.DataFrame) -> dict:
    """Mean and sd over the sample sets of each metric (one row per set)."""
    cells = {"sample sets": len(spread)}
    for column, label in SPREAD_LABELS.items():
        cells[label] = float(spread[column].mean())
        cells[f"{label} sd"] = float(spread[column].std(ddof=1)) if len(spread) > 1 else float("nan")
    return cells


def ablation_table(key: str, rows: Mapping[str, tuple[list[dict], pd.DataFrame]]) -> pd.DataFrame:
    """``rows``: label -> (``part_rows`` of its model, its seed-set scores). Metrics go on the
    'total' row of each label, as the paper prints FID once per architecture."""
    table = []
    for label, (parts, spread) in rows.items():
        for part in parts:
            row = {key: label, "stage": part["stage"], "interval": part["interval"],
                   "parameters (M)": part["parameters"] / 1e6, "MACs (M)": part["macs"] / 1e6}
            if part["stage"] == "total":
                row |= metric_cells(spread)
            table.append(row)
    return pd.DataFrame(table)


def write_ablation_tables(stage_runs: Mapping[int, str], split_runs: Sequence[str], main_stages: int,
                          main_split: int | None, parts: Mapping[str, list[dict]], spreads: Mapping[str, pd.DataFrame],
                          budget: int, outputs, experiment: str) -> dict[str, str]:
    """Table 9 form (``stage_runs``: stage count -> run) and Table 7 form (``split_runs``: one run
    per split, ``main_split`` the index of the main architecture). ``outputs`` has table9/table7
    _csv/_md. Returns the Table 9 and Table 7 claims."""
    setting = metric_setting(dict(spreads))
    sets = {len(s) for s in spreads.values()}
    common = (f"{budget} iterations each, scored at the end on {sets.pop() if len(sets) == 1 else sets} disjoint "
              f"sample sets (mean, sd); {setting}")
    verdicts, claims = {}, []
    table9 = ablation_table("stages", {str(n): (parts[run], spreads[run]) for n, run in stage_runs.items()})
    fids = shared_set_values({f"{n} stage{'s' * (n > 1)}": spreads[run] for n, run in stage_runs.items()}, "fid")
    claim = f"{main_stages} stage{'s' * (main_stages > 1)}"
    claims.append(lowest_claim("ms_table9_stages", claim, fids, f"{experiment}; {setting}",
                               f"stage_counts lacks {main_stages} or an alternative"))
    verdicts["table9"] = claims[-1].text()
    write_spread_table(table9, outputs.table9_csv, outputs.table9_md,
                f"Table 9 form ({experiment}): the number of stages, each on the interval method's split for that "
                f"count (1 stage: the unified model); {common}. Paper's claim (its 3 stages best; here the main "
                f"model's {main_stages}): {verdicts['table9']}.")
    table7 = ablation_table("split", {str(k + 1): (parts[run], spreads[run]) for k, run in enumerate(split_runs)})
    fids = shared_set_values({f"split {k + 1}": spreads[run] for k, run in enumerate(split_runs)}, "fid")
    claim = None if main_split is None else f"split {main_split + 1}"
    claims.append(lowest_claim("ms_table7_split", claim, fids, f"{experiment}; {setting}",
                               "fewer than two splits, or none is the main architecture"))
    verdicts["table7"] = claims[-1].text()
    write_spread_table(table7, outputs.table7_csv, outputs.table7_md,
                f"Table 7 form ({experiment}): encoder/decoder splits of about equal total parameters, the shared "
                f"share small to large; {common}. Paper's claim (its chosen architecture, a small shared share, "
                f"best; here the main architecture, split {'-' if main_split is None else main_split + 1}): "
                f"{verdicts['table7']}.")
    print(table9.to_string(), table7.to_string(), verdicts, sep="\n\n")
    return claims


def lowest_claim(claim_id: str, claimed: str | None, fids: Mapping[str, Sequence[float]], setting: str,
                 untested_why: str) -> ClaimResult:
    """The claim "``claimed`` has the lowest FID" among ``fids`` (values per shared seed set)."""
    if claimed not in fids or len(fids) < 2:
        return untested(claim_id, untested_why, setting)
    ours = ", ".join(f"{k}: {mean_sd(v)}" for k, v in fids.items())
    sets = len(next(iter(fids.values())))
    return verdict_claim(claim_id, ours, lowest_verdict(claimed, fids), setting, f"paired over {sets} sets")
