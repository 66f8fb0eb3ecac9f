"""The multi-stage paper's multi-decoder U-Net: one encoder shared by all stages, one decoder per stage.

The encoder is the time embedding, the input convolution, the down path and the middle block
(the split of the authors' DPM-Solver and LDM code; their EDM variant gives each decoder its
own middle block). Each stage owns an up path, fed the shared encoder's skips, and an output
head, at its own base width (``decoder_channels``: the paper's CIFAR-10 model gives the
lowest-noise stage the widest decoder, 192 / 128 / 16 over an encoder of 128). ``forward``
runs the encoder once and each sample through the decoder of the stage that owns its
timestep; a batch spanning several stages is split by stage and reassembled in order.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mdmlib.models.macs import forward_macs
from mdmlib.models.unet import (
    AttentionLayers,
    decode,
    down_path,
    encode,
    middle_block,
    output_head,
    up_path,
)


class MultiDecoderUNet(nn.Module):
    def __init__(self, in_channels: int, resolution: int, stage_boundaries: Sequence[int],
                 decoder_channels: Sequence[int], base_channels: int = 32, channel_mult: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, attention_resolutions: Sequence[int] = (4,), channels_per_head: int = 16,
                 dropout: float = 0.1):
        """``stage_boundaries``: the interior cut points b_1 < ... < b_{n-1} in timestep indices; stage k
        serves indices [b_k, b_{k+1}) (b_0 = 0), clean to noisy, as ``IntervalChoice`` gives them.
        ``decoder_channels``: each stage's decoder base width, one per stage."""
        super().__init__()
        if list(stage_boundaries) != sorted(set(stage_boundaries)) or any(b <= 0 for b in stage_boundaries):
            raise ValueError(f"stage boundaries {list(stage_boundaries)} are not ascending positive indices")
        if len(decoder_channels) != len(stage_boundaries) + 1:
            raise ValueError(f"{len(decoder_channels)} decoder widths for {len(stage_boundaries) + 1} stages")
        for width in decoder_channels:
            if any(width * m % channels_per_head for m in channel_mult):
                raise ValueError(f"decoder width {width}: channels_per_head {channels_per_head} must divide "
                                 f"every level's width")
        self.in_channels, self.resolution, self.base_channels = in_channels, resolution, base_channels
        self.register_buffer("stage_uppers", torch.tensor(list(stage_boundaries), dtype=torch.long), persistent=False)
        ch, emb_dim = base_channels, 4 * base_channels
        attention = AttentionLayers(attention_resolutions, channels_per_head)
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_conv = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down, skips, ch, res = down_path(ch, base_channels, channel_mult, num_res_blocks, emb_dim, dropout,
                                              attention, resolution)
        self.middle = middle_block(ch, emb_dim, dropout, attention, res)
        self.decoders = nn.ModuleList()
        for width in decoder_channels:
            # each decoder labels its attention layers on from the encoder's ('r-o' in forward order)
            up, out_ch = up_path(ch, skips, width, channel_mult, num_res_blocks, emb_dim, dropout,
                                 AttentionLayers(attention_resolutions, channels_per_head, attention.counts), res)
            self.decoders.append(nn.ModuleDict({"up": up, "out": output_head(out_ch, in_channels)}))

    @property
    def stages(self) -> int:
        return len(self.decoders)

    def stage_of(self, t: torch.Tensor) -> torch.Tensor:
        """The stage that owns each timestep index."""
        return torch.bucketize(t, self.stage_uppers.to(t.device), right=True)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.time_embed, self.input_conv, self.down, self.middle) for p in m.parameters()]

    def decode_stage(self, stage: int, h: torch.Tensor, hs: list[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        decoder = self.decoders[stage]
        return decode(decoder["up"], decoder["out"], h, hs, emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, hs, emb = encode(self, x, t)
        stage = self.stage_of(t)
        if (stage == stage[0]).all():  # the sampling case: one timestep, one stage for the batch
            return self.decode_stage(int(stage[0]), h, hs, emb)
        out = torch.empty_like(x)
        for k in range(self.stages):
            mine = stage == k
            if mine.any():
                out[mine] = self.decode_stage(k, h[mine], [s[mine] for s in hs], emb[mine])
        return out


def stage_costs(model: MultiDecoderUNet, sample: torch.Tensor) -> list[dict]:
    """Parameters and forward MACs per image of the encoder, each decoder, and each stage (the
    encoder with its decoder, as the paper's Table 7 counts a stage); ``sample`` is one input."""
    encoder_params = sum(p.numel() for p in model.encoder_parameters())
    encoder = forward_macs(lambda x, t: encode(model, x, t), sample, torch.zeros(len(sample), dtype=torch.long))
    rows = [{"part": "encoder (shared)", "stage": None, "parameters": encoder_params, "macs": encoder}]
    starts = [0, *model.stage_uppers.tolist()]
    for k, decoder in enumerate(model.decoders):
        t = torch.full((len(sample),), starts[k], dtype=torch.long)
        total = forward_macs(model, sample, t)
        decoder_params = sum(p.numel() for p in decoder.parameters())
        rows.append({"part": f"decoder {k + 1}", "stage": k + 1, "parameters": decoder_params, "macs": total - encoder})
        rows.append({"part": f"stage {k + 1}", "stage": k + 1, "parameters": encoder_params + decoder_params,
                     "macs": total})
    return rows


def nfe_weighted_macs(model: MultiDecoderUNet, costs: Sequence[dict], sampling_timesteps: Sequence[int]) -> float:
    """The paper's "Total GFLOPs" in MACs: each stage's forward MACs (``costs``: ``stage_costs``'s
    rows) weighted by the number of the sampler's network evaluations (``sampling_timesteps``,
    e.g. a DDIM trajectory) in it."""
    per_stage = {row["stage"]: row["macs"] for row in costs if row["part"].startswith("stage")}
    stages = model.stage_of(torch.tensor(list(sampling_timesteps), dtype=torch.long)).tolist()
    return sum(per_stage[k + 1] for k in stages) / len(stages)
