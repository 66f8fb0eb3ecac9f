"""The seeded global generator: its draws are those of a generator with that seed, and the caller's state is kept."""
from __future__ import annotations

import torch

from mdmlib.core.rng import seeded_global_rng


def test_draws_inside_are_the_seeds_and_the_callers_state_is_kept():
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(123)
    with seeded_global_rng(7):
        inside = torch.rand(3)
    assert torch.equal(inside, torch.rand(3, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(torch.rand(3), expected_after)
