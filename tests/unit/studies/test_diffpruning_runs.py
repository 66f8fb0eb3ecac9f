"""DiffPruning's model names and runs: each stage's name extends its start's, the mixture's experts
and the single-model baseline at each budget, and the steps that make the comparison fair."""
from __future__ import annotations

import pytest

from mdmlib.config import RunConfig, load_config
from mdmlib.core.intervals import Interval
from mdmlib.studies.diffpruning_runs import (
    diffpruning_runs,
    dp_run_models,
    run_budget,
    single_model_steps,
    width_experts,
)
from mdmlib.training.job import (
    DP_NAME,
    MODEL_PATTERN,
    ExpertName,
    model_budget,
    train_job,
)

INTERVALS = [Interval(0, 400), Interval(400, 1000)]


def test_each_stage_starts_from_the_one_its_name_extends():
    pruned = ExpertName.parse("dpf_m500_t0-400_b2400_p500_d200_w150_i100")
    assert (pruned.stage, pruned.budget_permille, pruned.iterations) == ("pruned", 500, 100)
    width = pruned.start()
    assert width.name == "dpw_t0-400_b2400_p500_d200_i150"
    assert width.start().name == "dpd_t0-400_b2400_p500_i200" and width.start().start() is None
    assert width.pruned(500, 100) == pruned
    for name in (pruned.name, width.name, width.start().name):
        assert ExpertName.parse(name).name == name and DP_NAME.fullmatch(name)
    assert model_budget(pruned.name) == 100


@pytest.mark.parametrize("name", ["dpd_t0-400_b2400_p500_d200_i200",  # a depth expert has no depth start
                                  "dpf_t0-400_b2400_p500_d200_w200_i200",  # a pruned one needs its budget
                                  "dpw_m500_t0-400_b2400_p500_d200_i200"])
def test_a_name_with_parts_its_stage_does_not_have_is_refused(name):
    with pytest.raises(ValueError, match="is named"):
        ExpertName.parse(name)


def test_only_a_width_expert_is_pruned():
    with pytest.raises(ValueError, match="only an elastic width expert"):
        ExpertName.parse("dpd_t0-400_b2400_p500_i200").pruned(500, 10)


def test_runs_per_budget_name_the_mixture_and_the_single_model_at_equal_fine_tune_steps():
    cfg = load_config({"diffpruning": {"budgets": [0.3, 0.7], "depth_iterations": 20, "width_iterations": 30,
                                       "finetune_iterations": 40}})
    assert diffpruning_runs(cfg) == ["sp_m700", "dp_m700", "sp_m300", "dp_m300"]
    assert run_budget("dp_m300") == 300 and run_budget("sp_m700") == 700
    with pytest.raises(ValueError, match="not a DiffPruning run"):
        run_budget("tdc_proxy")
    base = cfg.training.baseline_iterations
    assert dp_run_models("dp_m300", cfg, INTERVALS) == [
        f"dpf_m300_t0-400_b{base}_p500_d20_w30_i40", f"dpf_m300_t400-1000_b{base}_p500_d20_w30_i40"]
    assert single_model_steps(cfg) == 2 * (20 + 30 + 40)
    assert dp_run_models("sp_m700", cfg, INTERVALS) == [f"tdc_taylor_b{base}_t0-1000_f700_i180"]
    # at a budget of 1 nothing is pruned: TDC's full-size model fine-tuned on all timesteps
    full = load_config({"diffpruning": {"budgets": [1.0]}})
    assert dp_run_models("sp_m1000", full, INTERVALS)[0].startswith("tdc_full_")


def test_elastic_stages_train_the_elastic_unet_and_a_pruned_expert_its_inits_shape():
    cfg = RunConfig()
    depth, pruned = (train_job(n, cfg) for n in ("dpd_t0-400_b2400_p250_i200",
                                                  "dpf_m500_t0-400_b2400_p250_d200_w200_i50"))
    assert depth.model_spec["architecture"] == "elastic_unet"
    assert depth.model_spec["arguments"]["elastic"] == "depth"
    assert depth.model_spec["arguments"]["drop_probability"] == 0.25 and depth.interval == Interval(0, 400)
    assert pruned.model_spec is None and pruned.iterations == 50
    width = width_experts(cfg, INTERVALS)[1]
    assert train_job(width.name, cfg).model_spec["arguments"]["elastic"] == "width"
    with pytest.raises(ValueError, match="does not fit"):
        train_job("dpd_t0-1400_b2400_p500_i200", cfg)


def test_the_snakefile_wildcard_takes_every_stage():
    import re
    for name in ("dpd_t0-400_b2400_p500_i200", "dpw_t0-400_b2400_p500_d200_i200",
                 "dpf_m500_t0-400_b2400_p500_d200_w200_i200"):
        assert re.fullmatch(MODEL_PATTERN, name)
