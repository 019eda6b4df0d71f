"""The pretraining loop: masked LM + sentence order (or next sentence) on verified shards.

Read top to bottom: learning-rate schedule, checks of the shards, setup, the train step,
validate, fit, and the two entry points ``pretrain`` and ``export``. The config is in
``trainer.config``, checkpoint files in ``trainer.checkpoints``, the metrics log and the sums it
is made from in ``trainer.metrics``.

Layout of a run folder (``RUN``)::

    config.yaml                  the effective TrainConfig (unset fields resolved)
    metrics.jsonl                one JSON object per logged step (train) and per evaluation
    tensorboard/                 the same scalars, when TensorBoard is installed
    checkpoints/step-000123.pt   model, optimizer, step, RNG states, config, manifest summary
                                 (with the shards' manifest_sha256, checked on --resume)
    checkpoints/step-000123.pt.sha256   its sha256, checked on load (trainer.checkpoints)
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
* **Checkpoints hold the whole optimizer state.** With ``optimizer_sharding: zero1`` each rank
  keeps part of the AdamW state; saving gathers it on rank 0 (``optimizer_state``) in plain
  AdamW's format, and loading gives each rank its part, so a checkpoint resumes with the setting
  on or off.
* **``--stop-after N`` is an absolute step**: training stops once N optimizer steps are done in
  total (counting those before a resume), with a checkpoint; the schedule still runs to
  ``max_steps``.
* **Unset means derived, once.** batch_size, lr, warmup_steps and num_workers left unset are
  derived from the preset, max_steps and the machine by ``trainer.config.resolved_config``
  when a run starts (and by ``--print-config``); config.yaml and every checkpoint hold the
  derived values, so a resumed run keeps them.
* **Logged metrics are those of the logged step** (as nanoGPT does), not window means, so that
  a resumed run logs what the uninterrupted run logs; tokens/s and MFU are measured over the
  window since the last log.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import typing
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml
from torch import nn

from winnow.schemas.shard_cache import CacheOptions, ShardCacheError, open_shards
from winnow.schemas.shard_format import ShardManifest
from winnow.schemas.shard_reader import ShardReader, read_manifest, shards_folder
from winnow.schemas.shard_verify import verify_shards
from winnow.schemas.storage import is_remote
from winnow.trainer.checkpoints import (
    CHECKPOINT_FORMAT,
    PretrainError,
    checkpoint_dir,
    folder_refusal,
    latest_checkpoint,
    load_checkpoint,
    remove_stray_temporaries,
    rng_states,
    set_rng_states,
    write_checkpoint,
    write_folder_atomically,
    write_text,
)
from winnow.trainer.config import (
    RESUME_MAY_CHANGE,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    resolved_config,
)
from winnow.trainer.data import (
    Batches,
    PretrainingData,
    hash_keys,
    held_out_examples,
    step_positions,
)
from winnow.trainer.metrics import (
    MetricsLog,
    Sums,
    batch_counts,
    last_entries,
    output_sums,
    peak_flops,
    summarize,
)
from winnow.trainer.model import ModelConfig, PreTrainingModel

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

def manifest_summary(shards_dir: str, manifest: ShardManifest) -> dict[str, Any]:
    """What a checkpoint records of its shards, to refuse incompatible ones on resume."""
    return {
        "shards_dir": shards_dir if is_remote(shards_dir) else os.path.abspath(shards_dir),
        "objective": manifest.objective,
        "max_seq_len": manifest.max_seq_len,
        "vocab_size": manifest.vocab_size,
        "tokenizer_file": manifest.tokenizer_file,
        "tokenizer_sha256": manifest.tokenizer_sha256,
        "special_tokens": dict(manifest.special_tokens),
        "examples": manifest.examples,
        "tokens": manifest.tokens,
        # covers every shard file's and the tokenizer's sha256: equal hashes, equal data
        "manifest_sha256": manifest.to_obj()["manifest_sha256"],
    }


def check_shards(shards_dir: str) -> ShardManifest:
    """The manifest of a folder that ``verify_shards`` passes and that holds examples;
    PretrainError listing the problems, or saying that there are no examples, otherwise."""
    problems = verify_shards(shards_dir)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more"
                                           if len(problems) > 5 else "")
        raise PretrainError(f"{shards_dir} failed verification ({len(problems)} problems): "
                            f"{shown}")
    manifest = read_manifest(shards_dir)
    if not manifest.examples:  # a valid, empty set: the curation kept nothing to pair
        raise PretrainError(f"no examples in the shards: {shards_dir} is an empty shard set")
    return manifest


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


def check_same_data(shards_dir: str, manifest: ShardManifest, recorded: dict[str, Any],
                    what: str, allow_changed: bool) -> None:
    """PretrainError when the shards hold other examples than those ``recorded`` was trained
    on (re-curated into the same folder, or another folder); with ``allow_changed``, a warning.
    Checkpoints written before the hash was recorded are not checked."""
    current = manifest_summary(shards_dir, manifest)["manifest_sha256"]
    before = recorded.get("manifest_sha256")
    if before is None or before == current:
        return
    change = (f"the shards in {shards_dir} are not those {what} was trained on "
              f"(manifest_sha256 {current[:12]} != {before[:12]}: other or re-curated data)")
    if not allow_changed:
        raise PretrainError(f"{change}; pass --allow-changed-shards to continue on them")
    print(f"warning: {change}; continuing on them (--allow-changed-shards)", file=sys.stderr)


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
    def bf16(self) -> bool:
        """Whether the forward passes run under bf16 autocast (else fp32)."""
        return self.config.precision == "bf16" or (
            self.config.precision == "auto" and self.device.type == "cuda")

    @property
    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

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
    raw_model = PreTrainingModel(model_config, unpad=config.unpad).to(device)
    model: nn.Module = torch.compile(raw_model) if config.compile else raw_model
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, raw_model


def build_optimizer(raw_model: nn.Module, config: TrainConfig, device: torch.device,
                    world_size: int = 1) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices and embeddings, none on biases and LayerNorm weights
    (every parameter with fewer than 2 dimensions); fused on CUDA. With optimizer_sharding
    zero1 and several ranks, inside torch's ZeroRedundancyOptimizer: each rank holds the AdamW
    state of whole parameters making up about 1/world_size of them (greedy by size)."""
    decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in raw_model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    settings = {"lr": config.lr, "betas": tuple(config.betas), "eps": config.eps,
                "fused": device.type == "cuda"}
    if config.optimizer_sharding == "zero1" and world_size > 1:
        # imported here: torch.distributed.optim takes seconds to import (TorchScript)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW, **settings)
    return torch.optim.AdamW(groups, **settings)


def sharded(optimizer: torch.optim.Optimizer) -> bool:
    """Whether each rank holds part of the optimizer state (torch's ZeroRedundancyOptimizer)."""
    return hasattr(optimizer, "consolidate_state_dict")


def optimizer_state(optimizer: torch.optim.Optimizer, rank: int) -> dict[str, Any] | None:
    """The whole optimizer state on rank 0, in plain AdamW's format whether sharded or not (so a
    checkpoint resumes either way); None on other ranks. Every rank must call it: a sharded
    state is gathered (a collective)."""
    if sharded(optimizer):
        optimizer.consolidate_state_dict(to=0)
    return optimizer.state_dict() if rank == 0 else None


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load a whole state (``optimizer_state``); sharded, each rank keeps its part."""
    optimizer.load_state_dict(state)
    if sharded(optimizer):
        # It also keeps a device copy of this rank's part in the wrapper's own ``state``, which
        # nothing reads (step and consolidate_state_dict use the inner AdamW's): without this
        # a resumed run would hold its part twice.
        optimizer.state.clear()
        # And it puts every "step" on the CPU, where fused AdamW (CUDA) cannot read it: the
        # inner AdamW's own load places each value as it needs (copying nothing else).
        optimizer.optim.load_state_dict(optimizer.optim.state_dict())


def _rank0_result(rank: int, world_size: int, compute: typing.Callable[[], Any]) -> Any:
    """``compute()`` on rank 0, its result sent to every rank (e.g. one shard verification)."""
    result = [compute() if rank == 0 else None]
    if world_size > 1:
        torch.distributed.broadcast_object_list(result, src=0)
    return result[0]


def setup(shards_dir: str | None, run_dir: str, config: TrainConfig | None = None, *,
          resume: bool = False, max_steps: int | None = None,
          allow_changed_shards: bool = False, cache: CacheOptions | None = None) -> Trainer:
    """Joins the process group, verifies the shards, builds or restores model, optimizer and
    data. A new run refuses a RUN that holds checkpoints; ``resume`` refuses one without, and
    shards other than the checkpoint's unless ``allow_changed_shards``. Remote shards
    (gs://...), or local ones with ``cache``, are read through a shard cache (see
    ``open_training_shards``)."""
    rank, world_size, device = init_distributed()
    if rank == 0:
        _remove_stray_temporaries(run_dir)
    checkpoint = _checkpoint_to_resume(run_dir, resume)
    if shards_dir is None:
        if checkpoint is None:
            raise PretrainError("--shards is required for a new run")
        shards_dir = checkpoint["manifest"]["shards_dir"]
    shards_dir, reader = open_training_shards(shards_dir, cache, rank, world_size)
    manifest = reader.manifest
    config, model_config = _run_configs(shards_dir, manifest, run_dir, config, checkpoint,
                                        allow_changed_shards)
    config = run_config(config, resumed=checkpoint is not None, max_steps=max_steps,
                        device_type=device.type)
    check_cache_limit(reader, config)
    if config.batch_size % (world_size * config.grad_accum_steps):
        raise PretrainError(f"batch_size {config.batch_size} is not a multiple of world size "
                            f"{world_size} * grad_accum_steps {config.grad_accum_steps}")

    if config.optimizer_sharding != "none" and world_size == 1 and rank == 0:
        print(f"note: optimizer_sharding {config.optimizer_sharding} has no effect in one "
              "process (nothing to shard the optimizer state across): plain AdamW",
              file=sys.stderr)
    model, raw_model = build_model(model_config, config, device, world_size)
    optimizer = build_optimizer(raw_model, config, device, world_size)
    trainer = Trainer(config=config, model_config=model_config, model=model,
                      raw_model=raw_model, optimizer=optimizer, device=device, rank=rank,
                      world_size=world_size, run_dir=run_dir,
                      manifest=manifest_summary(shards_dir, manifest))
    if checkpoint is not None:
        raw_model.load_state_dict(checkpoint["model"])
        load_optimizer_state(optimizer, checkpoint["optimizer"])
        set_rng_states(checkpoint["rng"])
        trainer.step = checkpoint["step"]
    _setup_data(trainer, reader)
    if rank == 0:
        os.makedirs(checkpoint_dir(run_dir), exist_ok=True)
        write_text(os.path.join(run_dir, "config.yaml"),
                    yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return trainer


def run_config(config: TrainConfig, *, resumed: bool, max_steps: int | None,
               device_type: str) -> TrainConfig:
    """The config a run trains with, given ``--max-steps``: a new run's resolved
    (``resolved_config``); a resumed run's as its checkpoint recorded it (already resolved; it
    keeps its warmup and workers even on a shorter schedule or another machine)."""
    if not resumed:
        return resolved_config(config, max_steps=max_steps, device_type=device_type)
    return config if max_steps is None else dataclasses.replace(config, max_steps=max_steps)


def recorded_config(run_dir: str, given: TrainConfig | None = None) -> TrainConfig:
    """The config a resume of ``run_dir`` trains with: its latest checkpoint's, with what
    ``given`` (--config/--preset) may change (``resumed_config``); PretrainError without a
    checkpoint or when ``given`` differs in a key that may not change."""
    checkpoint = _checkpoint_to_resume(run_dir, resume=True)
    return resumed_config(checkpoint["config"], given, f"the checkpoint of {run_dir}")


def resumed_config(recorded: dict[str, Any], given: TrainConfig | None,
                   what: str) -> TrainConfig:
    """The ``recorded`` config of a checkpoint (``what``), with the optimizer sharding of
    ``given`` when one is given. Keys ``given`` leaves unset are not compared: they mean "as
    recorded"; any other difference outside RESUME_MAY_CHANGE is refused."""
    if given is not None:
        # a checkpoint older than a config key recorded its default (e.g. shuffle: global)
        complete = config_to_dict(config_from_dict(recorded))
        changed = sorted(key for key, value in config_to_dict(given).items()
                         if key not in RESUME_MAY_CHANGE and value is not None
                         and complete.get(key) != value)
        if changed:
            raise PretrainError(f"a resumed run keeps the config recorded in {what}; the "
                                f"given config differs in: {', '.join(changed)}")
        # the checkpoint holds the whole optimizer state: the given layout over ranks applies
        recorded = {**recorded, "optimizer_sharding": given.optimizer_sharding}
    return config_from_dict(recorded)


def _run_configs(shards_dir: str, manifest: ShardManifest, run_dir: str,
                 config: TrainConfig | None, checkpoint: dict[str, Any] | None,
                 allow_changed_shards: bool) -> tuple[TrainConfig, ModelConfig]:
    """A new run's config (default: TrainConfig(), still to be resolved) and model config from
    it and the manifest; a resumed run's recorded ones, after checking the shards against the
    checkpoint. Fields the given config leaves unset are not compared: they mean "as recorded"."""
    if checkpoint is None:
        config = config or TrainConfig()
        return config, model_config_for(config, manifest, shards_dir)
    what = f"the checkpoint of {run_dir}"
    check_compatible(shards_dir, manifest, checkpoint["manifest"], what)
    check_same_data(shards_dir, manifest, checkpoint["manifest"], what, allow_changed_shards)
    return (resumed_config(checkpoint["config"], config, what),
            ModelConfig(**checkpoint["model_config"]))


def _checkpoint_to_resume(run_dir: str, resume: bool) -> dict[str, Any] | None:
    latest = latest_checkpoint(run_dir)
    if resume and latest is None:
        raise PretrainError(f"--resume: no checkpoint in {checkpoint_dir(run_dir)}")
    if not resume and latest is not None:
        raise PretrainError(f"{run_dir} already holds a run (checkpoint "
                            f"{os.path.basename(latest)}); pass --resume to continue it or "
                            "choose another --output")
    return load_checkpoint(latest) if resume else None


def _remove_stray_temporaries(run_dir: str) -> None:
    """The temporaries a killed or out-of-disk run left (a checkpoint's is as large as it)."""
    for folder in (run_dir, checkpoint_dir(run_dir)):
        removed = remove_stray_temporaries(folder) if os.path.isdir(folder) else []
        if removed:
            print(f"note: removed {len(removed)} temporary file(s) an interrupted run left in "
                  f"{folder}: {', '.join(removed)}", file=sys.stderr)


def open_training_shards(shards_dir: str, cache: CacheOptions | None, rank: int = 0,
                         world_size: int = 1) -> tuple[str, ShardReader]:
    """(the shard folder, a reader of it). A local folder without ``cache`` is verified whole
    (``verify_shards``, on rank 0) and read in place. A remote one (gs://...), or any with
    ``cache``, is read through a shard cache: its manifest now (checksum checked), each file
    when first needed, its sha256 checked against the manifest before use: a file that
    matches is byte for byte the one curation wrote. ``verify_shards`` (token ids, index
    bounds, ...) is not run there, as it reads every file, documents.jsonl and provenance.npy
    included; ``winnow shards verify gs://...`` runs it once where the shards are."""
    if cache is None and not is_remote(shards_dir):
        shards_dir = shards_folder(shards_dir)
        problems = _rank0_result(rank, world_size, lambda: _verification_problem(shards_dir))
        if problems:
            raise PretrainError(problems)
        return shards_dir, ShardReader(shards_dir)
    try:
        reader = open_shards(shards_dir, cache)
    except ShardCacheError as error:
        raise PretrainError(str(error)) from None
    if not reader.manifest.examples:
        raise PretrainError(f"no examples in the shards: {shards_dir} is an empty shard set")
    return reader.cache.location, reader


def _verification_problem(shards_dir: str) -> str | None:
    try:
        check_shards(shards_dir)
    except PretrainError as error:
        return str(error)
    return None


def _setup_data(trainer: Trainer, reader: ShardReader) -> None:
    config = trainer.config
    order = {"shuffle": config.shuffle, "window_shards": config.shuffle_window_shards}
    trainer.train_data = PretrainingData(reader, config.seed, "train", config.eval_examples,
                                         config.masking, **order)
    if held_out_examples(len(reader), config.eval_examples):
        trainer.eval_data = PretrainingData(reader, config.seed, "eval",
                                            config.eval_examples, config.masking, **order)
    trainer.train_data.prefetch(trainer.step * config.batch_size)


def cache_bytes_needed(reader: ShardReader, config: TrainConfig) -> tuple[int, int, str]:
    """(bytes, shards, why) of the training files a run holds in its shard cache at once:
    under ``shuffle: global`` every shard (every step draws from the whole set); under
    ``shuffle: shards`` two windows (the one read and the next, which a batch may straddle) of
    the largest shards, plus one more for evaluation when it runs: it reads its reserved shards
    (``trainer.data.reserved_eval_split``) one at a time, and counting the largest shard keeps
    the bound whichever they are (curated shards are of about one size)."""
    sizes = sorted((sum(reader.cache.shard_sizes(number)) for number in
                    range(len(reader.manifest.shards))), reverse=True)
    if config.shuffle == "global":
        return sum(sizes), len(sizes), "every shard"
    evaluates = bool(config.eval_every
                     and held_out_examples(len(reader), config.eval_examples))
    held = min(len(sizes), 2 * config.shuffle_window_shards + evaluates)
    why = (f"two windows of shuffle_window_shards {config.shuffle_window_shards}"
           + (", plus one for evaluation" if evaluates else ""))
    return sum(sizes[:held]), held, why


def check_cache_limit(reader: ShardReader, config: TrainConfig) -> None:
    """PretrainError, before training, when the shard cache's limit is below what the run
    holds at once (``cache_bytes_needed``), naming the numbers."""
    limit = reader.cache.limit_bytes if reader.cache is not None else None
    if limit is None:
        return
    needed, held, why = cache_bytes_needed(reader, config)
    if needed <= limit:
        return
    location = reader.cache.location
    if config.shuffle == "global":
        raise PretrainError(
            f"the shard cache limit ({limit:,} bytes) is below the {needed:,} bytes training "
            f"reads from {location} (tokens.bin and index.npy of every shard); raise "
            "--shard-cache-limit, or train with shuffle: shards (the cache then holds two "
            "windows of shards)")
    raise PretrainError(
        f"the shard cache limit ({limit:,} bytes) is below the {needed:,} bytes that "
        f"shuffle: shards holds at once from {location}: tokens.bin and index.npy of the "
        f"{held} largest of its {len(reader.manifest.shards)} shards ({why}); raise "
        "--shard-cache-limit or lower shuffle_window_shards")


# --- the train step ----------------------------------------------------------------------------

def _split(batch: dict[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    size = len(batch["pair_labels"]) // parts
    return [{key: value[i * size:(i + 1) * size] for key, value in batch.items()}
            for i in range(parts)]


def _forward_sums(trainer: Trainer, micro: dict[str, torch.Tensor]) -> Sums:
    """The loss sums and correct counts of one micro-batch (on device, with autograd)."""
    with trainer.autocast:
        out = trainer.model(**micro)
    return output_sums(out, micro["pair_labels"])


def _all_reduce(trainer: Trainer, values: torch.Tensor) -> torch.Tensor:
    if trainer.world_size > 1:
        torch.distributed.all_reduce(values)
    return values


def _all_reduce_sums(trainer: Trainer, sums: Sums) -> Sums:
    """``sums`` added over ranks, as Python floats: one all-reduce of a float32 vector holding
    the fields in order."""
    vector = torch.stack([torch.as_tensor(value, dtype=torch.float32, device=trainer.device)
                          for value in sums.values()])
    return Sums(*_all_reduce(trainer, vector).tolist())


def _global_count(trainer: Trainer, count: int) -> float | torch.Tensor:
    """The sum of ``count`` over ranks (at least 1): a float in one process, else a device
    tensor (copied from pinned memory without blocking, then all-reduced)."""
    if trainer.world_size == 1:
        return float(max(count, 1))
    total = torch.tensor([float(count)], pin_memory=trainer.device.type == "cuda")
    return _all_reduce(trainer, total.to(trainer.device, non_blocking=True)).clamp(min=1)


def train_step(trainer: Trainer, batch: dict[str, torch.Tensor]) -> tuple[Sums, torch.Tensor]:
    """One optimizer step on this rank's part of the global batch (CPU tensors).

    Returns this rank's sums (loss sums and correct counts on device, counts from the CPU
    batch) and the global gradient norm before clipping; nothing here waits for the GPU.
    """
    config, device = trainer.config, trainer.device
    torch.manual_seed(int(hash_keys(config.seed, trainer.step, trainer.rank)[0]))  # dropout
    sums = batch_counts(batch)
    masked = _global_count(trainer, sums.masked)
    micro_batches = _split(batch, config.grad_accum_steps)
    for number, micro in enumerate(micro_batches):
        micro = {key: value.to(device, non_blocking=True) for key, value in micro.items()}
        last = number == len(micro_batches) - 1
        sync = nullcontext() if last or trainer.world_size == 1 else trainer.model.no_sync()
        with sync:
            micro_sums = _forward_sums(trainer, micro)
            # Global means (see the module docstring); DDP divides gradients by world_size.
            loss = (micro_sums.mlm_loss_sum / masked
                    + micro_sums.pair_loss_sum / config.batch_size) * trainer.world_size
            loss.backward()
        sums = sums + micro_sums.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(
        trainer.raw_model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
    lr = get_lr(trainer.step, config)
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.step += 1
    return sums, grad_norm


# --- validate ----------------------------------------------------------------------------------

@torch.no_grad()
def validate(trainer: Trainer) -> dict[str, Any]:
    """Losses and accuracies on the first ``eval_batches`` global batches of the held-out split
    (the same examples and masks at every evaluation)."""
    config = trainer.config
    trainer.model.eval()
    sums = Sums()
    for number in range(config.eval_batches):
        batch = trainer.eval_data.batch(step_positions(number, config.batch_size, trainer.rank,
                                                       trainer.world_size))
        for micro in _split(batch, config.grad_accum_steps):
            counts = batch_counts(micro)
            micro = {key: value.to(trainer.device) for key, value in micro.items()}
            sums = sums + counts + _forward_sums(trainer, micro)
    trainer.model.train()
    return {"step": trainer.step, "split": "eval",
            **summarize(_all_reduce_sums(trainer, sums), trainer.objective)}


# --- fit ---------------------------------------------------------------------------------------

ESTIMATE_STEPS = 10
"""Steps timed for the estimate of a run's duration, after the first step (which builds the
DataLoader, allocates and, with torch.compile, compiles: it is not typical)."""


def startup_summary(trainer: Trainer, end_step: int) -> list[str]:
    """What a run is about to do, printed before the first step: parameters, data, tokens per
    step, steps per epoch, device and precision, and the schedule."""
    config, model_config, manifest = trainer.config, trainer.model_config, trainer.manifest
    total = sum(p.numel() for p in trainer.raw_model.parameters())
    # the embedding module: word, position and token-type tables, their LayerNorm (and ALBERT's
    # E -> H projection); the MLM head's output bias, tied weights aside, counts as non-embedding
    embedding = sum(p.numel() for p in trainer.raw_model.embeddings.parameters())
    train_examples = len(trainer.train_data)
    positions = config.batch_size * model_config.max_seq_len
    real = config.batch_size * manifest["tokens"] / max(manifest["examples"], 1)
    steps_per_epoch = train_examples / config.batch_size
    start = "" if trainer.step == 0 else f", resuming at step {trainer.step}"
    return [
        f"model: {config.model.get('preset', 'base')} ({model_config.num_layers} layers, "
        f"hidden {model_config.hidden_size}), {total:,} parameters: {embedding:,} embedding, "
        f"{total - embedding:,} non-embedding",
        f"shards: {manifest['examples']:,} examples ({train_examples:,} train, "
        f"{manifest['examples'] - train_examples:,} held out), {manifest['tokens']:,} tokens, "
        f"sequences of {model_config.max_seq_len}",
        f"step: {config.batch_size} examples = {positions:,} token positions (about "
        f"{real:,.0f} real tokens); {steps_per_epoch:,.1f} steps per epoch, "
        f"{config.max_steps:,} steps = {config.max_steps / steps_per_epoch:,.1f} epochs",
        f"device: {trainer.device.type}, {'bf16 autocast' if trainer.bf16 else 'fp32'}, "
        f"{trainer.world_size} process(es){_sharding_note(trainer)}, "
        f"{torch.get_num_threads()} threads, "
        f"{config.num_workers} DataLoader workers",
        f"schedule: peak lr {config.lr:g} after {config.warmup_steps} warmup steps, "
        f"{config.schedule} decay to {config.lr * config.min_lr_ratio:g} at step "
        f"{config.max_steps:,}; this run ends at step {end_step:,}{start}",
    ]


def _sharding_note(trainer: Trainer) -> str:
    if sharded(trainer.optimizer):
        return " with the AdamW state sharded over them (ZeRO-1)"
    return ""


def estimate_line(seconds: float, steps: int, steps_left: int) -> str:
    """The duration estimate from ``steps`` timed steps that took ``seconds``."""
    per_step = seconds / steps
    return (f"estimate: {per_step:.3g} s/step over {steps} steps: about "
            f"{_duration(per_step * steps_left)} for the {steps_left:,} steps left")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def fit(trainer: Trainer, end_step: int) -> None:
    """Train from ``trainer.step`` to ``end_step``: print the start-up summary, log, evaluate
    and checkpoint on schedule, and checkpoint at ``end_step``."""
    if trainer.rank == 0:
        print("\n".join(startup_summary(trainer, end_step)), file=sys.stderr, flush=True)
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
    tokens = padded_tokens = 0  # of this rank since the last measurement
    started = time.perf_counter()
    timed_from = (trainer.step + 1, None)  # (step, time) the estimate's clock starts at
    trainer.model.train()
    while trainer.step < end_step:
        sums, grad_norm = train_step(trainer, next(batches))
        tokens, padded_tokens = tokens + sums.tokens, padded_tokens + sums.padded_tokens
        log.step()
        step = trainer.step
        if step == timed_from[0]:
            timed_from = (step, time.perf_counter())
        elif step == timed_from[0] + ESTIMATE_STEPS and step < end_step:
            log.note(estimate_line(time.perf_counter() - timed_from[1], ESTIMATE_STEPS,
                                   end_step - step))
        if step % config.log_every == 0 or step == config.max_steps:
            window = dataclasses.replace(sums, tokens=tokens, padded_tokens=padded_tokens)
            log.write(_train_entry(trainer, window, grad_norm, time.perf_counter() - started))
            tokens = padded_tokens = 0
            started = time.perf_counter()
        if config.eval_every and step % config.eval_every == 0 and trainer.eval_data:
            log.write(validate(trainer))
            started = time.perf_counter()
        if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == end_step:
            save_checkpoint(trainer)
            started = time.perf_counter()


def _train_entry(trainer: Trainer, sums: Sums, grad_norm: torch.Tensor,
                 seconds: float) -> dict[str, Any]:
    """The metrics.jsonl entry of the step just taken: its global losses and accuracies, and
    throughput over ``seconds`` (``sums.tokens`` and ``padded_tokens`` count that window)."""
    sums = _all_reduce_sums(trainer, sums)
    seconds = max(seconds, 1e-9)
    peak = peak_flops(trainer.device)
    flops = trainer.model_config.flops_per_token(trainer.model_config.max_seq_len,
                                                 trainer.config.masking.mlm_probability)
    # MFU counts the tokens the model computes on: unpadded, the real ones only
    computed = sums.tokens if trainer.config.unpad else sums.padded_tokens
    return {
        "step": trainer.step,
        "split": "train",
        **summarize(sums, trainer.objective),
        "lr": get_lr(trainer.step - 1, trainer.config),
        "grad_norm": float(grad_norm),
        "epoch": (trainer.step * trainer.config.batch_size - 1) // len(trainer.train_data),
        "tokens_per_s": sums.tokens / seconds,
        "padded_tokens_per_s": sums.padded_tokens / seconds,
        "mfu": (None if peak is None
                else computed / seconds * flops / (peak * trainer.world_size)),
    }


def save_checkpoint(trainer: Trainer) -> str | None:
    """``RUN/checkpoints/step-%06d.pt`` and the ``latest`` pointer, each written atomically
    (rank 0 only; every rank calls it, to gather a sharded optimizer state). The payload holds
    tensors, dicts, lists, str, int, float, bool and None only, so it loads with
    ``torch.load(weights_only=True)``."""
    optimizer = optimizer_state(trainer.optimizer, trainer.rank)
    if trainer.rank != 0:
        return None
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": trainer.step,
        "examples_seen": trainer.step * trainer.config.batch_size,
        "epoch": trainer.step * trainer.config.batch_size // len(trainer.train_data),
        "model": trainer.raw_model.state_dict(),
        "optimizer": optimizer,
        "rng": rng_states(),
        "config": config_to_dict(trainer.config),
        "model_config": dataclasses.asdict(trainer.model_config),
        "manifest": trainer.manifest,
    }
    return write_checkpoint(trainer.run_dir, trainer.step, payload)


# --- entry points ------------------------------------------------------------------------------

def pretrain(shards_dir: str | None, run_dir: str, config: TrainConfig | None = None, *,
             resume: bool = False, max_steps: int | None = None,
             stop_after: int | None = None, allow_changed_shards: bool = False,
             cache: CacheOptions | None = None) -> int:
    """Train (or resume) a run into ``run_dir``; returns the step reached.

    ``max_steps`` replaces the config's (the schedule's length); ``stop_after`` stops at that
    absolute step with a checkpoint, leaving the schedule unchanged; ``allow_changed_shards``
    lets a resumed run continue on shards other than those its checkpoint was trained on.
    """
    trainer = None
    try:
        trainer = setup(shards_dir, run_dir, config, resume=resume, max_steps=max_steps,
                        allow_changed_shards=allow_changed_shards, cache=cache)
        end_step = trainer.config.max_steps
        if stop_after is not None:
            end_step = min(end_step, stop_after)
        if trainer.step >= end_step:
            print(f"{run_dir} is at step {trainer.step}: nothing to do (end step {end_step})",
                  file=sys.stderr)
        else:
            fit(trainer, end_step)
    finally:
        for data in (trainer.train_data, trainer.eval_data) if trainer else ():
            if data is not None:
                data.reader.close()  # a cache's files in use: another run may evict them now
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return trainer.step


def export(run_dir: str, output_dir: str, overwrite: bool = False) -> str:
    """Writes the latest checkpoint of ``run_dir`` as a Hugging Face folder (see
    trainer.export), with the tokenizer of the shards the run was trained on and a model card
    (README.md, trainer.model_card). The folder is
    written beside ``output_dir`` and renamed into place (``write_folder_atomically``), so an
    interrupted export leaves an older one whole; a non-empty ``output_dir`` is refused
    unless ``overwrite``."""
    from winnow.trainer.export import export_huggingface
    from winnow.trainer.model_card import MODEL_CARD_FILE, model_card
    from winnow.trainer.pretrained import load_run

    refusal = folder_refusal(output_dir, overwrite)
    if refusal is not None:
        raise PretrainError(refusal)
    pretrained = load_run(run_dir)

    def write(folder: str) -> None:
        export_huggingface(pretrained.model, pretrained.tokenizer_path, folder,
                           pretrained.special_tokens)
        card = model_card(pretrained, last_entries(run_dir, pretrained.step))
        write_text(os.path.join(folder, MODEL_CARD_FILE), card)

    try:
        write_folder_atomically(output_dir, write, overwrite)
    except ValueError as error:  # an architecture Hugging Face cannot represent
        raise PretrainError(f"cannot export the latest checkpoint of {run_dir}: "
                            f"{error}") from None
    return output_dir
