"""A pretrained encoder to evaluate or fine-tune: from a ``winnow pretrain`` run folder or from a
folder written by ``winnow export``.

``load_pretrained(path)`` tells the two apart by their files:

* **run folder** (``RUN/checkpoints/latest``): the latest checkpoint, loaded through
  ``trainer.checkpoints`` (its sha256 is checked; a ``latest`` pointer leading out of the folder
  is refused), with the tokenizer of the shards it was trained on (which must still have the
  sha256 the checkpoint recorded), and the objective, max_seq_len and special token ids of those
  shards as the checkpoint recorded them;
* **export folder** (``config.json``, ``model.safetensors``, ``spiece.model``): the inverse of
  ``trainer.export``: the Hugging Face BertConfig/AlbertConfig becomes a ModelConfig, the
  tensors are copied into the parameters they were exported from (``exported_tensors`` names the
  pairs, so the mapping is written once, in ``trainer.export``), the special token ids come from
  the SentencePiece model and the objective from ``winnow_objective``.

Anything else is one line of ``PretrainError``. ``Pretrained.untrained(seed)`` is the same
architecture and tokenizer with fresh weights: the baseline of every comparison.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from winnow.schemas.shard_format import sha256_file, special_tokens_from_model
from winnow.trainer.checkpoints import (
    PretrainError,
    checkpoint_dir,
    latest_checkpoint,
    load_checkpoint,
)
from winnow.trainer.export import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, exported_tensors
from winnow.trainer.model import ModelConfig, PreTrainingModel

HF_ARCHITECTURES = ("BertForPreTraining", "AlbertForPreTraining", "BertForMaskedLM",
                    "AlbertForMaskedLM")


@dataclass(frozen=True)
class Pretrained:
    """A model in eval mode with what it needs to read text like its pretraining data."""

    model: PreTrainingModel
    config: ModelConfig
    tokenizer_path: str
    """The SentencePiece model the shards were tokenized with."""
    special_tokens: dict[str, int]
    """``{"[PAD]": id, "[UNK]": id, "[CLS]": id, "[SEP]": id, "[MASK]": id}``."""
    source: str
    """The folder it was loaded from."""
    kind: str
    """``"run"``, ``"export"`` or ``"untrained"`` (see ``untrained``)."""
    step: int | None = None
    """Optimizer steps of a run's checkpoint; None for an export or an untrained model."""
    training: dict[str, Any] | None = None
    """A run checkpoint's record of how it was trained: ``{"config": the TrainConfig as a dict,
    "manifest": the summary of its shards (examples, tokens, tokenizer_sha256...)}``; None for
    an export or an untrained model."""

    @property
    def objective(self) -> str:
        """``"sop"`` or ``"nsp"``: what the pair head's label 1 means; ``"mlm"``: no pair
        head."""
        return self.config.objective

    @property
    def max_seq_len(self) -> int:
        """The pretraining sequence length, [CLS] A [SEP] B [SEP] included."""
        return self.config.max_seq_len

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def untrained(self, seed: int = 0) -> Pretrained:
        """The same architecture and tokenizer with weights freshly initialized from ``seed``
        (BERT's initialization), on the same device; the global RNG is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = PreTrainingModel(self.config)
        return dataclasses.replace(self, model=model.to(self.device).eval(), kind="untrained",
                                   step=None, training=None)


def folder_kind(path: str) -> str | None:
    """"run" for a winnow pretrain run folder (it has checkpoints/), else "export" for a
    winnow export folder (it has config.json), else None."""
    if os.path.isdir(checkpoint_dir(path)):
        return "run"
    if os.path.isfile(os.path.join(path, CONFIG_FILE)):
        return "export"
    return None


def load_pretrained(path: str, device: torch.device | str = "cpu") -> Pretrained:
    """The model of a run folder or an export folder (see the module docstring), in eval mode
    on ``device``; PretrainError, one line, for anything else."""
    kind = folder_kind(path)
    if kind == "run":
        pretrained = load_run(path)
    elif kind == "export":
        pretrained = _load_export(path)
    else:
        raise PretrainError(f"{path} is neither a winnow pretrain run folder (with "
                            f"checkpoints/) nor a winnow export folder (with {CONFIG_FILE})")
    pretrained.model.to(device).eval()
    return pretrained


def load_run(run_dir: str) -> Pretrained:
    """The latest checkpoint of a run folder, on the CPU (see the module docstring)."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise PretrainError(f"no checkpoint in {checkpoint_dir(run_dir)}")
    checkpoint = load_checkpoint(path)
    config = ModelConfig(**checkpoint["model_config"])
    model = PreTrainingModel(config)
    model.load_state_dict(checkpoint["model"])
    manifest = checkpoint["manifest"]
    return Pretrained(model, config, run_tokenizer(manifest), dict(manifest["special_tokens"]),
                      run_dir, "run", int(checkpoint["step"]),
                      {"config": checkpoint["config"], "manifest": manifest})


def run_tokenizer(manifest: dict[str, Any]) -> str:
    """The tokenizer of the shards a checkpoint was trained on (its recorded manifest summary);
    PretrainError when it is missing or changed since."""
    tokenizer = os.path.join(manifest["shards_dir"], manifest["tokenizer_file"])
    if not os.path.exists(tokenizer):
        raise PretrainError(f"{tokenizer} (the tokenizer of the run's shards) is missing")
    if sha256_file(tokenizer) != manifest["tokenizer_sha256"]:
        raise PretrainError(f"{tokenizer} changed since training (sha256 differs from the "
                            "checkpoint's)")
    return tokenizer


# --- export folders ----------------------------------------------------------------------------

def _load_export(folder: str) -> Pretrained:
    hf_config = _read_hf_config(folder)
    tokenizer = os.path.join(folder, TOKENIZER_FILE)
    weights = os.path.join(folder, WEIGHTS_FILE)
    for needed in (tokenizer, weights):
        if not os.path.isfile(needed):
            raise PretrainError(f"{folder} has {CONFIG_FILE} but no "
                                f"{os.path.basename(needed)}: not a winnow export folder")
    try:
        config = model_config_from_huggingface(hf_config)
        special_tokens = special_tokens_from_model(tokenizer)
    except (ValueError, RuntimeError, OSError) as error:
        raise PretrainError(f"{folder}: {' '.join(str(error).split())}") from None
    model = PreTrainingModel(config)
    _copy_exported_tensors(model, weights)
    return Pretrained(model, config, tokenizer, special_tokens, folder, "export")


def _read_hf_config(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            hf_config = json.load(handle)
    except (OSError, ValueError) as error:
        raise PretrainError(f"{path} cannot be read as JSON: {error}") from None
    architecture = (hf_config.get("architectures") or [None])[0] if isinstance(
        hf_config, dict) else None
    if architecture not in HF_ARCHITECTURES:
        raise PretrainError(f"{path}: architecture {architecture!r} is not one winnow exports "
                            f"({' or '.join(HF_ARCHITECTURES)})")
    return hf_config


def model_config_from_huggingface(hf_config: dict[str, Any]) -> ModelConfig:
    """The ModelConfig that ``trainer.export`` wrote as ``hf_config`` (BertConfig or
    AlbertConfig as a dict); ValueError for a configuration it never writes."""
    architecture = hf_config["architectures"][0]
    albert = architecture.startswith("Albert")
    problems = []
    if hf_config.get("hidden_act") != "gelu":
        problems.append(f"hidden_act {hf_config.get('hidden_act')!r} (winnow uses gelu)")
    share_layers, embedding_size = "none", None
    if albert:
        layers, groups = hf_config.get("num_hidden_layers"), hf_config.get("num_hidden_groups")
        if hf_config.get("inner_group_num", 1) != 1:
            problems.append(f"inner_group_num {hf_config['inner_group_num']} (winnow writes 1)")
        if groups not in (1, layers):
            problems.append(f"num_hidden_groups {groups} (winnow writes 1 or num_hidden_layers)")
        if hf_config.get("embedding_size") != hf_config.get("hidden_size"):
            embedding_size = hf_config.get("embedding_size")
        # export: share "all" -> 1 group; unshared -> one group per layer, and E != H (else BERT)
        share_layers = "all" if groups == 1 or embedding_size is None else "none"
    if problems:
        raise ValueError("not a configuration winnow exports: " + "; ".join(problems))
    return ModelConfig(
        vocab_size=hf_config["vocab_size"],
        max_seq_len=hf_config["max_position_embeddings"],
        num_layers=hf_config["num_hidden_layers"],
        hidden_size=hf_config["hidden_size"],
        num_heads=hf_config["num_attention_heads"],
        intermediate_size=hf_config["intermediate_size"],
        embedding_size=embedding_size,
        share_layers=share_layers,
        dropout=hf_config["hidden_dropout_prob"],
        attention_dropout=hf_config["attention_probs_dropout_prob"],
        type_vocab_size=hf_config["type_vocab_size"],
        layer_norm_eps=hf_config["layer_norm_eps"],
        objective=hf_config.get("winnow_objective", "mlm" if architecture.endswith("MaskedLM")
                                else "sop" if albert else "nsp"),
        pad_token_id=hf_config.get("pad_token_id", 0),
    )


def _copy_exported_tensors(model: PreTrainingModel, weights: str) -> None:
    """Each tensor of ``weights`` into the parameter (or the slice of one) it was exported
    from. A tensor export writes as a constant (ALBERT's identity embedding mapping when E = H)
    must hold that constant. PretrainError naming missing, extra or misshapen tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        stored = load_file(weights)
    except (SafetensorError, OSError) as error:
        raise PretrainError(f"{weights} cannot be read: {error}") from None
    targets = exported_tensors(model)
    missing, extra = sorted(set(targets) - set(stored)), sorted(set(stored) - set(targets))
    misshapen = sorted(name for name in set(targets) & set(stored)
                       if stored[name].shape != targets[name].shape)
    problems = ([f"missing {', '.join(missing[:3])}"] if missing else []) + (
        [f"unexpected {', '.join(extra[:3])}"] if extra else []) + (
        [f"shape of {', '.join(misshapen[:3])} differs from config.json's"] if misshapen else [])
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.no_grad():
        for name, target in targets.items():
            if problems:
                break
            if target.untyped_storage().data_ptr() in parameters:
                target.copy_(stored[name])
            elif not torch.equal(stored[name].to(target.dtype), target):
                problems.append(f"{name} is not the constant winnow exports")
    if problems:
        raise PretrainError(f"{weights} does not match its config.json as winnow exports it: "
                            + "; ".join(problems))
