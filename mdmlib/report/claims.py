"""The papers' claims that the pipeline tests, and the claims table: paper against this run.

A claim is data (``CLAIMS``: where it is in its paper, one line, the paper's numbers, the make
target that tests it). The study that measures it returns a ``ClaimResult`` (ours, the spread,
the verdict from ``mdmlib.report.verdicts``) and its rule writes them to a claims file
(``write_claim_results``); the ``claims_table`` rule joins every claims file that exists with
the catalogue, so a claim whose target has not run reads "not run" with the command that runs it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd

from mdmlib.core.io import atomic_write_text
from mdmlib.metrics.spread import PairedDifference, paired_difference, spread
from mdmlib.report.tables import markdown_table
from mdmlib.report.verdicts import UNDECIDED, Verdict, difference_verdict

MDM, MULTISTAGE, TDC = "MDM", "Multi-stage", "TDC"
DIFFPRUNING = "DiffPruning"
NOT_RUN = "not run"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    where: str  # table or figure
    claim: str  # one line
    paper_numbers: str
    target: str  # the make target whose run tests it


CLAIMS: tuple[Claim, ...] = (
    Claim("mdm_table3_fid", MDM, "Table 3", "ADM+MDM reaches a lower FID than ADM (best points)",
          "CIFAR-10: 12.42 (0.15) -> 11.42 (0.14)", "run"),
    Claim("mdm_table3_sfid", MDM, "Table 3", "ADM+MDM reaches a lower sFID than ADM (best points)",
          "CIFAR-10: 27.34 (0.15) -> 24.86 (0.15)", "run"),
    Claim("mdm_table2_equivalent", MDM, "Table 2, Fig. 1",
          "ADM+MDM passes ADM's best FID at less total cost than ADM's full run (NTC < 100%)",
          "baseline equivalent at 17.5% NWCT, 35.7% NTC", "run"),
    Claim("mdm_table2_converged", MDM, "Table 2", "ADM+MDM converges at a smaller NWCT than ADM",
          "converged at 23.8% against 76.0% NWCT", "run"),
    Claim("mdm_sec42_attention_split", MDM, "Sec. 4.2, Fig. 3(b)",
          "MDM on the intervals read from attention concentration beats one model at equal iterations",
          "the split (0.1T, 0.8T) from Fig. 3(b); Table 3: 11.42 against 12.42", "run"),
    Claim("mdm_table1_uniform", MDM, "Table 1", "uniform sampling of t gives ADM a lower FID than importance sampling",
          "12.42 against 18.35", "baselines"),
    Claim("mdm_table3_p2w", MDM, "Table 3", "P2W+MDM reaches a lower FID than P2W",
          "CIFAR-10: 11.14 (0.14) -> 10.61 (0.14)", "baselines"),
    Claim("mdm_table3_soft_truncation", MDM, "Table 3",
          "Soft-truncation+MDM reaches a lower FID than Soft-truncation",
          "ImageNet-32: 9.18 (0.16) -> 8.25 (0.17)", "baselines"),
    Claim("mdm_table4_hybrid", MDM, "Table 4", "MDM's tau_A expert with ADM on tau_B, tau_C beats ADM alone",
          "12.42 -> 11.04", "baselines"),
    Claim("mdm_fig3a_noisiest_slowest", MDM, "Fig. 3(a)",
          "of eight equal experts, the noisiest interval's converges last",
          "(875, 1000] at ~45K of 62.5K iterations; the others by ~35K", "convergence"),
    Claim("ms_table5_fid", MULTISTAGE, "Fig. 1(d), Table 5",
          "the multi-stage model reaches a better FID than the unified one in fewer iterations",
          "2.71 at 2.5e5 iterations (unified DPM-Solver: 2.75 in Table 9)", "multistage"),
    Claim("ms_table6_recall", MULTISTAGE, "Table 6", "the multi-stage model has a higher recall than the unified one",
          "0.615 against 0.613 (DPM-Solver); 0.629 against 0.620 (EDM)", "multistage"),
    Claim("ms_table9_stages", MULTISTAGE, "Table 9", "3 stages give the best FID among 1 to 5 stages",
          "1: 2.75, 2: 2.56, 3: 2.35, 4: 2.67, 5: 2.88", "multistage"),
    Claim("ms_table7_split", MULTISTAGE, "Table 7",
          "the architecture with the smallest shared encoder gives the best FID",
          "shared 43M: 2.35; 68M: 2.9; 98M: 3.1", "multistage"),
    Claim("tdc_table1_no_pruning", TDC, "Table I",
          "TDC without pruning (groups fine-tuned from the base model) beats original training in fewer steps",
          "IDDPM CIFAR-10: 3.52 at 280K against 4.08 at 500K", "tdc"),
    Claim("tdc_table1_pruned", TDC, "Table I",
          "TDC with proxy pruning keeps the original's FID at about 20% fewer MACs",
          "IDDPM CIFAR-10: 3.76 at 6.56G against 4.08 at 8.14G", "tdc"),
    Claim("tdc_table5_proxy", TDC, "Table V",
          "proxy pruning beats the other pruning methods and the same network trained from scratch at equal steps",
          "IDDPM CIFAR-10 at 25K steps: proxy 4.2; Diff-Pruning 4.4, magnitude 4.6, Taylor 4.7, random 4.9; "
          "scratch 89.1", "tdc"),
    Claim("tdc_table6_proxy", TDC, "Table VI", "proxy pruning gives TDC a lower FID than the other pruning methods",
          "proxy 3.76; Diff-Pruning 3.85, magnitude 3.88, Taylor 3.90, random 3.95", "tdc"),
    Claim("tdc_table2_snr_schedule", TDC, "Table II",
          "the SNR-based FLOPs schedule gives a lower FID than constant, increasing or decreasing FLOPs",
          "ours 3.76; constant 3.91, uni-increasing 3.88, uni-decreasing 4.11", "tdc-ablations"),
    Claim("tdc_table3_groups", TDC, "Table III", "more groups give a lower FID (up to 10 groups)",
          "4: 3.62, 8: 3.56, 10: 3.52, 15: 3.56, 20: 3.60", "tdc-ablations"),
    Claim("tdc_fig6_k_stable", TDC, "Fig. 6",
          "TDC performs stably across the FLOPs constraint k = 0.3 to 0.7 (here: every k's FID within "
          "tdc.k_tolerance of the FID at the config's k)", "IDDPM CIFAR-10: FID about the same at every k (Fig. 6)",
          "tdc-ablations"),
    Claim("tdc_fig3_two_stage", TDC, "Fig. 3",
          "two-stage training (base model, then groups) beats single-stage (groups from scratch) at equal steps",
          "lower FID along the whole curve (Fig. 3)", "tdc"),
    # DiffPruning's Table 1 (the paper's numbers: LDM on 256 x 256 data; it has no CIFAR-10 rows)
    Claim("dp_table1_mixture_vs_sp", DIFFPRUNING, "Table 1(d)",
          "the pruned mixture of experts beats single-model pruning (SP) at equal MACs (FID)",
          "paper, ImageNet 256, 50%: DiffPruning 8.45 at 54.32G MACs against SP 9.16 at 52.71G (SP's MACs counted "
          "otherwise, the paper says)",
          "diffpruning"),
    Claim("dp_table1_throughput", DIFFPRUNING, "Table 1(a, b)",
          "sampling throughput gains at least track the MACs savings (speed-up >= 0.8 / MACs ratio)",
          "paper, LSUN-Bedroom 70/50/30%: x1.55/x1.87/x2.35 at 0.699/0.500/0.307 of LDM's MACs (speed-up x MACs "
          "ratio 1.08/0.94/0.72); FFHQ: x1.33/x1.81/x2.87 at 0.701/0.512/0.303 (0.93/0.93/0.87)", "diffpruning"),
    Claim("dp_table1_era_budget", DIFFPRUNING, "Table 1, Eq. 14-15",
          "the Expert Routing Agent's pruned mixture meets the MACs budget (within 2 points of the baseline's MACs)",
          "paper, LSUN-Bedroom 70/50/30%: 70.84G/50.69G/31.11G of 101.32G (0.699/0.500/0.307)", "diffpruning"),
)
CLAIM_IDS = {c.id: c for c in CLAIMS}


@dataclass(frozen=True)
class ClaimResult:
    claim: str  # a CLAIMS id
    ours: str
    spread: str  # '' where the verdict reads no spread
    verdict: str  # HOLDS, FAILS, UNDECIDED
    reason: str
    setting: str  # dataset/experiment, feature network and sample counts

    def text(self) -> str:
        return f"{self.verdict} ({self.reason})"

    def __post_init__(self):
        if self.claim not in CLAIM_IDS:
            raise ValueError(f"claim {self.claim!r} is not in the catalogue {sorted(CLAIM_IDS)}")


def mean_sd(values: Sequence[float]) -> str:
    return spread(values).text(digits=4)


def paired_claim(claim: str, a: str, b: str, values: Mapping[str, Sequence[float]], setting: str,
                 lower: bool = True, confidence: float = 0.95) -> ClaimResult:
    """The claim "``a`` is lower (``lower``) or higher than ``b``", from values on the same seed sets."""
    diff = paired_difference(values[a], values[b])
    return difference_claim(claim, f"{a} {mean_sd(values[a])}, {b} {mean_sd(values[b])}", diff, setting,
                            f"{a} - {b}", lower, confidence)


def difference_claim(claim: str, ours: str, diff: PairedDifference, setting: str, name: str,
                     lower: bool = True, confidence: float = 0.95) -> ClaimResult:
    """A claim decided by one paired difference ``name`` (a - b; the claim: negative when ``lower``)."""
    verdict = difference_verdict(diff, lower, confidence)
    return ClaimResult(claim, ours, difference_spread(diff), verdict,
                       f"{name} = {diff.mean:+.3g} (se {diff.se:.2g}), {'' if diff.decided(confidence) else 'not '}"
                       f"decided at {confidence:.0%} over {diff.sets} sample sets", setting)


def difference_spread(diff: PairedDifference) -> str:
    return "" if math.isnan(diff.se) else f"paired se {diff.se:.2g} ({diff.sets} sets)"


def verdict_claim(claim: str, ours: str, verdict: Verdict, setting: str, spread_text: str = "") -> ClaimResult:
    return ClaimResult(claim, ours, spread_text, verdict.verdict, verdict.reason, setting)


def untested(claim: str, why: str, setting: str) -> ClaimResult:
    return ClaimResult(claim, "-", "", UNDECIDED, f"not tested: {why}", setting)


# ------------------------------------------------------------------------------------ files

COLUMNS = ("claim", "ours", "spread", "verdict", "reason", "setting")


def write_claim_results(path: str | Path, results: Iterable[ClaimResult]) -> None:
    rows = [asdict(r) for r in results]
    atomic_write_text(path, pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(index=False))


def read_claim_results(paths: Iterable[str | Path]) -> dict[str, ClaimResult]:
    """Every claims file's rows by claim id; a claim measured twice is refused."""
    results: dict[str, ClaimResult] = {}
    for path in paths:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
        if list(df.columns) != list(COLUMNS):
            raise ValueError(f"claims file {path}: columns {list(df.columns)}, expected {list(COLUMNS)}")
        for row in df.to_dict("records"):
            if row["claim"] in results:
                raise ValueError(f"claims file {path}: claim {row['claim']!r} already measured by another file")
            results[row["claim"]] = ClaimResult(**row)
    return results


def claims_table(results: Mapping[str, ClaimResult]) -> pd.DataFrame:
    """One row per catalogued claim, in catalogue order; claims without a result say "not run"
    and the command that runs them."""
    rows = []
    for c in CLAIMS:
        r = results.get(c.id)
        row = {"paper": c.paper, "where": c.where, "claim": c.claim, "paper's numbers": c.paper_numbers}
        if r is None:
            row |= {"ours": "-", "spread": "", "verdict": NOT_RUN, "reason": f"run `make {c.target}`", "setting": ""}
        else:
            row |= {"ours": r.ours, "spread": r.spread, "verdict": r.verdict, "reason": r.reason, "setting": r.setting}
        rows.append(row | {"target": f"make {c.target}", "id": c.id})
    return pd.DataFrame(rows)


def verdict_counts(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def write_claims_table(results: Mapping[str, ClaimResult], csv_path: str | Path, md_path: str | Path,
                       experiment: str) -> pd.DataFrame:
    table = claims_table(results)
    atomic_write_text(csv_path, table.to_csv(index=False))
    shown = table.drop(columns=["id"])
    atomic_write_text(md_path, markdown_table(
        shown, f"The papers' claims against this run ({experiment}): {verdict_counts(table)}. A verdict is "
               f"'holds' or 'does not hold' only when the difference that decides it is beyond its spread "
               f"(a paired t-test at 95% over the sample sets); otherwise 'undecided'."))
    return table

