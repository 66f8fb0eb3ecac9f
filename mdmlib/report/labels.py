"""The one table of display labels: runs and interval methods as the tables and figures name them."""
from __future__ import annotations

RUN_LABELS = {"baseline": "ADM", "mdm": "ADM+MDM",  # the main runs (`make run`); the baseline study's:
              "base_adm": "ADM", "mdm_adm": "ADM+MDM", "base_p2w": "P2W", "mdm_p2w": "P2W+MDM",
              "base_soft_truncation": "Soft-trunc", "mdm_soft_truncation": "Soft-trunc+MDM",
              "base_importance": "ADM, importance-sampled t", "hybrid": "MDM expert on tau_A + ADM elsewhere",
              # the multi-stage comparison's (its unified model is the baseline):
              "separate": "separate U-Net per stage", "multistage": "multi-stage (shared encoder)"}
METHOD_LABELS = {"paper": "paper (fixed)", "attention": "attention concentration (MDM)",
                 "gradient": "gradient alignment (DiffPruning)", "optimal_denoiser": "optimal denoiser (multi-stage)",
                 "snr": "SNR grouping (TDC)", "uniform": "uniform"}


def run_label(run: str) -> str:
    if run.startswith("swap_"):
        return f"ADM+MDM, expert {run.removeprefix('swap_')} served by ADM"
    return RUN_LABELS.get(run, run)


def method_label(method: str) -> str:
    """An interval method's label; a plug-in method is named by its registry name."""
    return METHOD_LABELS.get(method, method)
