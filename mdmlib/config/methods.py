"""The typed sections of the methods beyond MDM: multi-stage, TDC and DiffPruning."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EncoderDecoderSplit:  # one row of the Table 7 form, in multiples of model.base_channels
    encoder: float  # the shared encoder's base width
    # each stage's decoder base width, clean to noisy; resampled linearly onto the stage count
    # when it has another length, so a split stays valid for any experts.n
    decoders: tuple[float, ...]

    @classmethod
    def from_values(cls, values: dict) -> "EncoderDecoderSplit":
        if not isinstance(values, dict) or set(values) != {"encoder", "decoders"}:
            raise ValueError(f"config key 'multistage.splits': each split is {{encoder: <multiple>, decoders: "
                             f"[<multiple per stage>]}}, got {values!r}")
        return cls(float(values["encoder"]), tuple(float(w) for w in values["decoders"]))


@dataclass(frozen=True)
class MultistageConfig:  # the multi-stage paper: a shared encoder, one decoder per stage
    intervals: str = "optimal_denoiser"  # the interval method that gives the stages (the paper's)
    # each stage's decoder base width, clean to noisy (model.base_channels is the encoder's); the
    # paper's CIFAR-10 model widens the cleanest stage's decoder: 192 / 128 / 16 over 128. None:
    # 1.5x the encoder's width for the cleanest stage down to 0.5x for the noisiest, each rounded up
    # to a multiple of model.channels_per_head (48 / 32 / 16 at the default)
    decoder_channels: tuple[int, ...] | None = None
    # its training steps, each a batch split over the stages; None: training.baseline_iterations,
    # so unified, separate and multi-stage models see the same samples
    iterations: int | None = None
    # Table 9 form: the numbers of stages compared, each on the interval method's split for that
    # many stages with the default decoder ramp; 1 stage is the unified model (the baseline)
    stage_counts: tuple[int, ...] = (1, 2, 3, 4, 5)
    # the interval method that splits each of Table 9's counts; None: ``intervals`` (the paper's
    # Table 9 splits come from its Algorithm 2, the optimal denoiser, for every count)
    stage_count_intervals: str | None = None

    @property
    def stage_count_method(self) -> str:
        return self.stage_count_intervals or self.intervals
    # Table 7 form: encoder/decoder splits of the same stages at about the same total parameters,
    # the shared (encoder) share small to large, widths in multiples of model.base_channels rounded
    # up to multiples of model.channels_per_head; the paper's CIFAR-10 ablation has four
    splits: tuple[EncoderDecoderSplit, ...] = ()
    # steps of every Table 7 / Table 9 model; None: the multi-stage budget. Where it is one of the
    # main models' snapshot steps, the baseline and the main multi-stage model serve by snapshot
    ablation_iterations: int | None = None

    def __post_init__(self):
        splits = tuple(s if isinstance(s, EncoderDecoderSplit) else EncoderDecoderSplit.from_values(s)
                       for s in self.splits)
        object.__setattr__(self, "splits", splits)


@dataclass(frozen=True)
class ProxyConfig:  # TDC's proxy-based pruning (mdmlib.pruning.proxy)
    proposer: str = "offline"  # offline (a search that learns from the memory bank) | chat (an LLM endpoint)
    rounds: int = 3  # R: proposal rounds per group
    candidates: int = 3  # K: schemes per round (the paper: 3)
    recovery_steps: int = 10  # fine-tune steps on the group's timesteps before a scheme is scored
    eval_images: int = 64  # validation images of the held-out loss that scores a scheme
    endpoint: str | None = None  # chat: an OpenAI-compatible base URL, e.g. https://api.openai.com/v1
    chat_model: str | None = None  # chat: the model name sent with the request (the paper: GPT-4)
    api_key_env: str | None = None  # chat: the environment variable holding the API key


@dataclass(frozen=True)
class TdcConfig:  # TDC training (make tdc): the SNR groups, a pruned base model fine-tuned per group
    groups: int = 4  # N; the FLOPs limits follow intervals.snr.min_flops_ratio (k)
    # the base model: the baseline's snapshot at this step (one of its evaluation points); None: the
    # middle point. The groups then fine-tune for finetune_iterations each.
    base_iterations: int | None = None
    finetune_iterations: int = 200
    scratch_factor: int = 4  # Table V: the pruned shape from scratch for 1x and this many x the fine-tune steps
    pruning: tuple[str, ...] = ("random", "magnitude", "taylor", "diff_pruning", "proxy")  # Table VI rows
    importance_images: int = 64  # training images whose gradients score channels (taylor, diff_pruning)
    # tdc_ablations: Table II compares FLOPs schedules with this pruning method; Table III TDC
    # without pruning on each of these group numbers
    ablation_pruning: str = "proxy"
    group_counts: tuple[int, ...] = (2, 3, 4, 6, 8)
    # tdc_ablations, Fig. 6: TDC with ablation_pruning at each k (the SNR groups do not move with k,
    # only their FLOPs limits); "stable across k": every k's FID within k_tolerance x the FID at
    # intervals.snr.min_flops_ratio, which must be one of them
    k_values: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
    k_tolerance: float = 0.1
    proxy: ProxyConfig = field(default_factory=ProxyConfig)


@dataclass(frozen=True)
class AgentConfig:  # DiffPruning's Expert Routing Agent (mdmlib.routing.agent), trained once per budget
    iterations: int = 200  # G of Alg. 1
    batch_size: int = 64  # training images per step (each expert's loss on its interval)
    learning_rate: float = 0.001  # AdamW, as the paper
    weight_decay: float = 0.01
    temperature: float = 0.4  # tau of the Gumbel-sigmoid (Eq. 7, 9)
    input_dim: int = 32  # z (the paper: 128)
    hidden: int = 64  # GRU width (the paper: 256)


@dataclass(frozen=True)
class DiffPruningConfig:  # DiffPruning (make diffpruning): the baseline pruned into a mixture of efficient experts
    intervals: str = "gradient"  # the interval method (the paper's gradient alignment, Sec. 3.3)
    n: int = 2  # experts (the paper: 2)
    budgets: tuple[float, ...] = (0.7, 0.5, 0.3)  # T_d: MACs per step as a fraction of the baseline's
    depth_iterations: int = 200  # elastic depth fine-tuning per expert (Eq. 4)
    drop_probability: float = 0.5  # p: each depth layer is the identity with this probability
    width_iterations: int = 200  # elastic width fine-tuning per expert (after depth)
    finetune_iterations: int = 200  # each pruned expert on its interval
    single_model_pruning: str = "taylor"  # the single-model baseline (the paper's SP: Taylor importance)
    throughput_batch: int = 64  # images per DDIM batch when throughput is measured (the paper: 64)
    throughput_repeats: int = 3  # timed batches per run (the fastest is kept)
    agent: AgentConfig = field(default_factory=AgentConfig)
