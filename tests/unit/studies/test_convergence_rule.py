"""The convergence rule and budget reallocation on synthetic curves with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from mdmlib.studies.convergence_rule import (
    ConvergenceRule,
    convergence_index,
    reallocate_budgets,
)


def test_a_plateau_converges_at_its_first_point():
    fids = [30.0, 20.0, 15.0, 12.0, 12.05, 12.02, 12.08, 12.01]
    assert convergence_index(fids) == 3  # |diffs| from index 3: 0.05, 0.03, 0.06 < 0.1 and 12.0 - best < 0.3


def test_a_curve_that_keeps_falling_never_converges():
    assert convergence_index(np.linspace(40, 10, 12)) is None


def test_a_flat_stretch_far_above_the_best_is_not_convergence():
    # Flat at 20 for four points, then falls to 12: the flat part is 8 above the best.
    fids = [25.0, 20.0, 20.02, 20.01, 20.03, 16.0, 12.0, 12.05, 12.04, 12.06]
    assert convergence_index(fids) == 6


def test_a_noisy_plateau_needs_three_quiet_steps_in_a_row():
    fids = [20.0, 12.0, 12.3, 12.05, 12.25, 12.1, 12.12, 12.15, 12.11]
    # diffs: 8, .3, .25, .2, .15, .02, .03, .04 -> first run of three < 0.1 starts at index 5
    assert convergence_index(fids) == 5


def test_a_plateau_whose_noise_never_settles_below_the_threshold_never_converges():
    rng = np.random.default_rng(0)
    # Alternating +-0.1 around 12 (each change 0.2 > 0.1) with small jitter: flat, but never quiet enough.
    fids = 12.0 + 0.1 * (-1.0) ** np.arange(40) + rng.uniform(-0.01, 0.01, 40)
    assert convergence_index(fids) is None
    assert convergence_index(fids, ConvergenceRule(max_change=0.3)) == 0  # a looser rule accepts it at once


def test_a_series_too_short_for_the_consecutive_changes_never_converges():
    assert convergence_index([12.0, 12.0, 12.0]) is None  # three quiet changes need four points
    assert convergence_index([12.0, 12.0, 12.0, 12.0]) == 0


def test_thresholds_are_settings():
    fids = [5.0, 3.0, 2.9, 2.85, 2.845, 2.84]
    assert convergence_index(fids, ConvergenceRule(max_change=0.01, consecutive=2, max_gap_to_best=0.05)) == 3
    assert convergence_index(fids, ConvergenceRule(max_change=0.001)) is None


def test_non_finite_fids_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        convergence_index([3.0, float("nan"), 2.0, 2.0, 2.0])


def test_reallocation_moves_freed_iterations_to_unconverged_experts_and_keeps_the_total():
    initial = [300, 2100, 600]
    new = reallocate_budgets(initial, [None, 1200, None])
    assert new[1] == 1200  # a converged expert stops at its convergence point, never more
    assert sum(new) == sum(initial)
    assert new[0] == 300 + 900 * 300 // 900 and new[2] == 600 + 900 * 600 // 900  # in proportion


def test_reallocation_with_uneven_shares_loses_nothing():
    new = reallocate_budgets([101, 203, 307], [50, None, None])
    assert sum(new) == 611 and new[0] == 50 and new[1] > 203 and new[2] > 307


def test_when_every_expert_converged_the_savings_are_kept():
    assert reallocate_budgets([300, 2100, 600], [250, 1000, 400]) == [250, 1000, 400]


def test_when_no_expert_converged_nothing_changes():
    assert reallocate_budgets([300, 2100, 600], [None, None, None]) == [300, 2100, 600]


@pytest.mark.parametrize("converged", [[0, None], [400, None]])
def test_a_convergence_step_outside_the_budget_is_refused(converged):
    with pytest.raises(ValueError, match="outside the budget"):
        reallocate_budgets([300, 300], converged)


# ------------------------------------------------ thresholds in multiples of the measured spread

NOISY_PLATEAU = [5.0, 2.0, 1.0, 0.9, 0.95, 0.92]  # a plateau from point 3, wobbling by up to 0.1
SDS = [0.5, 0.3, 0.2, 0.2, 0.2, 0.2]  # the FID's sd between sample sets at each point


def test_a_rule_in_sd_fires_on_a_plateau_whose_wobble_is_within_the_spread():
    in_sd = ConvergenceRule(max_change=1.0, consecutive=3, max_gap_to_best=2.0, in_sd=True)
    # changes 0.1, 0.05, 0.03 against limits of 1 x the mean sd of each pair (0.2); gap 0.1 < 2 x 0.2
    assert convergence_index(NOISY_PLATEAU, in_sd, SDS) == 2
    # the same wobble in FID units: 0.015 asks for far less than the noise, and never fires
    assert convergence_index(NOISY_PLATEAU, ConvergenceRule(0.015, 3, 0.04)) is None
    # a tenth of the spread: the plateau is no longer quiet enough
    assert convergence_index(NOISY_PLATEAU, in_sd, [s / 10 for s in SDS]) is None
    # the gap to the best is weighed against the point's own sd too: 0.1 above the best is more
    # than 0.4 x 0.2, and no later point has three changes after it
    assert convergence_index(NOISY_PLATEAU, ConvergenceRule(1.0, 3, 0.4, in_sd=True), SDS) is None


def test_a_rule_in_sd_needs_the_spread_and_takes_a_relative_one_for_single_set_series():
    import pandas as pd

    from mdmlib.studies.convergence_rule import fid_sds, relative_fid_spread

    with pytest.raises(ValueError, match="need the FID's sd"):
        convergence_index(NOISY_PLATEAU, ConvergenceRule(1.0, 3, 2.0, in_sd=True))
    main = pd.DataFrame({"point": [1, 2], "fid": [2.0, 1.0], "fid_sd": [0.4, 0.3]})
    assert relative_fid_spread([main]) == pytest.approx(0.25)  # median of 0.2 and 0.3
    single = pd.DataFrame({"point": [2, 1], "fid": [1.0, 4.0]})  # one set per point: no own sd
    assert fid_sds(single, 0.25).tolist() == [1.0, 0.25]  # sorted by point, 0.25 x FID
    assert fid_sds(single) is None and fid_sds(main).tolist() == [0.4, 0.3]


def test_the_config_reads_thresholds_in_sd_and_refuses_mixed_units():
    from mdmlib.config import load_config

    rule = load_config({"convergence": {"max_change": "1 sd", "max_gap_to_best": "2.5 sd"}}).convergence.rule()
    assert rule == ConvergenceRule(1.0, 3, 2.5, in_sd=True)
    assert load_config({"convergence": {"max_change": 0.1}}).convergence.rule() == ConvergenceRule(0.1, 3, 0.3)
    with pytest.raises(ValueError, match="convergence.max_gap_to_best"):
        load_config({"convergence": {"max_change": "1 sd", "max_gap_to_best": 0.3}})
    with pytest.raises(ValueError, match="convergence.max_change"):
        load_config({"convergence": {"max_change": "1 fid"}})


def test_a_rule_that_does_not_fire_says_which_limit_the_last_window_missed():
    from mdmlib.studies.convergence_rule import why_not_converged

    in_sd = ConvergenceRule(max_change=1.0, consecutive=3, max_gap_to_best=2.0, in_sd=True)
    falling = [5.0, 3.0, 2.0, 1.5, 1.0, 0.5]
    assert convergence_index(falling, in_sd, SDS) is None
    text = why_not_converged(falling, in_sd, SDS)
    # the window from point 3: changes 0.5, 0.5, 0.5 against 1 x mean sd 0.2; gap 1.5 against 2 x 0.2
    assert text == "last changes 0.5, 0.5, 0.5 against limits 0.2, 0.2, 0.2; gap to best 1.5 against 0.4"
    assert why_not_converged([1.0, 0.9], in_sd, SDS[:2]).startswith("2 points")
