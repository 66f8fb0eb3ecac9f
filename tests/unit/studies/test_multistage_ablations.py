"""The multi-stage ablation tables: per-stage parameters and MACs, metrics with their spread on
the total row, and the paper's claims decided set by set."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.multi_decoder import MultiDecoderUNet
from mdmlib.models.unet import UNet
from mdmlib.studies.multistage_ablations import (
    ablation_table,
    part_rows,
    write_ablation_tables,
)

SHAPE = dict(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,), channels_per_head=4)


def scores(fids, run="r"):
    return pd.DataFrame({"seed_set": range(len(fids)), "fid": fids, "sfid": [2.0] * len(fids),
                         "precision": [0.5] * len(fids), "recall": [0.6] * len(fids), "feature_network": "classifier",
                         "num_samples": 64, "num_reference": 64})


def test_part_rows_count_each_stage_as_the_encoder_with_its_decoder():
    model = MultiDecoderUNet(1, 8, stage_boundaries=[400], decoder_channels=[12, 4], **SHAPE)
    rows = {r["stage"]: r for r in part_rows(model, 1000, [999, 700, 399, 0])}
    encoder = sum(p.numel() for p in model.encoder_parameters())
    decoders = [sum(p.numel() for p in d.parameters()) for d in model.decoders]
    assert rows["shared"]["parameters"] == encoder
    assert [rows["1/2"]["parameters"], rows["2/2"]["parameters"]] == [encoder + d for d in decoders]
    assert rows["total"]["parameters"] == count_parameters(model) == encoder + sum(decoders)
    assert (rows["1/2"]["interval"], rows["2/2"]["interval"]) == ("[0, 0.4)", "[0.4, 1)")
    x = torch.zeros(1, 1, 8, 8)
    clean, noisy = (forward_macs(model, x, torch.tensor([t])) for t in (0, 999))
    assert rows["1/2"]["macs"] == clean and rows["2/2"]["macs"] == noisy and clean > noisy  # wider decoder
    assert rows["total"]["macs"] == (clean + clean + noisy + noisy) / 4  # two steps in each stage
    unet = UNet(1, 8, **SHAPE)
    assert [r["stage"] for r in part_rows(unet, 1000, [0])] == ["1/1", "total"]


def test_tables_put_the_metrics_on_each_models_total_row_and_decide_the_claims(tmp_path):
    unet = part_rows(UNet(1, 8, **SHAPE), 1000, [0, 999])
    staged = part_rows(MultiDecoderUNet(1, 8, stage_boundaries=[400], decoder_channels=[12, 4], **SHAPE), 1000, [0, 999])
    table = ablation_table("stages", {"1": (unet, scores([0.9, 1.0])), "2": (staged, scores([0.5, 0.7]))})
    totals = table[table["stage"] == "total"]
    assert totals["FID"].tolist() == [0.95, 0.6] and np.isclose(totals["FID sd"].iloc[1], np.std([0.5, 0.7], ddof=1))
    assert table[table["stage"] != "total"]["FID"].isna().all()
    outputs = SimpleNamespace(**{f"{t}_{e}": tmp_path / f"{t}.{e}" for t in ("table7", "table9") for e in ("csv", "md")})
    spreads = {"stages1": scores([0.9, 1.0, 0.95]), "stages2": scores([0.5, 0.7, 0.6]),
               "split1": scores([0.8, 0.9, 0.85])}
    parts = {"stages1": unet, "stages2": staged, "split1": staged}
    claims = write_ablation_tables({1: "stages1", 2: "stages2"}, ["split1", "stages2"], 2, 1, parts, spreads, 20,
                                   outputs, "smoke")
    assert [(c.claim, c.verdict) for c in claims] == [("ms_table9_stages", "holds"), ("ms_table7_split", "holds")]
    assert claims[0].ours.startswith("1 stage: 0.95 (0.05), 2 stages: 0.6 (0.1)")
    assert "Paper's claim (its 3 stages best; here the main model's 2): holds" in (tmp_path / "table9.md").read_text()
    assert pd.read_csv(tmp_path / "table7.csv")["split"].tolist() == [1, 1, 1, 1, 2, 2, 2, 2]


def test_the_table5_claim_is_decided_on_the_best_points_seed_sets():
    from mdmlib.studies.multistage import claim_verdict

    def series(fids, steps):
        return pd.DataFrame({"point": range(1, len(fids) + 1), "fid": fids, "total_steps": steps})

    runs = {"multistage": series([0.9, 0.6, 0.7], [10, 20, 30]), "baseline": series([1.0, 0.8, 0.65], [10, 20, 30])}
    # on set 0 alone multi-stage is better (0.6 < 0.65) and sooner (20 <= 30) ...
    assert claim_verdict(runs).verdict == "holds" and "on one sample set" in claim_verdict(runs).reason
    # ... but over three sets the difference swings both ways: undecided
    spreads = {"multistage": scores([0.6, 0.9, 0.5]), "baseline": scores([0.65, 0.6, 0.7])}
    assert claim_verdict(runs, spreads).verdict == "undecided"
    steady = {"multistage": scores([0.60, 0.61, 0.62]), "baseline": scores([0.70, 0.72, 0.71])}
    assert claim_verdict(runs, steady).verdict == "holds"
    later = {"multistage": series([0.9, 0.7, 0.6], [10, 20, 30]), "baseline": series([1.0, 0.65, 0.8], [10, 20, 30])}
    verdict = claim_verdict(later, steady)
    assert verdict.verdict == "does not hold" and "not in fewer iterations" in verdict.reason
