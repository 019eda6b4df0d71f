"""The training config: TrainConfig, its validation, YAML loading and the README reference.

A mapping names only what it changes (``config_from_dict``); every problem of a config is
reported at once, one per line (``ConfigError``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from winnow.schemas import typed_config
from winnow.trainer.data import DEFAULT_WINDOW_SHARDS, SHUFFLES, MaskingConfig
from winnow.trainer.model import PRESETS, ModelConfig

MAX_BATCH_SIZE = 65536
"""The largest global batch BERT has been trained with (LAMB, You et al. 2020)."""

# Fields a config may leave unset (None): ``resolved_config`` derives them from the preset, the
# run's length and the machine. Checkpoints and RUN/config.yaml hold the derived values.
DERIVED_FIELDS = ("batch_size", "lr", "warmup_steps", "num_workers")

# preset -> (batch_size, peak lr) of an unset batch_size / lr. The learning rate a model takes
# grows as it shrinks (Kaplan et al. 2020, appendix D.6); BERT's 1e-4 moves a tiny model's MLM
# output bias by at most 0.02 in 300 steps and leaves its loss a nat above 1e-3's (BENCHMARKS.md).
PRESET_TRAINING = {
    "tiny": (32, 1e-3),  # measured at 300 steps: beats 1e-4, 3e-4, 3e-3; 0.2 s a step on 2 cores
    "mini": (64, 5e-4),  # mini to medium: between tiny and base on a log scale, not measured
    "small": (128, 3e-4),
    "medium": (128, 2e-4),
    "base": (256, 1e-4),  # BERT (Devlin et al. 2019): batch 256, 1e-4
    "large": (256, 1e-4),  # BERT-large, the same recipe
}

WARMUP_FRACTION = 0.06
"""An unset warmup_steps is this fraction of max_steps: RoBERTa's 30k of 500k steps (Liu et al.
2019). A fraction, unlike BERT's fixed 10k steps, lets a 300-step run reach its peak at step 18
while a 1M-step run still warms up for 60k."""

CPU_MAX_BATCH_SIZE = 32
"""An unset batch_size is at most this on a CPU, where a step of 256 base-sized examples of 128
tokens (6 N T: about 1.7e13 FLOPs) takes minutes at a laptop's 100-300 GFLOP/s; at 32 a tiny step
takes 0.2 s on 2 cores (BENCHMARKS.md)."""

MAX_DEFAULT_WORKERS = 4
"""DataLoader workers of an unset num_workers: cores per rank - 1 (one core trains), at most
this, and none with 2 cores or fewer: there a worker only competes with training."""


OPTIMIZER_SHARDING = ("none", "zero1")

RESUME_MAY_CHANGE = ("max_steps", "optimizer_sharding")
"""Fields a config given with --resume may change from the recorded one: the schedule's length,
and how the optimizer state is laid out over the ranks (the checkpoint holds it whole)."""


class ConfigError(typed_config.ConfigError):
    """Every problem of a training config, one per line (``problems`` holds them)."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "invalid training config")


@dataclass(frozen=True)
class TrainConfig:
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "base"})
    """``preset`` (one of trainer.model.PRESETS: tiny, mini, small, medium, base, large) and any
    ModelConfig field to override, e.g. ``share_layers: all``, ``embedding_size: 128``,
    ``pre_layernorm: true``, ``dropout: 0.0``. vocab_size, max_seq_len, objective and
    pad_token_id come from the shards' manifest (if given they must match it)."""
    batch_size: int | None = None
    """Global batch in examples, over all ranks and accumulation steps; at most 65536 (the
    largest batch BERT has been trained with, LAMB: You et al. 2020). Unset: the preset's
    (PRESET_TRAINING: tiny 32 ... base 256), at most 32 on a CPU."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step on each rank; batch_size must be a multiple of
    world size * grad_accum_steps."""
    max_steps: int = 100_000
    """Optimizer steps of the whole run; the schedule ends here."""
    lr: float | None = None
    """Peak learning rate (after warmup), in (0, 1]: an AdamW step moves each weight by about
    lr, so more than 1 only destroys the model. Unset: the preset's (PRESET_TRAINING: tiny
    1e-3 ... base 1e-4)."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay, on matrices and embeddings only (not on biases and
    LayerNorm weights)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW beta1, beta2."""
    eps: float = 1e-6
    """AdamW epsilon (BERT's 1e-6)."""
    warmup_steps: int | None = None
    """Linear warmup from lr / warmup_steps to lr. Unset: 6% of max_steps (RoBERTa's
    30k of 500k), so the schedule follows --max-steps; at most max_steps."""
    schedule: str = "linear"
    """Decay after warmup: "linear" or "cosine", down to lr * min_lr_ratio at max_steps."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of lr."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this; 0 disables clipping (the norm is still logged)."""
    precision: str = "auto"
    """"auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" or "fp32"."""
    compile: bool = False
    """Wrap the model in torch.compile (fixed sequence length keeps the shapes static; with
    unpad the shapes vary from batch to batch, so compiling pays off less)."""
    unpad: bool = True
    """Spend no compute on padding: embeddings, projections, FFN and heads run on the real
    tokens only, attention on each batch trimmed to its longest example (trainer.model,
    ``PreTrainingModel(unpad=True)``). The outputs equal the padded computation's within float
    rounding; false computes every position of max_seq_len (static shapes)."""
    log_every: int = 10
    """Write the metrics of every log_every-th step (and the last one)."""
    eval_every: int = 1_000
    """Evaluate on the held-out split every eval_every steps; 0 never."""
    eval_batches: int = 10
    """Global batches per evaluation (the same held-out examples and masks every time)."""
    checkpoint_every: int = 1_000
    """Write a checkpoint every checkpoint_every steps; 0 only at the end."""
    seed: int = 0
    """Seeds the initialization, the data order, the masks and dropout."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    """Dynamic masking (trainer.data.MaskingConfig)."""
    shuffle: str = "global"
    """The training order: "global", one seeded permutation of the whole training set per
    epoch (every step draws from every shard, so a shard cache must hold the whole set); or
    "shards", for a set larger than the local disk: each epoch permutes the shards, walks them
    in windows of shuffle_window_shards, and permutes the examples within each window
    (trainer.data.ShardWindowOrder). A cache (--shard-cache-limit) then needs about two
    windows' files: the window read and the next, prefetched (BENCHMARKS.md: windowed shard
    order). Its held-out examples come from a few reserved shards (the fewest, in a fixed
    order, holding 10 x eval_examples; trainer.data.reserved_eval_split), so the first
    evaluation fetches those, not the whole set. Either is a function of (seed, epoch,
    position): --resume is exact."""
    shuffle_window_shards: int = DEFAULT_WINDOW_SHARDS
    """Under shuffle: shards, the shards whose examples are mixed together: larger mixes
    better (each batch draws from more shards and documents) and needs a larger cache."""
    eval_examples: int = 1_000
    """Examples held out for evaluation (at most a tenth of the corpus); 0 disables it."""
    num_workers: int | None = None
    """DataLoader worker processes building batches (per rank); 0 builds them in the training
    process. Unset: fits the cores: 0 with 2 or fewer per rank, else cores - 1, at most 4."""
    optimizer_sharding: str = "none"
    """"none" or "zero1": under torchrun, shard AdamW's state (two fp32 moments per parameter)
    across the ranks with torch's ZeroRedundancyOptimizer (ZeRO stage 1): each rank keeps and
    updates about 1/world_size of it, then broadcasts its updated parameters. The updates are
    those of plain AdamW; checkpoints hold the whole state (gathered on rank 0), so a run
    resumes with or without it, and --resume may change it. No effect in one process."""

    def errors(self) -> list[str]:
        problems = _type_problems(self)
        if problems:  # the range checks below assume the types
            return problems
        problems += _model_problems(self.model)
        # (lr and min_lr_ratio have closed ranges below, which refuse inf and nan too)
        problems += [f"{name}: must be a finite number, got {getattr(self, name)}"
                     for name in ("weight_decay", "eps", "grad_clip")
                     if not math.isfinite(getattr(self, name))]
        unset = {name for name in DERIVED_FIELDS if getattr(self, name) is None}
        positive = ("batch_size", "grad_accum_steps", "max_steps", "log_every", "eval_batches")
        problems += [f"{name}: must be at least 1, got {getattr(self, name)}"
                     for name in positive if name not in unset and getattr(self, name) < 1]
        if "batch_size" not in unset and self.batch_size > MAX_BATCH_SIZE:
            problems.append(f"batch_size: must be at most {MAX_BATCH_SIZE}, got "
                            f"{self.batch_size}")
        not_negative = ("weight_decay", "warmup_steps", "grad_clip", "eval_every",
                        "checkpoint_every", "eval_examples", "num_workers")
        problems += [f"{name}: must be 0 or more, got {getattr(self, name)}"
                     for name in not_negative if name not in unset and getattr(self, name) < 0]
        if "batch_size" not in unset and self.batch_size >= 1 and (
                self.grad_accum_steps >= 1 and self.batch_size % self.grad_accum_steps):
            problems.append(f"batch_size {self.batch_size} is not a multiple of "
                            f"grad_accum_steps {self.grad_accum_steps}")
        if "lr" not in unset and not 0 < self.lr <= 1:
            problems.append(f"lr: must be in (0, 1], got {self.lr}")
        if not self.eps > 0:
            problems.append(f"eps: must be > 0, got {self.eps}")
        if len(self.betas) != 2 or not all(
                isinstance(beta, (int, float)) and not isinstance(beta, bool)
                and 0.0 <= beta < 1.0 for beta in self.betas):
            problems.append(f"betas: expected two numbers in [0, 1), got {list(self.betas)}")
        if self.schedule not in ("linear", "cosine"):
            problems.append(f"schedule: expected linear or cosine, got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        if self.precision not in ("auto", "bf16", "fp32"):
            problems.append(f"precision: expected auto, bf16 or fp32, got {self.precision!r}")
        if self.shuffle not in SHUFFLES:
            problems.append(f"shuffle: expected {' or '.join(SHUFFLES)}, got {self.shuffle!r}")
        if self.shuffle_window_shards < 1:
            problems.append(f"shuffle_window_shards: must be at least 1, got "
                            f"{self.shuffle_window_shards}")
        if self.optimizer_sharding not in OPTIMIZER_SHARDING:
            problems.append(f"optimizer_sharding: expected none or zero1, got "
                            f"{self.optimizer_sharding!r}")
        return problems

    def __post_init__(self) -> None:
        problems = self.errors()
        if problems:
            raise ConfigError(problems)


def _type_problems(config: Any) -> list[str]:
    """Types of a directly constructed config (YAML input is already checked by the builder)."""
    problems = []
    for name, hint in typing.get_type_hints(type(config)).items():
        value = getattr(config, name)
        if typed_config.optional_type(hint) is not None:  # ``T | None``: None means derived
            if value is None:
                continue
            hint = typed_config.optional_type(hint)
        if dataclasses.is_dataclass(hint) or typing.get_origin(hint) in (dict, tuple):
            expected = (hint if dataclasses.is_dataclass(hint) else typing.get_origin(hint))
        else:
            expected = (int, float) if hint is float else hint
        if not isinstance(value, expected) or (hint in (int, float) and isinstance(value, bool)):
            problems.append(f"{name}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return problems


def _model_problems(model: dict[str, Any]) -> list[str]:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    problems = [f"model.{key}: unknown key (known: preset, {', '.join(sorted(known))})"
                for key in sorted(set(model) - known - {"preset"})]
    preset = model.get("preset", "base")
    if preset not in PRESETS:
        problems.append(f"model.preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    if problems:
        return problems
    overrides = {key: value for key, value in model.items() if key != "preset"}
    try:  # ModelConfig validates itself; a placeholder vocabulary stands in for the manifest's
        ModelConfig.preset(preset, **{"vocab_size": 1000, **overrides})
    except ValueError as error:
        return [f"model: {line.strip()}" for line in str(error).splitlines()[1:]]
    return []


def resolved_config(config: TrainConfig, *, max_steps: int | None = None,
                    device_type: str = "cpu", cores: int | None = None) -> TrainConfig:
    """The config a run trains with: ``max_steps`` (``--max-steps``) applied, and every unset
    field of DERIVED_FIELDS derived from the preset, max_steps, the device type and ``cores``
    per rank (default: ``available_cores()``). ConfigError if warmup_steps exceeds max_steps.

    The one place where defaults are decided: setup, ``--print-config`` and, through the
    config a checkpoint records, a resumed run all use its result."""
    if max_steps is not None:
        config = dataclasses.replace(config, max_steps=max_steps)
    batch_size, lr = PRESET_TRAINING[config.model.get("preset", "base")]
    if device_type == "cpu":
        batch_size = min(batch_size, CPU_MAX_BATCH_SIZE)
    cores = available_cores() if cores is None else cores
    derived = {
        "batch_size": batch_size,
        "lr": lr,
        "warmup_steps": max(1, round(WARMUP_FRACTION * config.max_steps)),
        "num_workers": 0 if cores <= 2 else min(MAX_DEFAULT_WORKERS, cores - 1),
    }
    config = dataclasses.replace(config, **{name: value for name, value in derived.items()
                                            if getattr(config, name) is None})
    if config.warmup_steps > config.max_steps:
        raise ConfigError([f"warmup_steps: {config.warmup_steps} is longer than the run "
                           f"(max_steps {config.max_steps}), so the learning rate would never "
                           "reach its peak; lower it, or leave it unset for "
                           f"{WARMUP_FRACTION:.0%} of max_steps"])
    return config


def available_cores() -> int:
    """CPU cores this process may use, shared by the ranks torchrun starts on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def config_from_dict(data: dict[str, Any] | None) -> TrainConfig:
    """A TrainConfig from a (partial) mapping; ConfigError listing every problem."""
    try:
        return typed_config.build_config(TrainConfig, data)
    except typed_config.ConfigError as error:
        raise ConfigError(error.problems) from None


def load_config(path: str | os.PathLike | None, preset: str | None = None) -> TrainConfig:
    """The YAML file at ``path`` (None: defaults) merged over the defaults; ``preset`` replaces
    ``model.preset``. ConfigError names the file and every problem."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError([f"{path}: cannot be read as YAML: {error}"]) from None
        if not isinstance(data, dict):
            raise ConfigError([f"{path}: the top level must be a mapping"])
    if preset is not None:
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        data = {**data, "model": {**model, "preset": preset}}
    try:
        return config_from_dict(data)
    except ConfigError as error:
        where = f"{path}: " if path is not None else ""
        raise ConfigError([where + problem for problem in error.problems]) from None


def config_reference() -> str:
    """The README's training config reference, from the dataclasses' docstrings."""
    lines = typed_config.reference_table(TrainConfig) + ["", "`masking`:", ""]
    return "\n".join(lines + typed_config.reference_table(MaskingConfig))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain dict (tuples as lists) of a config: YAML, JSON and torch.load(weights_only)."""
    return typed_config.to_plain_dict(config)

