"""The pretraining loop: masked LM + sentence order (or next sentence) on verified shards.

Read top to bottom: config, learning-rate schedule, errors and checks, checkpoints, metrics,
setup, the train step, validate, fit, and the two entry points ``pretrain`` and ``export``.

Layout of a run folder (``RUN``)::

    config.yaml                  the effective TrainConfig
    metrics.jsonl                one JSON object per logged step (train) and per evaluation
    tensorboard/                 the same scalars, when TensorBoard is installed
    checkpoints/step-000123.pt   model, optimizer, step, RNG states, config, manifest summary
    checkpoints/latest           the file name of the newest checkpoint

Decisions:

* **Losses are global means.** The MLM loss is the cross-entropy summed over the masked tokens of
  a micro-batch divided by the masked tokens of the whole global step (all micro-batches, all
  ranks: one all-reduce of a count), the pair loss likewise over the global batch; DDP averages
  gradients, so each rank scales by the world size. Gradient accumulation and any number of
  ranks therefore give the gradient of exactly the single-process, single-batch loss.
* **Exact resume.** Data order and masks depend on (seed, epoch, position) only (see
  ``trainer.data``), the learning rate on the step only (``get_lr``), and the dropout RNG is
  reseeded from (seed, step, rank) before every step; so a run resumed from a checkpoint
  computes the same losses step for step as an uninterrupted one (bit-identical on CPU). The
  RNG states are saved and restored as well, for anything else that draws from them.
* **``--stop-after N`` is an absolute step**: training stops once N optimizer steps are done in
  total (counting those before a resume), with a checkpoint; the schedule still runs to
  ``max_steps``.
* **Logged metrics are those of the logged step** (as nanoGPT does), not window means, so that
  a resumed run logs what the uninterrupted run logs; tokens/s and MFU are measured over the
  window since the last log.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
import typing
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from schemas import typed_config
from schemas.shard_format import ShardManifest, sha256_file
from schemas.shard_reader import read_manifest, shards_folder
from schemas.shard_verify import verify_shards
from trainer.data import (
    IGNORE_INDEX,
    Batches,
    MaskingConfig,
    PretrainingData,
    hash_keys,
    held_out_examples,
    step_positions,
)
from trainer.model import PRESETS, ModelConfig, PreTrainingModel

CHECKPOINT_FORMAT = 1
MANIFEST_FIELDS = ("vocab_size", "max_seq_len", "objective", "pad_token_id")
"""ModelConfig fields that come from the shards' manifest, not from the config."""
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Dense bf16 peak FLOP/s by GPU name (SXM parts), for MFU."""


# --- config ------------------------------------------------------------------------------------

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
    batch_size: int = 256
    """Global batch in examples, over all ranks and accumulation steps."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step on each rank; batch_size must be a multiple of
    world size * grad_accum_steps."""
    max_steps: int = 100_000
    """Optimizer steps of the whole run; the schedule ends here."""
    lr: float = 1e-4
    """Peak learning rate (after warmup)."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay, on matrices and embeddings only (not on biases and
    LayerNorm weights)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW beta1, beta2."""
    eps: float = 1e-6
    """AdamW epsilon (BERT's 1e-6)."""
    warmup_steps: int = 1_000
    """Linear warmup from lr / warmup_steps to lr."""
    schedule: str = "linear"
    """Decay after warmup: "linear" or "cosine", down to lr * min_lr_ratio at max_steps."""
    min_lr_ratio: float = 0.0
    """Final learning rate as a fraction of lr."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this; 0 disables clipping (the norm is still logged)."""
    precision: str = "auto"
    """"auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" or "fp32"."""
    compile: bool = False
    """Wrap the model in torch.compile (fixed sequence length keeps the shapes static)."""
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
    eval_examples: int = 1_000
    """Examples held out for evaluation (at most a tenth of the corpus); 0 disables it."""
    num_workers: int = 4
    """DataLoader worker processes building batches; 0 builds them in the training process."""

    def errors(self) -> list[str]:
        problems = _type_problems(self)
        if problems:  # the range checks below assume the types
            return problems
        problems += _model_problems(self.model)
        positive = ("batch_size", "grad_accum_steps", "max_steps", "log_every", "eval_batches")
        problems += [f"{name}: must be at least 1, got {getattr(self, name)}"
                     for name in positive if getattr(self, name) < 1]
        not_negative = ("weight_decay", "warmup_steps", "grad_clip", "eval_every",
                        "checkpoint_every", "eval_examples", "num_workers")
        problems += [f"{name}: must be 0 or more, got {getattr(self, name)}"
                     for name in not_negative if getattr(self, name) < 0]
        if self.batch_size >= 1 and self.grad_accum_steps >= 1 and (
                self.batch_size % self.grad_accum_steps):
            problems.append(f"batch_size {self.batch_size} is not a multiple of "
                            f"grad_accum_steps {self.grad_accum_steps}")
        if not self.lr > 0:
            problems.append(f"lr: must be > 0, got {self.lr}")
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


# --- schedule ----------------------------------------------------------------------------------

def get_lr(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based: the number of steps already taken).

    Linear warmup over ``warmup_steps`` (``lr * (step + 1) / warmup_steps``), then linear or
    cosine decay from ``lr`` to ``lr * min_lr_ratio`` at ``max_steps``, constant after.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = config.max_steps - config.warmup_steps
    progress = 1.0 if decay_steps <= 0 else min(1.0, (step - config.warmup_steps) / decay_steps)
    if config.schedule == "cosine":
        remaining = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        remaining = 1.0 - progress
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * remaining)


# --- errors and checks -------------------------------------------------------------------------

class PretrainError(Exception):
    """A problem the user can fix (shards, run folder, checkpoint); the message says which."""


def manifest_summary(shards_dir: str, manifest: ShardManifest) -> dict[str, Any]:
    """What a checkpoint records of its shards, to refuse incompatible ones on resume."""
    return {
        "shards_dir": os.path.abspath(shards_dir),
        "objective": manifest.objective,
        "max_seq_len": manifest.max_seq_len,
        "vocab_size": manifest.vocab_size,
        "tokenizer_file": manifest.tokenizer_file,
        "tokenizer_sha256": manifest.tokenizer_sha256,
        "special_tokens": dict(manifest.special_tokens),
        "examples": manifest.examples,
    }


def check_shards(shards_dir: str) -> ShardManifest:
    """The manifest of a folder that ``verify_shards`` passes; PretrainError listing the
    problems otherwise."""
    problems = verify_shards(shards_dir)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more"
                                           if len(problems) > 5 else "")
        raise PretrainError(f"{shards_dir} failed verification ({len(problems)} problems): "
                            f"{shown}")
    return read_manifest(shards_dir)


def check_compatible(shards_dir: str, manifest: ShardManifest, recorded: dict[str, Any],
                     what: str) -> None:
    """PretrainError naming every field where the shards differ from ``recorded``."""
    current = manifest_summary(shards_dir, manifest)
    keys = ("vocab_size", "max_seq_len", "objective", "tokenizer_sha256", "special_tokens")
    mismatches = [f"{key} {current[key]!r} != {recorded[key]!r}" for key in keys
                  if key in recorded and current[key] != recorded[key]]
    if mismatches:
        raise PretrainError(f"the shards in {shards_dir} do not match {what}: "
                            + "; ".join(mismatches) + " (shards != recorded)")


def model_config_for(config: TrainConfig, manifest: ShardManifest, shards_dir: str
                     ) -> ModelConfig:
    """The ModelConfig of a new run: the preset, the config's overrides, the manifest's sizes."""
    overrides = {key: value for key, value in config.model.items() if key != "preset"}
    derived = {"vocab_size": manifest.vocab_size, "max_seq_len": manifest.max_seq_len,
               "objective": manifest.objective,
               "pad_token_id": manifest.special_tokens["[PAD]"]}
    mismatches = [f"model.{key} {overrides[key]!r} != {value!r}"
                  for key, value in derived.items() if key in overrides
                  and overrides[key] != value]
    if mismatches:
        raise PretrainError(f"the shards in {shards_dir} do not match the config: "
                            + "; ".join(mismatches) + " (config != manifest)")
    return ModelConfig.preset(config.model.get("preset", "base"), **{**overrides, **derived})


# --- checkpoints -------------------------------------------------------------------------------

def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def latest_checkpoint(run_dir: str) -> str | None:
    """Path of the checkpoint named by ``RUN/checkpoints/latest``; None when there is none."""
    pointer = os.path.join(checkpoint_dir(run_dir), "latest")
    if not os.path.exists(pointer):
        return None
    with open(pointer, encoding="utf-8") as handle:
        name = handle.read().strip()
    path = os.path.join(checkpoint_dir(run_dir), name)
    if not os.path.exists(path):
        raise PretrainError(f"{pointer} names {name}, which does not exist")
    return path


def load_checkpoint(path: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's payload, loaded with ``weights_only=True`` (no code runs); on the CPU
    by default (load_state_dict copies the tensors to where the parameters are)."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise PretrainError(f"{path}: cannot be loaded ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise PretrainError(f"{path}: not a winnow checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def _atomic_write(path: str, write: typing.Callable[[str], None]) -> None:
    """``write(temporary path)`` then rename over ``path``: readers never see a partial file."""
    temporary = f"{path}.tmp-{os.getpid()}"
    write(temporary)
    os.replace(temporary, path)


def _write_text(path: str, text: str) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)

    _atomic_write(path, write)


def rng_states() -> dict[str, Any]:
    """python, numpy, torch and CUDA RNG states as tensors and plain numbers (weights_only)."""
    version, python_state, gauss = random.getstate()
    _, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = states["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])


# --- metrics -----------------------------------------------------------------------------------

class MetricsLog:
    """metrics.jsonl, TensorBoard (when installed) and a progress line; a no-op off rank 0."""

    def __init__(self, run_dir: str, start_step: int, end_step: int, enabled: bool):
        self.enabled = enabled
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.tensorboard = self.bar = None
        if not enabled:
            return
        _keep_entries_up_to(self.path, start_step)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("note: TensorBoard is not installed (pip install tensorboard); metrics go "
                  "to metrics.jsonl only", file=sys.stderr)
        else:
            self.tensorboard = SummaryWriter(os.path.join(run_dir, "tensorboard"))
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            self.bar = tqdm(total=end_step, initial=start_step, unit="step", dynamic_ncols=True)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        if self.tensorboard is not None:
            for key, value in entry.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tensorboard.add_scalar(f"{entry['split']}/{key}", value, entry["step"])
        shown = {key: entry[key] for key in entry
                 if key.endswith(("loss", "accuracy")) or key in ("lr", "tokens_per_s")}
        text = " ".join(f"{key}={value:.4g}" for key, value in shown.items())
        if self.bar is not None:
            self.bar.set_postfix_str(f"{entry['split']} {text}", refresh=False)
        else:
            print(f"step {entry['step']} {entry['split']}: {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _keep_entries_up_to(path: str, step: int) -> None:
    """Drop the entries after ``step`` (logged after the checkpoint a run resumes from)."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip() and json.loads(line)["step"] <= step]
    _write_text(path, "".join(lines))


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of a known GPU; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def _summarize(sums: list[float], objective: str) -> dict[str, float]:
    """Losses and accuracies from STAT sums (global over ranks)."""
    mlm_loss_sum, mlm_correct, pair_loss_sum, pair_correct, masked, examples = sums[:6]
    mlm_loss = mlm_loss_sum / max(masked, 1)
    pair_loss = pair_loss_sum / max(examples, 1)
    return {
        "loss": mlm_loss + pair_loss,
        "mlm_loss": mlm_loss,
        "pair_loss": pair_loss,
        "mlm_accuracy": mlm_correct / max(masked, 1),
        f"{objective}_accuracy": pair_correct / max(examples, 1),
    }


# --- setup -------------------------------------------------------------------------------------

@dataclass
class Trainer:
    """Everything ``setup`` builds; ``fit`` and ``validate`` run on it."""

    config: TrainConfig
    model_config: ModelConfig
    model: nn.Module
    """What forward is called on: the model, maybe compiled and DDP-wrapped."""
    raw_model: PreTrainingModel
    """The bare model: its state dict is what checkpoints hold."""
    optimizer: torch.optim.Optimizer
    device: torch.device
    rank: int = 0
    world_size: int = 1
    step: int = 0
    """Optimizer steps done."""
    run_dir: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    train_data: PretrainingData | None = None
    eval_data: PretrainingData | None = None

    @property
    def autocast(self) -> Any:
        bf16 = self.config.precision == "bf16" or (
            self.config.precision == "auto" and self.device.type == "cuda")
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16)

    @property
    def objective(self) -> str:
        return self.model_config.objective


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's RANK/WORLD_SIZE/LOCAL_RANK; joins the process
    group (nccl on CUDA, gloo on CPU) when the world is larger than one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


def build_model(model_config: ModelConfig, config: TrainConfig, device: torch.device,
                world_size: int = 1) -> tuple[nn.Module, PreTrainingModel]:
    """(the model to call, the bare model); initialized from ``config.seed``."""
    torch.manual_seed(config.seed)
    raw_model = PreTrainingModel(model_config).to(device)
    model: nn.Module = torch.compile(raw_model) if config.compile else raw_model
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, raw_model


def build_optimizer(raw_model: nn.Module, config: TrainConfig,
                    device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings, none on biases and LayerNorm weights
    (every parameter with fewer than 2 dimensions); fused on CUDA."""
    decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps,
                             fused=device.type == "cuda")


def _rank0_result(rank: int, world_size: int, compute: typing.Callable[[], Any]) -> Any:
    """``compute()`` on rank 0, its result sent to every rank (e.g. one shard verification)."""
    result = [compute() if rank == 0 else None]
    if world_size > 1:
        torch.distributed.broadcast_object_list(result, src=0)
    return result[0]


def setup(shards_dir: str | None, run_dir: str, config: TrainConfig | None = None, *,
          resume: bool = False, max_steps: int | None = None) -> Trainer:
    """Joins the process group, verifies the shards, builds or restores model, optimizer and
    data. A new run refuses a RUN that holds checkpoints; ``resume`` refuses one without."""
    rank, world_size, device = init_distributed()
    checkpoint = _checkpoint_to_resume(run_dir, resume)
    if shards_dir is None:
        if checkpoint is None:
            raise PretrainError("--shards is required for a new run")
        shards_dir = checkpoint["manifest"]["shards_dir"]
    shards_dir = shards_folder(shards_dir)
    problems = _rank0_result(rank, world_size, lambda: _verification_problem(shards_dir))
    if problems:
        raise PretrainError(problems)
    manifest = read_manifest(shards_dir)
    config, model_config = _run_configs(shards_dir, manifest, run_dir, config, checkpoint)
    if max_steps is not None:
        config = dataclasses.replace(config, max_steps=max_steps)
    if config.batch_size % (world_size * config.grad_accum_steps):
        raise PretrainError(f"batch_size {config.batch_size} is not a multiple of world size "
                            f"{world_size} * grad_accum_steps {config.grad_accum_steps}")

    model, raw_model = build_model(model_config, config, device, world_size)
    optimizer = build_optimizer(raw_model, config, device)
    trainer = Trainer(config=config, model_config=model_config, model=model,
                      raw_model=raw_model, optimizer=optimizer, device=device, rank=rank,
                      world_size=world_size, run_dir=run_dir,
                      manifest=manifest_summary(shards_dir, manifest))
    if checkpoint is not None:
        raw_model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        set_rng_states(checkpoint["rng"])
        trainer.step = checkpoint["step"]
    _setup_data(trainer, shards_dir)
    if rank == 0:
        os.makedirs(checkpoint_dir(run_dir), exist_ok=True)
        _write_text(os.path.join(run_dir, "config.yaml"),
                    yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return trainer


def _run_configs(shards_dir: str, manifest: ShardManifest, run_dir: str,
                 config: TrainConfig | None, checkpoint: dict[str, Any] | None
                 ) -> tuple[TrainConfig, ModelConfig]:
    """A new run's config (default: TrainConfig()) and model config from it and the manifest;
    a resumed run's recorded ones, after checking the shards against the checkpoint."""
    if checkpoint is None:
        config = config or TrainConfig()
        return config, model_config_for(config, manifest, shards_dir)
    check_compatible(shards_dir, manifest, checkpoint["manifest"], f"the checkpoint of {run_dir}")
    recorded = checkpoint["config"]
    if config is not None:
        changed = sorted(key for key, value in config_to_dict(config).items()
                         if key != "max_steps" and recorded.get(key) != value)
        if changed:
            raise PretrainError("a resumed run keeps the config recorded in its checkpoint; "
                                f"the given config differs in: {', '.join(changed)}")
    return config_from_dict(recorded), ModelConfig(**checkpoint["model_config"])


def _checkpoint_to_resume(run_dir: str, resume: bool) -> dict[str, Any] | None:
    latest = latest_checkpoint(run_dir)
    if resume and latest is None:
        raise PretrainError(f"--resume: no checkpoint in {checkpoint_dir(run_dir)}")
    if not resume and latest is not None:
        raise PretrainError(f"{run_dir} already holds a run (checkpoint "
                            f"{os.path.basename(latest)}); pass --resume to continue it or "
                            "choose another --output")
    return load_checkpoint(latest) if resume else None


def _verification_problem(shards_dir: str) -> str | None:
    try:
        check_shards(shards_dir)
    except PretrainError as error:
        return str(error)
    return None


def _setup_data(trainer: Trainer, shards_dir: str) -> None:
    config = trainer.config
    trainer.train_data = PretrainingData(shards_dir, config.seed, "train", config.eval_examples,
                                         config.masking)
    if held_out_examples(len(trainer.train_data.reader), config.eval_examples):
        trainer.eval_data = PretrainingData(shards_dir, config.seed, "eval",
                                            config.eval_examples, config.masking)


# --- the train step ----------------------------------------------------------------------------

STATS = ("mlm_loss_sum", "mlm_correct", "pair_loss_sum", "pair_correct", "masked", "examples",
         "tokens", "padded_tokens")
"""What a step accumulates (sums over its micro-batches), all-reduced when logged."""


def _split(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    size = len(batch["pair_labels"]) // parts
    return [{key: value[i * size:(i + 1) * size] for key, value in batch.items()}
            for i in range(parts)]


def _forward_sums(trainer: Trainer, micro: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """[MLM loss sum, MLM correct, pair loss sum, pair correct] of one micro-batch (on device)."""
    with trainer.autocast:
        out = trainer.model(**micro)
    mlm_loss_sum = F.cross_entropy(out.mlm_logits.float(), out.mlm_targets, reduction="sum")
    pair_loss_sum = F.cross_entropy(out.pair_logits.float(), micro["pair_labels"],
                                    reduction="sum")
    mlm_correct = (out.mlm_logits.argmax(-1) == out.mlm_targets).sum()
    pair_correct = (out.pair_logits.argmax(-1) == micro["pair_labels"]).sum()
    return [mlm_loss_sum, mlm_correct, pair_loss_sum, pair_correct]


def _counts(batch: dict[str, torch.Tensor]) -> list[int]:
    """[masked, examples, real tokens, padded tokens] of a CPU batch."""
    return [int((batch["mlm_labels"] != IGNORE_INDEX).sum()), len(batch["pair_labels"]),
            int(batch["attention_mask"].sum()), batch["input_ids"].numel()]


def _all_reduce(trainer: Trainer, values: torch.Tensor) -> torch.Tensor:
    if trainer.world_size > 1:
        torch.distributed.all_reduce(values)
    return values


def _global_count(trainer: Trainer, count: int) -> float | torch.Tensor:
    """The sum of ``count`` over ranks (at least 1): a float in one process, else a device
    tensor (copied from pinned memory without blocking, then all-reduced)."""
    if trainer.world_size == 1:
        return float(max(count, 1))
    total = torch.tensor([float(count)], pin_memory=trainer.device.type == "cuda")
    return _all_reduce(trainer, total.to(trainer.device, non_blocking=True)).clamp(min=1)


def train_step(trainer: Trainer, batch: dict[str, torch.Tensor]
               ) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """One optimizer step on this rank's part of the global batch (CPU tensors).

    Returns this rank's loss sums and correct counts (the first four STATS, on device), its
    counts (the last four, from the CPU batch) and the global gradient norm before clipping;
    nothing here waits for the GPU.
    """
    config, device = trainer.config, trainer.device
    torch.manual_seed(int(hash_keys(config.seed, trainer.step, trainer.rank)[0]))  # dropout
    counts = _counts(batch)
    masked = _global_count(trainer, counts[0])
    micro_batches = _split(batch, config.grad_accum_steps)
    sums = torch.zeros(4, device=device)
    for number, micro in enumerate(micro_batches):
        micro = {key: value.to(device, non_blocking=True) for key, value in micro.items()}
        last = number == len(micro_batches) - 1
        sync = nullcontext() if last or trainer.world_size == 1 else trainer.model.no_sync()
        with sync:
            parts = _forward_sums(trainer, micro)
            # Global means (see the module docstring); DDP divides gradients by world_size.
            loss = (parts[0] / masked + parts[2] / config.batch_size) * trainer.world_size
            loss.backward()
        sums += torch.stack([part.detach().float() for part in parts])
    grad_norm = torch.nn.utils.clip_grad_norm_(
        trainer.raw_model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
    lr = get_lr(trainer.step, config)
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.step += 1
    return sums, counts, grad_norm


# --- validate ----------------------------------------------------------------------------------

@torch.no_grad()
def validate(trainer: Trainer) -> dict[str, Any]:
    """Losses and accuracies on the first ``eval_batches`` global batches of the held-out split
    (the same examples and masks at every evaluation)."""
    config = trainer.config
    trainer.model.eval()
    totals = torch.zeros(len(STATS), device=trainer.device)
    for number in range(config.eval_batches):
        batch = trainer.eval_data.batch(step_positions(number, config.batch_size, trainer.rank,
                                                       trainer.world_size))
        for micro in _split(batch, config.grad_accum_steps):
            counts = _counts(micro)
            micro = {key: value.to(trainer.device) for key, value in micro.items()}
            totals += torch.cat([torch.stack([p.float() for p in _forward_sums(trainer, micro)]),
                                 torch.tensor(counts, dtype=torch.float32,
                                              device=trainer.device)])
    trainer.model.train()
    sums = _all_reduce(trainer, totals).tolist()
    return {"step": trainer.step, "split": "eval", **_summarize(sums, trainer.objective)}


# --- fit ---------------------------------------------------------------------------------------

def fit(trainer: Trainer, end_step: int) -> None:
    """Train from ``trainer.step`` to ``end_step``: log, evaluate and checkpoint on schedule,
    and checkpoint at ``end_step``."""
    log = MetricsLog(trainer.run_dir, trainer.step, end_step, enabled=trainer.rank == 0)
    try:
        _fit(trainer, end_step, log)
    finally:
        log.close()


def _fit(trainer: Trainer, end_step: int, log: MetricsLog) -> None:
    config = trainer.config
    batches = iter(Batches(trainer.train_data, config.batch_size, trainer.step, trainer.rank,
                           trainer.world_size, config.num_workers,
                           pin_memory=trainer.device.type == "cuda"))
    window = [0, 0]  # real and padded tokens of this rank since the last measurement
    started = time.perf_counter()
    trainer.model.train()
    while trainer.step < end_step:
        sums, counts, grad_norm = train_step(trainer, next(batches))
        window = [window[0] + counts[2], window[1] + counts[3]]
        log.step()
        step = trainer.step
        if step % config.log_every == 0 or step == config.max_steps:
            stats = torch.cat([sums, torch.tensor(counts + window, dtype=torch.float32,
                                                  device=trainer.device)])
            log.write(_train_entry(trainer, stats, grad_norm, time.perf_counter() - started))
            window = [0, 0]
            started = time.perf_counter()
        if config.eval_every and step % config.eval_every == 0 and trainer.eval_data:
            log.write(validate(trainer))
            started = time.perf_counter()
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == end_step:
            save_checkpoint(trainer)
            started = time.perf_counter()


def _train_entry(trainer: Trainer, stats: torch.Tensor, grad_norm: torch.Tensor,
                 seconds: float) -> dict[str, Any]:
    """The metrics.jsonl entry of the step just taken: its global losses and accuracies (STATS
    of the step), and throughput over the window (two more sums: real and padded tokens)."""
    reduced = _all_reduce(trainer, stats).tolist()
    tokens, padded = reduced[len(STATS):]
    seconds = max(seconds, 1e-9)
    peak = peak_flops(trainer.device)
    flops = trainer.model_config.flops_per_token(trainer.model_config.max_seq_len,
                                                 trainer.config.masking.mlm_probability)
    return {
        "step": trainer.step,
        "split": "train",
        **_summarize(reduced, trainer.objective),
        "lr": get_lr(trainer.step - 1, trainer.config),
        "grad_norm": float(grad_norm),
        "epoch": (trainer.step * trainer.config.batch_size - 1) // len(trainer.train_data),
        "tokens_per_s": tokens / seconds,
        "padded_tokens_per_s": padded / seconds,
        "mfu": None if peak is None else padded / seconds * flops / (peak * trainer.world_size),
    }


def save_checkpoint(trainer: Trainer) -> str | None:
    """``RUN/checkpoints/step-%06d.pt`` and the ``latest`` pointer, each written atomically
    (rank 0 only). The payload holds tensors, dicts, lists, str, int, float, bool and None only,
    so it loads with ``torch.load(weights_only=True)``."""
    if trainer.rank != 0:
        return None
    name = f"step-{trainer.step:06d}.pt"
    path = os.path.join(checkpoint_dir(trainer.run_dir), name)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": trainer.step,
        "examples_seen": trainer.step * trainer.config.batch_size,
        "epoch": trainer.step * trainer.config.batch_size // len(trainer.train_data),
        "model": trainer.raw_model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "rng": rng_states(),
        "config": config_to_dict(trainer.config),
        "model_config": dataclasses.asdict(trainer.model_config),
        "manifest": trainer.manifest,
    }
    _atomic_write(path, lambda temporary: torch.save(payload, temporary))
    _write_text(os.path.join(checkpoint_dir(trainer.run_dir), "latest"), name + "\n")
    return path


# --- entry points ------------------------------------------------------------------------------

def pretrain(shards_dir: str | None, run_dir: str, config: TrainConfig | None = None, *,
             resume: bool = False, max_steps: int | None = None,
             stop_after: int | None = None) -> int:
    """Train (or resume) a run into ``run_dir``; returns the step reached.

    ``max_steps`` replaces the config's (the schedule's length); ``stop_after`` stops at that
    absolute step with a checkpoint, leaving the schedule unchanged.
    """
    try:
        trainer = setup(shards_dir, run_dir, config, resume=resume, max_steps=max_steps)
        end_step = trainer.config.max_steps
        if stop_after is not None:
            end_step = min(end_step, stop_after)
        if trainer.step >= end_step:
            print(f"{run_dir} is at step {trainer.step}: nothing to do (end step {end_step})",
                  file=sys.stderr)
        else:
            fit(trainer, end_step)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return trainer.step


def export(run_dir: str, output_dir: str) -> str:
    """Writes the latest checkpoint of ``run_dir`` as a Hugging Face folder (see
    trainer.export), with the tokenizer of the shards the run was trained on."""
    from trainer.export import export_huggingface

    path = latest_checkpoint(run_dir)
    if path is None:
        raise PretrainError(f"no checkpoint in {checkpoint_dir(run_dir)}")
    checkpoint = load_checkpoint(path)
    manifest = checkpoint["manifest"]
    tokenizer = os.path.join(manifest["shards_dir"], manifest["tokenizer_file"])
    if not os.path.exists(tokenizer):
        raise PretrainError(f"{tokenizer} (the tokenizer of the run's shards) is missing")
    if sha256_file(tokenizer) != manifest["tokenizer_sha256"]:
        raise PretrainError(f"{tokenizer} changed since training (sha256 differs from the "
                            "checkpoint's)")
    model = PreTrainingModel(ModelConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    try:
        return export_huggingface(model, tokenizer, output_dir, manifest["special_tokens"])
    except ValueError as error:  # an architecture Hugging Face cannot represent
        raise PretrainError(f"cannot export {path}: {error}") from None
