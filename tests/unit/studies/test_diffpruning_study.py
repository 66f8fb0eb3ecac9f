"""DiffPruning's Table 1, experts table, figures and claims from constructed runs: tiny pruned U-Net
checkpoints, seed-set metrics, agent files and a throughput file with chosen numbers."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from mdmlib.config import ModelConfig, load_config
from mdmlib.models.elastic import prune_subnetwork
from mdmlib.models.registry import new_model
from mdmlib.models.unet import depth_layers
from mdmlib.pruning.scheme import spec_macs
from mdmlib.report.claims import read_claim_results, write_claim_results
from mdmlib.report.verdicts import FAILS, HOLDS, UNDECIDED
from mdmlib.studies.diffpruning import (
    Measurements,
    budget_claim,
    mixture_claim,
    read_and_write_diffpruning_study,
    throughput_claim,
)
from mdmlib.training.checkpoint import save_checkpoint

GROUPS = [4, 8, 8, 8, 8, 8, 4, 4]  # norm groups per ResBlock of the base U-Net below
HEADS = [8, 8, 8, 8]
INTERVALS = [(0, 400), (400, 1000)]  # DDIM 10 steps: 4 served by the first, 6 by the second (Eq. 14's weights)
# budget -> each expert's (share of groups, share of heads, drop the first depth layer), and SP's
DP_SHAPES = {700: [(0.5, 0.5, True), (0.75, 1.0, False)], 500: [(0.25, 0.25, True), (0.5, 0.5, False)]}
SP_SHAPES = {700: (0.75, 0.5, True), 500: (0.5, 0.25, True)}
IMAGES_PER_SECOND = {"baseline": 100.0, "sp_m700": 140.0, "dp_m700": 150.0, "sp_m500": 170.0, "dp_m500": 180.0}
SP_FID = [10.0, 11.0, 10.5, 12.0, 11.5]
NOISE = [0.01, -0.02, 0.0, 0.02, -0.01]  # mean 0: DP - SP is exactly -0.5 on average
RUNS = ["baseline", "sp_m700", "dp_m700", "sp_m500", "dp_m500"]
OUTPUTS = {"table1": "table", "experts": "table", "macs_split": "figure", "agent_curve": "figure"}


def base_model():
    return new_model(ModelConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                                 channels_per_head=4, dropout=0.0), 1, 8).eval()


def pruned(base, shape):
    groups, heads, drop_first = shape
    drop = [drop_first] + [False] * (len(depth_layers(base)) - 1)
    return prune_subnetwork(base, [max(1, round(g * groups)) for g in GROUPS],
                            [max(1, round(h * heads)) for h in HEADS], drop), drop


def save(path, model, interval, cfg):
    save_checkpoint(path, {"model_spec": model.spec, "config": cfg.to_dict(), "name": path.stem, "in_channels": 1,
                           "resolution": 8, "interval": list(interval), "recipe": "adm", "step": 1,
                           "ema": model.state_dict()})
    return str(path)


def sets_csv(path, run, fids, point=1):
    pd.DataFrame({"run": run, "point": point, "seed_set": range(len(fids)), "fid": fids,
                  "sfid": [f + 5 for f in fids], "precision": 0.6, "recall": [0.5 + 0.01 * k for k in range(len(fids))],
                  "num_samples": 100, "num_reference": 500, "feature_network": "classifier",
                  "reference": "validation", "steps": "1"}).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("diffpruning")
    cfg = load_config({"sampling": {"steps": 10}})
    base = base_model()
    full = spec_macs(base.spec)
    checkpoints, run_models, agents, curves, expert_macs = [save(tmp_path / "base.pt", base, (0, 1000), cfg)], \
        {"baseline": ["t0-1000_i2400"]}, [], [], {}
    for b in (700, 500):
        sp, _ = pruned(base, SP_SHAPES[b])
        checkpoints.append(save(tmp_path / f"sp{b}.pt", sp, (0, 1000), cfg))
        run_models[f"sp_m{b}"] = [f"tdc_taylor_b2400_t0-1000_f{b}_i1200"]
        experts = []
        for k, (shape, interval) in enumerate(zip(DP_SHAPES[b], INTERVALS)):
            model, drop = pruned(base, shape)
            checkpoints.append(save(tmp_path / f"dp{b}_{k}.pt", model, interval, cfg))
            macs = spec_macs(model.spec)
            experts.append({"name": f"dpw_t{interval[0]}-{interval[1]}", "interval": list(interval),
                            "groups": [max(1, round(g * shape[0])) for g in GROUPS],
                            "heads": [max(1, round(h * shape[1])) for h in HEADS], "depth": [not d for d in drop],
                            "macs": macs, "macs_ratio": macs / full})
        run_models[f"dp_m{b}"] = [f"dpf_m{b}_t{lo}-{hi}_b2400_p500_d200_w200_i200" for lo, hi in INTERVALS]
        mixture = 0.4 * experts[0]["macs"] + 0.6 * experts[1]["macs"]
        expert_macs[b] = mixture
        agents.append(tmp_path / f"agent{b}.json")
        agents[-1].write_text(json.dumps({"budget": b / 1000, "full_macs": full, "mixture_macs": mixture,
                                          "macs_ratio": mixture / full, "iterations": 3, "seconds": 1.0,
                                          "agent_seconds": 0.2, "expert_seconds": 0.8, "agent_share": 0.2,
                                          "experts": experts}))
        curves.append(tmp_path / f"curve{b}.csv")
        pd.DataFrame({"iteration": [1, 2, 3], "loss_term": [0.3, 0.2, 0.1], "macs_term": [0.5, 0.1, 0.01],
                      "total": [0.8, 0.3, 0.11], "soft_macs_ratio": [1.0, 0.8, b / 1000],
                      "hard_macs_ratio": [1.0, 0.8, mixture / full], "agent_seconds": 0.1,
                      "expert_seconds": 0.2}).to_csv(curves[-1], index=False)
    sets = [sets_csv(tmp_path / "baseline.csv", "baseline", [9.0] * 5)]
    early = pd.read_csv(sets[0]).assign(point=1, fid=50.0)  # the baseline's earlier point: not read
    pd.concat([early, pd.read_csv(sets[0]).assign(point=2)]).to_csv(sets[0], index=False)
    for b in (700, 500):
        sets.append(sets_csv(tmp_path / f"sp{b}.csv", f"sp_m{b}", SP_FID))
        sets.append(sets_csv(tmp_path / f"dp{b}.csv", f"dp_m{b}", [f - 0.5 + e for f, e in zip(SP_FID, NOISE)]))
    timings = []
    for model in (m for run in RUNS[1:] for m in run_models[run]):
        timings.append(tmp_path / f"{model}_timing.csv")
        pd.DataFrame({"step": [100, 200], "elapsed_seconds": [5.0, 12.0]}).to_csv(timings[-1], index=False)
    throughput = tmp_path / "throughput.json"
    throughput.write_text(json.dumps({
        "runs": {r: {"images_per_second": v, "seconds_per_batch": 64 / v, "batch": 64, "steps": 10, "repeats": 3,
                     "all_seconds": [64 / v, 64 / v * 1.1, 64 / v * 1.2]} for r, v in IMAGES_PER_SECOND.items()},
        "machine": {"device": "cpu", "torch_threads": 4, "torch_version": "2", "cpu_count": 8}}))
    inputs = SimpleNamespace(sets=sets, checkpoints=checkpoints, agents=[str(p) for p in agents],
                             curves=[str(p) for p in curves], throughput=str(throughput),
                             timings=[str(p) for p in timings])
    outputs = SimpleNamespace(**{f"{name}_{ext}": str(tmp_path / "out" / f"diffpruning_{name}.{ext}")
                                 for name, kind in OUTPUTS.items()
                                 for ext in (("png", "pdf") if kind == "figure" else ("csv", "md"))})
    claims = read_and_write_diffpruning_study(inputs, RUNS, run_models, [700, 500], cfg, outputs, "digits/test")
    return SimpleNamespace(claims={c.claim: c for c in claims}, outputs=outputs, full=full, mixture=expert_macs,
                           base=base, tmp_path=tmp_path, claim_list=claims)


def test_table1_has_a_row_per_run_with_macs_throughput_and_metrics(study):
    table = pd.read_csv(study.outputs.table1_csv).set_index("method")
    assert list(table.index) == ["baseline (unpruned)", "SP, taylor (70%)", "DiffPruning (70%)", "SP, taylor (50%)",
                                 "DiffPruning (50%)"]
    dp = table.loc["DiffPruning (70%)"]
    assert dp["MACs / baseline"] == pytest.approx(study.mixture[700] / study.full)  # DDIM 4:6 = Eq. 14's 0.4:0.6
    assert dp["speed-up"] == pytest.approx(1.5) and dp["images/s"] == 150.0
    assert dp["speed-up per round"] == "1.50-1.50"  # baseline and mixture both slowed 10%, 20% in rounds 2, 3
    assert dp["speed-up / (1 / MACs ratio)"] == pytest.approx(1.5 * study.mixture[700] / study.full)
    assert table.loc["DiffPruning (50%)", "speed-up"] == pytest.approx(1.8)
    assert table.loc["baseline (unpruned)", "MACs / baseline"] == 1.0
    assert table.loc["baseline (unpruned)", "MACs per step (M)"] == pytest.approx(study.full / 1e6)
    assert table.loc["baseline (unpruned)", "FID"] == 9.0  # its final point, not point 1's 50
    assert dp["FID"] == pytest.approx(sum(SP_FID) / 5 - 0.5) and dp["sample sets"] == 5
    assert dp["FID DP - SP"] == pytest.approx(-0.5) and dp["sFID DP - SP"] == pytest.approx(-0.5)
    assert pd.isna(table.loc["SP, taylor (70%)", "FID DP - SP"])
    assert " / " in dp["parameters (M)"] and "mean" in dp["parameters (M)"]
    assert dp["budget"] == 0.7 and pd.isna(table.loc["baseline (unpruned)", "budget"])
    md = open(study.outputs.table1_md).read()
    sp = table.loc["SP, taylor (70%)"]
    assert f"| {sp['FID']:.4g} ({sp['FID sd']:.2g}) |" in md  # mean (sd) over the seed sets
    assert "-0.5 (se " in md and "holds" in md.splitlines()[0]


def test_experts_table_reads_the_agents_choice_and_the_checkpoints(study):
    experts = pd.read_csv(study.outputs.experts_csv)
    assert list(experts["budget"]) == [0.7, 0.7, 0.5, 0.5]
    assert list(experts["interval"]) == ["(0, 400]", "(400, 1000]"] * 2
    first = experts.iloc[0]
    assert first["groups kept"] == pytest.approx(sum(max(1, round(g * 0.5)) for g in GROUPS) / sum(GROUPS))
    assert first["heads kept"] == pytest.approx(0.5)
    depth = len(depth_layers(study.base))
    assert first["depth layers kept"] == f"{depth - 1} / {depth}"
    assert (experts["MACs (M)"] == experts["checkpoint MACs (M)"]).all()  # the agent's formula = counted
    assert (experts["fine-tune seconds"] == 12.0).all()
    assert experts["parameters (M)"].iloc[1] > experts["parameters (M)"].iloc[0]


def test_figures_are_written_as_png_and_pdf(study):
    for name in ("macs_split_png", "macs_split_pdf", "agent_curve_png", "agent_curve_pdf"):
        path = study.tmp_path / "out" / getattr(study.outputs, name).split("/")[-1]
        assert path.stat().st_size > 1000


def test_a_mixture_better_on_every_set_at_equal_macs_meeting_its_budget_holds_every_claim(study):
    assert {c: r.verdict for c, r in study.claims.items()} == {
        "dp_table1_mixture_vs_sp": HOLDS, "dp_table1_throughput": HOLDS, "dp_table1_era_budget": HOLDS}
    assert "70%: FID DP - SP = -0.5" in study.claims["dp_table1_mixture_vs_sp"].reason
    assert "throughput on cpu, 4 torch threads, batch 64" in study.claims["dp_table1_throughput"].setting
    write_claim_results(study.tmp_path / "claims.csv", study.claim_list)  # catalogued ids, one each
    assert set(read_claim_results([study.tmp_path / "claims.csv"])) == set(study.claims)


# ------------------------------------------------------------------ claims on constructed numbers


def frame(fids):
    return pd.DataFrame({"seed_set": range(len(fids)), "fid": fids, "sfid": [f + 5 for f in fids], "point": 1})


def measurements(dp_shift=-0.5, dp_macs=0.7, sp_macs=0.7, dp_speed=1.5, agent_ratio=0.7, budgets=(700,)):
    ends, sizes, agents, runs = {"baseline": frame([9.0] * 5)}, {"baseline": {"trajectory_macs": 1.0}}, {}, {}
    runs["baseline"] = {"images_per_second": 100.0, "batch": 64, "steps": 10, "repeats": 3}
    for b in budgets:
        ends[f"sp_m{b}"] = frame(SP_FID)
        ends[f"dp_m{b}"] = frame([f + dp_shift + e for f, e in zip(SP_FID, NOISE)])
        sizes[f"sp_m{b}"], sizes[f"dp_m{b}"] = {"trajectory_macs": sp_macs}, {"trajectory_macs": dp_macs}
        runs[f"dp_m{b}"] = {"images_per_second": 100.0 * dp_speed}
        agents[b] = {"macs_ratio": agent_ratio}
    return Measurements(ends=ends, sizes=sizes, throughput={"runs": runs, "machine": {}}, agents=agents, curves={},
                        seconds={}, units=([], [], 0), run_models={})


@pytest.mark.parametrize("shift, verdict", [(-0.5, HOLDS), (0.5, FAILS), (0.0, UNDECIDED)])
def test_the_mixture_claim_follows_the_paired_fid(shift, verdict):
    assert mixture_claim(measurements(dp_shift=shift), [700], "constructed").verdict == verdict


def test_a_mixture_with_more_macs_than_sp_is_not_tested():
    claim = mixture_claim(measurements(dp_macs=0.77, sp_macs=0.7), [700], "constructed")  # 10% more
    assert claim.verdict == UNDECIDED and claim.reason.startswith("not tested") and "1.100 x SP's" in claim.reason


def test_a_budget_not_tested_leaves_the_others_verdict_undecided():
    m = measurements(budgets=(700, 500))
    m.sizes["dp_m500"]["trajectory_macs"] = 0.8  # 14% above SP's 0.7
    claim = mixture_claim(m, [700, 500], "constructed")
    assert claim.verdict == UNDECIDED and "not tested at 50%" in claim.reason and "70%: FID DP - SP" in claim.reason


@pytest.mark.parametrize("speed, verdict", [(1.5, HOLDS), (1.0, FAILS)])  # 1.5 x 0.7 = 1.05; 1.0 x 0.7 = 0.70
def test_throughput_must_track_the_macs_saving(speed, verdict):
    claim = throughput_claim(measurements(dp_speed=speed), [700], "constructed")
    assert claim.verdict == verdict and f"= {speed * 0.7:.2f}" in claim.reason


@pytest.mark.parametrize("ratio, verdict", [(0.715, HOLDS), (0.685, HOLDS), (0.73, FAILS), (0.6, FAILS)])
def test_the_agent_meets_the_budget_within_two_points(ratio, verdict):
    assert budget_claim(measurements(agent_ratio=ratio), [700], "constructed").verdict == verdict
