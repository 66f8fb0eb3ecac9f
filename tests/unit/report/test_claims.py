"""The claims table: verdicts that follow the numbers, results joined with the catalogue, and
the rules behind Table 2's and Fig. 3(a)'s claims."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mdmlib.metrics.spread import PairedDifference
from mdmlib.report.claims import (
    CLAIMS,
    NOT_RUN,
    ClaimResult,
    claims_table,
    paired_claim,
    read_claim_results,
    write_claim_results,
    write_claims_table,
)
from mdmlib.report.verdicts import (
    FAILS,
    HOLDS,
    UNDECIDED,
    reached_within_verdict,
    sooner_verdict,
)
from mdmlib.studies.convergence import noisiest_last_verdict
from mdmlib.studies.main import main_claims

BASE = [0.50, 0.62, 0.55, 0.71, 0.58]
NOISE = [0.03, -0.02, 0.01, -0.03, 0.02]  # set-to-set wobble of the paired difference (mean 0.002)


def shifted(shift: float) -> list[float]:
    return [b + shift + n for b, n in zip(BASE, NOISE)]


@pytest.mark.parametrize("shift, verdict", [(-0.2, HOLDS), (0.0, UNDECIDED), (0.2, FAILS)])
def test_a_claims_verdict_follows_the_numbers_on_both_sides_and_within_the_spread(shift, verdict):
    result = paired_claim("mdm_table3_fid", "mdm", "baseline", {"mdm": shifted(shift), "baseline": BASE}, "test")
    assert result.verdict == verdict
    assert "paired se" in result.spread and "(5 sets)" in result.spread
    assert ("not decided" in result.reason) == (verdict == UNDECIDED)


def test_a_higher_is_better_claim_turns_the_other_way():
    values = {"multi-stage": shifted(0.2), "unified": BASE}
    assert paired_claim("ms_table6_recall", "multi-stage", "unified", values, "test", lower=False).verdict == HOLDS
    assert paired_claim("ms_table6_recall", "unified", "multi-stage", values, "test", lower=False).verdict == FAILS


def test_the_table_lists_every_catalogued_claim_and_names_the_command_of_those_not_run(tmp_path):
    measured = paired_claim("mdm_table3_fid", "mdm", "baseline", {"mdm": shifted(-0.2), "baseline": BASE}, "digits")
    path = tmp_path / "claims" / "paper_tables.csv"
    write_claim_results(path, [measured])
    table = claims_table(read_claim_results([path]))
    assert list(table["id"]) == [c.id for c in CLAIMS]
    row = table.set_index("id").loc["mdm_table3_fid"]
    assert row["verdict"] == HOLDS and row["paper's numbers"].startswith("CIFAR-10: 12.42")
    not_run = table[table["verdict"] == NOT_RUN]
    assert len(not_run) == len(CLAIMS) - 1
    assert (not_run["reason"] == [f"run `make {t.removeprefix('make ')}`" for t in not_run["target"]]).all()
    assert set(not_run["target"]) >= {"make baselines", "make convergence", "make multistage"}


def test_the_markdown_counts_the_verdicts(tmp_path):
    results = {"mdm_table3_fid": ClaimResult("mdm_table3_fid", "x", "", FAILS, "r", "s")}
    write_claims_table(results, tmp_path / "c.csv", tmp_path / "c.md", "digits/default")
    first = (tmp_path / "c.md").read_text().splitlines()[0]
    assert f"1 {FAILS}" in first and f"{len(CLAIMS) - 1} {NOT_RUN}" in first
    assert len(pd.read_csv(tmp_path / "c.csv")) == len(CLAIMS)


def test_unknown_claims_and_claims_measured_twice_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not in the catalogue"):
        ClaimResult("mdm_table99", "", "", HOLDS, "", "")
    one = ClaimResult("mdm_table3_fid", "x", "", HOLDS, "r", "s")
    write_claim_results(tmp_path / "a.csv", [one])
    write_claim_results(tmp_path / "b.csv", [one])
    with pytest.raises(ValueError, match="already measured"):
        read_claim_results([tmp_path / "a.csv", tmp_path / "b.csv"])
    (tmp_path / "bad.csv").write_text("claim,ours\nmdm_table3_fid,1\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_claim_results([tmp_path / "bad.csv"])


def diff(mean: float, se: float = 0.01) -> PairedDifference:
    return PairedDifference(mean, se, 5)


def test_table2s_claim_holds_below_the_cost_limit_and_fails_only_if_every_point_there_is_worse():
    assert reached_within_verdict([(30.0, diff(0.3)), (60.0, diff(-0.1))], 100).verdict == HOLDS
    # the crossing comes only after the baseline's full cost
    assert reached_within_verdict([(30.0, diff(0.3)), (60.0, diff(0.2)), (104.0, diff(-0.1))], 100).verdict == FAILS
    # a point below the limit within the spread of the target: not decided either way
    verdict = reached_within_verdict([(30.0, diff(0.3)), (73.0, diff(-0.01, 0.05)), (104.0, diff(-0.1))], 100)
    assert verdict.verdict == UNDECIDED and "73" in verdict.reason


def test_converging_sooner_needs_a_run_that_converges():
    assert sooner_verdict("mdm", 24.0, "adm", 76.0).verdict == HOLDS
    assert sooner_verdict("mdm", 80.0, "adm", 76.0).verdict == FAILS
    assert sooner_verdict("mdm", 50.0, "adm", None).verdict == HOLDS
    assert sooner_verdict("mdm", None, "adm", 51.0).verdict == FAILS
    assert sooner_verdict("mdm", None, "adm", None).verdict == UNDECIDED


def convergence(at: list[float | None]) -> pd.DataFrame:
    his = [125 * (k + 1) for k in range(len(at))]
    return pd.DataFrame({"expert": range(1, len(at) + 1), "interval": [f"({h - 125},{h}]" for h in his],
                         "hi": his, "budget": 100, "converged_at": [math.nan if a is None else a for a in at],
                         "final_change": 0.1, "best_fid": 1.0})


def test_the_noisiest_interval_converging_last_is_read_from_the_convergence_steps():
    assert noisiest_last_verdict(convergence([40, 30, 30, 90])).verdict == HOLDS
    assert noisiest_last_verdict(convergence([40, None, 30, 90])).verdict == FAILS
    assert noisiest_last_verdict(convergence([40, 30, 30, None])).verdict == HOLDS
    assert noisiest_last_verdict(convergence([None, 30, 30, None])).verdict == UNDECIDED
    assert noisiest_last_verdict(convergence([90, 30, 30, 90])).verdict == UNDECIDED


def main_run_frames(mdm_shift: float):
    """Three points; MDM's sets at each point shifted from the baseline's best (point 3)."""
    sets, series = {}, {}
    for run, shift in (("baseline", 0.0), ("mdm", mdm_shift)):
        rows = [{"point": p, "seed_set": s, "fid": BASE[s] + (3 - p) * 0.5 + (shift if run == "mdm" else 0)
                 + (NOISE[s] if run == "mdm" else 0), "sfid": BASE[s] * 2 + (shift if run == "mdm" else 0)}
                for p in (1, 2, 3) for s in range(5)]
        sets[run] = pd.DataFrame(rows)
        series[run] = sets[run].groupby("point", as_index=False)[["fid", "sfid"]].mean()
    costed = {run: series[run].assign(ntc=[30.0, 60.0, 90.0] if run == "mdm" else [33.0, 66.0, 100.0])
              for run in series}
    efficiency = pd.DataFrame([
        {"method": "ADM", "NWCT converged (%)": 66.0, "NWCT baseline equivalent (%)": math.nan,
         "NTC baseline equivalent (%)": math.nan},
        {"method": "ADM+MDM", "NWCT converged (%)": math.nan, "NWCT baseline equivalent (%)": 30.0,
         "NTC baseline equivalent (%)": 90.0}])
    return series, sets, efficiency, costed


@pytest.mark.parametrize("shift, verdict", [(-0.3, HOLDS), (0.0, UNDECIDED), (0.3, FAILS)])
def test_the_main_runs_claims_follow_mdms_numbers(shift, verdict):
    results = {r.claim: r for r in main_claims(*main_run_frames(shift), "digits", "change < 1 sd")}
    assert results["mdm_table3_fid"].verdict == verdict
    assert results["mdm_table2_equivalent"].verdict == verdict  # point 3 (90% NTC) decides it
    assert results["mdm_table2_converged"].verdict == FAILS  # ADM converged, MDM did not
    assert results["mdm_table2_converged"].spread == "rule: change < 1 sd"
