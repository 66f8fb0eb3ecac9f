"""The multi-decoder U-Net's cost: DDIM time against the unified model and against what its MACs
predict, the routing by stage against calling one decoder directly, and training-step time per stage.

The model is the one `make multistage` trains at the config (its U-Net as the encoder, the
config's decoder widths, the paper split's stages); the unified model is the config's U-Net.
"""
from __future__ import annotations

import time

import torch

from benchmarks.timing import figure, paired_ratio
from mdmlib.config import RunConfig
from mdmlib.core.intervals import intervals_from_boundaries
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.models.macs import forward_macs
from mdmlib.models.multi_decoder import nfe_weighted_macs, stage_costs
from mdmlib.models.registry import build_model, new_model
from mdmlib.models.unet import encode
from mdmlib.sampling.ddim import ddim_sample, ddim_timesteps
from mdmlib.training.job import decoder_widths, multi_decoder_spec


def _models(cfg: RunConfig, channels: int):
    torch.manual_seed(0)
    stages = intervals_from_boundaries(cfg.experts.boundaries, cfg.diffusion.timesteps)
    multi = build_model(multi_decoder_spec(cfg, stages, cfg.model.base_channels, decoder_widths(cfg, len(stages)))).eval()
    unified = new_model(cfg.model, channels, cfg.data.resolution).eval()
    return multi, unified, stages


def _ddim_seconds(model, schedule, noise, steps: int) -> float:
    start = time.perf_counter()
    ddim_sample(model, schedule, noise, steps)
    return time.perf_counter() - start


def _forward_seconds(forward, x, t, repeats: int) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(repeats):
            forward(x, t)
        return time.perf_counter() - start


def _step_seconds(model, schedule, x0, t, steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        loss = epsilon_loss_per_sample(model, schedule, x0, t, torch.randn_like(x0)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def multistage_costs(cfg: RunConfig, channels: int, batch: int, ddim_steps: int, train_steps: int,
                     repeats: int) -> dict:
    multi, unified, stages = _models(cfg, channels)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    res = cfg.data.resolution
    sample = torch.zeros(1, channels, res, res)
    costs = stage_costs(multi, sample)
    unified_macs = forward_macs(unified, sample, torch.zeros(1, dtype=torch.long))
    predicted = nfe_weighted_macs(multi, costs, ddim_timesteps(cfg.diffusion.timesteps, ddim_steps)) / unified_macs
    noise = torch.randn(batch, channels, res, res)
    ddim = paired_ratio(lambda: _ddim_seconds(multi, schedule, noise, ddim_steps),
                        lambda: _ddim_seconds(unified, schedule, noise, ddim_steps), repeats)
    per_macs = [r / predicted for r in ddim["ratios"]]
    # Routing: the model's forward on a one-stage batch against the encoder and that decoder called directly.
    x, t = torch.randn(batch, channels, res, res), torch.full((batch,), stages[1].lo, dtype=torch.long)

    def direct(xx, tt):
        h, hs, emb = encode(multi, xx, tt)
        return multi.decode_stage(1, h, hs, emb)

    routed = paired_ratio(lambda: _forward_seconds(multi, x, t, ddim_steps),
                          lambda: _forward_seconds(direct, x, t, ddim_steps), repeats)
    figures = [figure("DDIM time, multi-stage / unified", ddim["ratios"]),
               figure("  MACs predict (NFE-weighted multi-stage / unified)", [predicted]),
               figure("DDIM time ratio / MACs ratio", per_macs, target=(">=", 0.9)),
               figure("DDIM time ratio / MACs ratio, upper bound", per_macs, target=("<=", 1.1)),
               figure("forward on one stage's batch: routed / encoder + decoder called directly", routed["ratios"],
                      target=("<=", 1.03))]
    # Training-step time of each stage's batch against the unified model's, beside their MACs ratio.
    x0 = torch.randn(batch, channels, res, res)
    stage_macs = {r["stage"]: r["macs"] for r in costs if r["part"].startswith("stage")}
    for k, stage in enumerate(stages):
        tk = torch.full((batch,), stage.lo, dtype=torch.long)
        timed = paired_ratio(lambda: _step_seconds(multi, schedule, x0, tk, train_steps),
                             lambda: _step_seconds(unified, schedule, x0, tk, train_steps), repeats)
        figures += [figure(f"training step, stage {k + 1} / unified (MACs ratio {stage_macs[k + 1] / unified_macs:.3g})",
                           timed["ratios"])]
    return {"figures": figures, "stages": [s.to_list() for s in stages], "batch": batch, "ddim_steps": ddim_steps,
            "train_steps": train_steps, "predicted_ratio": predicted, "ddim": ddim, "routing": routed}
