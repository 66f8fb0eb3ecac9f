"""Claims decided on paired sample sets: holds, does not hold, or undecided within the spread."""
from __future__ import annotations

import pytest

from mdmlib.report.verdicts import (
    FAILS,
    HOLDS,
    UNDECIDED,
    equivalent_verdict,
    less_verdict,
    lowest_verdict,
)


def test_the_claimed_lowest_holds_only_when_it_beats_the_runner_up_beyond_the_spread():
    # set by set, 3 stages is 0.10 below 2 stages with differences that barely vary: decided
    values = {"3 stages": [0.50, 0.70, 0.40], "2 stages": [0.60, 0.81, 0.49], "1 stage": [0.9, 1.1, 0.8]}
    verdict = lowest_verdict("3 stages", values)
    assert verdict.verdict == HOLDS and "against 2 stages" in verdict.reason
    # the same means, but the paired differences swing from -0.3 to +0.1: within the spread
    noisy = {"3 stages": [0.50, 0.70, 0.40], "2 stages": [0.80, 0.60, 0.50]}
    assert lowest_verdict("3 stages", noisy).verdict == UNDECIDED


def test_a_claim_fails_when_another_candidate_is_lower_beyond_the_spread():
    values = {"3 stages": [0.60, 0.81, 0.49], "2 stages": [0.50, 0.70, 0.40]}
    verdict = lowest_verdict("3 stages", values)
    assert verdict.verdict == FAILS and verdict.reason.startswith("2 stages lowest")
    assert less_verdict("2 stages", "3 stages", values).verdict == HOLDS


def test_the_verdict_turns_as_the_numbers_cross():
    base = [0.5, 0.6, 0.7, 0.55]
    verdicts = [lowest_verdict("a", {"a": base, "b": [v + shift for v in base]}).verdict
                for shift in (-0.2, -0.001, 0.001, 0.2)]
    # constant paired differences have zero se: any gap decides, so only the sign matters here
    assert verdicts == [FAILS, FAILS, HOLDS, HOLDS]


def test_one_sample_set_never_decides_and_unknown_candidates_are_refused():
    assert lowest_verdict("a", {"a": [0.4], "b": [0.5]}).verdict == UNDECIDED
    with pytest.raises(ValueError, match="at least one other"):
        lowest_verdict("a", {"a": [0.4]})


def test_an_equivalence_claim_needs_every_interval_inside_the_tolerance():
    from mdmlib.metrics.spread import PairedDifference

    steady = {"k = 0.3": PairedDifference(0.01, 0.002, 5), "k = 0.7": PairedDifference(-0.02, 0.003, 5)}
    assert equivalent_verdict(steady, tolerance=0.05).verdict == HOLDS
    # one k decided 0.2 above: beyond a 0.05 tolerance at 95%
    moved = steady | {"k = 0.4": PairedDifference(0.2, 0.01, 5)}
    verdict = equivalent_verdict(moved, tolerance=0.05)
    assert verdict.verdict == FAILS and "k = 0.4" in verdict.reason
    # a small mean whose interval reaches past the tolerance (few sets, wide spread), or one set
    assert equivalent_verdict({"k = 0.3": PairedDifference(0.01, 0.05, 5)}, 0.05).verdict == UNDECIDED
    assert equivalent_verdict({"k = 0.3": PairedDifference(0.0, float("nan"), 1)}, 0.05).verdict == UNDECIDED
    with pytest.raises(ValueError, match="positive tolerance"):
        equivalent_verdict(steady, 0)
