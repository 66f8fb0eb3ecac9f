"""What the pipeline trains: a short run served from a longer one's snapshot."""
from __future__ import annotations

from mdmlib.training.job import snapshot_source


def test_a_study_expert_is_the_main_experts_snapshot_at_its_budget():
    main = ["t0-100_i300", "t100-800_i2100", "t800-1000_i600"]  # snapshots at 1/6 .. 6/6 of each budget
    assert snapshot_source("t100-800_i700", main, points=6) == ("t100-800_i2100", 2)
    assert snapshot_source("t0-100_i100", main, points=6) == ("t0-100_i300", 2)
    assert snapshot_source("t800-1000_i600", main, points=6) is None  # itself: nothing longer


def test_no_source_when_interval_recipe_or_step_differs():
    main = ["t0-1000_i3000", "t0-1000_i3000_p2w"]
    assert snapshot_source("t0-1000_i1000", main, points=6) == ("t0-1000_i3000", 2)
    assert snapshot_source("t0-1000_i1000_p2w", main, points=6) == ("t0-1000_i3000_p2w", 2)
    assert snapshot_source("t0-1000_i1000_importance", main, points=6) is None
    assert snapshot_source("t0-1000_i300", main, points=6) is None  # 300 is not a multiple of 500
    assert snapshot_source("t0-999_i1000", main, points=6) is None
