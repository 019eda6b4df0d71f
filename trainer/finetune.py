"""``winnow finetune``: sequence classification on [CLS] with Hugging Face ``transformers``,
from a ``winnow export`` folder or a ``winnow pretrain`` run folder (exported first, into a
temporary folder), over several seeds, into ``OUTPUT/results.json``.

Why transformers and not the trainer's own model with a head: it is where users fine-tune
(the exported folder is the artifact they take away, so the figures describe that artifact),
``AutoModelForSequenceClassification`` already holds BERT's and ALBERT's pooler + dropout +
classifier, and on this CPU it runs as fast as our encoder (BENCHMARKS.md, "Fine-tuning").

Per seed s (0..seeds-1): torch seeded with s; the classifier head (and, for ``init="random"``,
the whole model, ``from_config``) initialized; AdamW with linear warmup over
``warmup_fraction`` of the steps and linear decay to 0; the training order reshuffled each
epoch from s; validation accuracy after every epoch, the best epoch's weights kept, stopping
after ``patience`` epochs without a better one; then validation and test scored with the best
weights. bf16 autocast on CUDA.

Inputs are built as in pretraining: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` with token
types 0/1, SentencePiece ids of the model's own tokenizer, and a pair longer than
``max_seq_len - 3`` shortened by ``filters.pairs.truncate_pair`` (the longer side loses tokens
first). Pretraining cuts a random end; here the end is always cut, keeping the start of each
text, as BERT's run_classifier does.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from winnow.filters.pairs import truncate_pair
from winnow.trainer.checkpoints import PretrainError, folder_refusal, write_text
from winnow.trainer.export import CONFIG_FILE, TOKENIZER_FILE
from winnow.trainer.pretrained import folder_kind
from winnow.trainer.task import Example, Task, TaskFields, load_task

RESULTS_FILE = "results.json"
RESULTS_FORMAT = 1
INITS = ("pretrained", "random")
DEFAULT_LR = {"pretrained": 5e-5, "random": 1e-4}
"""BERT's fine-tuning range is 2e-5..5e-5 (Devlin et al., appendix A.3); the small models
winnow trains on a budget take the top of it. An untrained model must learn its embeddings
from the task alone, so the random baseline gets a larger step by default."""
NARROW_HIDDEN_SIZE = 128
NARROW_MODEL_LR = 1e-3
"""The default of both inits for a model of hidden size NARROW_HIDDEN_SIZE or less (the tiny
preset): at 5e-5 a tiny BERT never left the majority class in two epochs, at 1e-3 it reached
macro-F1 0.977 (pretrained) and 0.957 (random) on SMS spam (BENCHMARKS.md, "Fine-tuning")."""


def default_lr(init: str, hidden_size: int) -> float:
    """The peak learning rate when none is given, for a model of ``hidden_size``."""
    return NARROW_MODEL_LR if hidden_size <= NARROW_HIDDEN_SIZE else DEFAULT_LR[init]


class FinetuneError(Exception):
    """An expected failure (bad options, unusable data, an unreadable model): one line."""


@dataclass(frozen=True)
class FinetuneConfig:
    fields: TaskFields = field(default_factory=TaskFields)
    """Which row fields hold the text, the second text and the label."""
    init: str = "pretrained"
    """"pretrained": the model's weights; "random": the same architecture, untrained."""
    seeds: int = 3
    """Runs with seeds 0..seeds-1; results give each and their mean and std."""
    epochs: int = 3
    """Passes over the training examples at most (early stopping may end sooner)."""
    lr: float | None = None
    """Peak AdamW learning rate; None: ``default_lr`` of the init and the model's width."""
    batch_size: int = 32
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    """Fraction of all steps spent warming up linearly from 0 to lr; then linear decay to 0."""
    patience: int = 2
    """Epochs without a better validation accuracy before stopping."""
    grad_clip: float = 1.0
    """Clip the gradient norm to this; 0 disables."""
    validation_fraction: float = 0.1
    """Without validation files: the stratified fraction of training examples held out."""
    split_seed: int = 0
    """Seeds that split, the same for every fine-tuning seed."""
    max_seq_len: int | None = None
    """Longest input, special tokens included; None: the model's max_position_embeddings."""

    def __post_init__(self) -> None:
        problems = []
        if self.init not in INITS:
            problems.append(f"init must be one of {INITS}, got {self.init!r}")
        for name in ("seeds", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr is not None and not 0 < self.lr <= 1:
            problems.append(f"lr must be in (0, 1], got {self.lr}")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be at least 0, got {getattr(self, name)}")
        if not 0 < self.validation_fraction < 1:
            problems.append(f"validation_fraction must be in (0, 1), "
                            f"got {self.validation_fraction}")
        if self.max_seq_len is not None and self.max_seq_len < 5:
            problems.append(f"max_seq_len must be at least 5, got {self.max_seq_len}")
        if problems:
            raise FinetuneError("; ".join(problems))

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.init]


# --- the model ---------------------------------------------------------------------------------

def model_folder(model: str, scratch: str) -> str:
    """A Hugging Face folder for ``model``: itself when it is an export folder, else the latest
    checkpoint of a pretrain run folder exported into ``scratch`` (``folder_kind``)."""
    kind = folder_kind(model)
    if kind == "export":
        return model
    if kind == "run":
        from winnow.trainer.train import export

        try:
            return export(model, os.path.join(scratch, "export"))
        except PretrainError as error:
            raise FinetuneError(f"cannot export {model}: {error}") from None
    raise FinetuneError(f"{model} is neither a winnow export folder (config.json) nor a "
                        "winnow pretrain run folder (checkpoints/)")


def build_model(folder: str, num_labels: int, init: str, seed: int) -> torch.nn.Module:
    """BertForSequenceClassification or AlbertForSequenceClassification, seeded."""
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()  # "newly initialized: classifier" is expected
    transformers.logging.disable_progress_bar()  # "Loading weights", once per seed
    config = AutoConfig.from_pretrained(folder, num_labels=num_labels)
    torch.manual_seed(seed)
    if init == "random":
        return AutoModelForSequenceClassification.from_config(config)
    return AutoModelForSequenceClassification.from_pretrained(folder, config=config)


# --- inputs ------------------------------------------------------------------------------------

class _CutEnd:
    """An rng for truncate_pair whose draws always say "cut the end"."""

    @staticmethod
    def random() -> float:
        return 1.0


@dataclass
class Encoded:
    """One split as model inputs: ``ids[i]`` and ``types[i]`` are example i's token ids and
    token types (no padding), ``labels[i]`` its class id."""
    ids: list[list[int]]
    types: list[list[int]]
    labels: np.ndarray


def encode(examples: list[Example], folder: str, classes: list[str], max_seq_len: int
           ) -> Encoded:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(folder, TOKENIZER_FILE))
    cls, sep = processor.piece_to_id("[CLS]"), processor.piece_to_id("[SEP]")
    firsts = processor.encode([example.text for example in examples])
    seconds = (processor.encode([example.text_pair for example in examples])
               if examples and examples[0].text_pair is not None else [None] * len(examples))
    ids, types = [], []
    for a, b in zip(firsts, seconds, strict=True):
        if b is None:
            ids.append([cls, *a[:max_seq_len - 2], sep])
            types.append([0] * len(ids[-1]))
            continue
        truncate_pair(a, b, max_seq_len - 3, _CutEnd)
        ids.append([cls, *a, sep, *b, sep])
        types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    index = {name: position for position, name in enumerate(classes)}
    return Encoded(ids, types, np.array([index[e.label] for e in examples], dtype=np.int64))


def batch_tensors(encoded: Encoded, positions: np.ndarray, pad_id: int,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """The examples at ``positions``, padded to the longest of them: (B, T) ids, types, mask
    and (B,) labels."""
    length = max(len(encoded.ids[i]) for i in positions)
    ids = np.full((len(positions), length), pad_id, dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for row, i in enumerate(positions):
        n = len(encoded.ids[i])
        ids[row, :n], types[row, :n], mask[row, :n] = encoded.ids[i], encoded.types[i], 1
    arrays = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
              "labels": encoded.labels[positions]}
    return {name: torch.from_numpy(array).to(device) for name, array in arrays.items()}


# --- scores ------------------------------------------------------------------------------------

def scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 over the classes that occur in ``labels`` or ``predictions``
    (scikit-learn's default set; a class with no gold and no predicted example is left out)."""
    present = np.union1d(labels, predictions)
    f1 = []
    for name in present:
        true_positive = np.sum((predictions == name) & (labels == name))
        predicted, actual = np.sum(predictions == name), np.sum(labels == name)
        f1.append(2 * true_positive / (predicted + actual) if predicted + actual else 0.0)
    return {"accuracy": float(np.mean(labels == predictions)) if len(labels) else 0.0,
            "macro_f1": float(np.mean(f1)) if f1 else 0.0}


@torch.no_grad()
def evaluate_split(model: torch.nn.Module, encoded: Encoded, batch_size: int, pad_id: int,
                   device: torch.device) -> dict[str, float]:
    model.eval()
    predictions, loss_sum = [], 0.0
    for start in range(0, len(encoded.ids), batch_size):
        positions = np.arange(start, min(start + batch_size, len(encoded.ids)))
        batch = batch_tensors(encoded, positions, pad_id, device)
        with _autocast(device):
            output = model(**batch)
        loss_sum += float(output.loss) * len(positions)
        predictions.append(output.logits.argmax(-1).cpu().numpy())
    predicted = np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
    return {**scores(encoded.labels, predicted),
            "loss": loss_sum / max(len(encoded.ids), 1), "examples": len(encoded.ids)}


def summarize(runs: list[dict[str, Any]], split: str) -> dict[str, dict[str, float]] | None:
    """Mean and sample standard deviation (n - 1; 0 for one seed) of each score over runs."""
    if not runs or runs[0][split] is None:
        return None
    summary = {}
    for name in ("accuracy", "macro_f1"):
        values = [run[split][name] for run in runs]
        summary[name] = {"mean": statistics.fmean(values),
                         "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    return summary


# --- training ----------------------------------------------------------------------------------

def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _optimizer(model: torch.nn.Module, config: FinetuneConfig, total_steps: int):
    from transformers import get_linear_schedule_with_warmup

    decay = [p for p in model.parameters() if p.ndim >= 2]  # matrices and embeddings
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases, LayerNorm
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.peak_lr)
    schedule = get_linear_schedule_with_warmup(
        optimizer, round(config.warmup_fraction * total_steps), total_steps)
    return optimizer, schedule


def _train_epoch(model, optimizer, schedule, train: Encoded, order: np.ndarray,
                 config: FinetuneConfig, pad_id: int, device: torch.device, bar) -> None:
    model.train()
    for start in range(0, len(order), config.batch_size):
        batch = batch_tensors(train, order[start:start + config.batch_size], pad_id, device)
        with _autocast(device):
            loss = model(**batch).loss
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        bar.update(1)


def run_seed(folder: str, encoded: dict[str, Encoded], num_labels: int, config: FinetuneConfig,
             seed: int, device: torch.device) -> dict[str, Any]:
    """Fine-tune one seed; its entry of results.json's ``seeds``."""
    from tqdm import tqdm

    model = build_model(folder, num_labels, config.init, seed).to(device)
    pad_id = model.config.pad_token_id or 0
    train = encoded["train"]
    steps_per_epoch = math.ceil(len(train.ids) / config.batch_size)
    optimizer, schedule = _optimizer(model, config, steps_per_epoch * config.epochs)
    order_rng = np.random.default_rng(seed)
    best, best_state, best_epoch, curve = -1.0, None, 0, []
    with tqdm(total=steps_per_epoch * config.epochs, desc=f"seed {seed}", unit="step",
              dynamic_ncols=True, disable=None) as bar:
        for epoch in range(1, config.epochs + 1):
            order = order_rng.permutation(len(train.ids))
            _train_epoch(model, optimizer, schedule, train, order, config, pad_id, device, bar)
            accuracy = evaluate_split(model, encoded["validation"], config.batch_size, pad_id,
                                      device)["accuracy"]
            curve.append(accuracy)
            bar.set_postfix(validation_accuracy=f"{accuracy:.3f}")
            if accuracy > best:
                best, best_epoch = accuracy, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    scored = {name: evaluate_split(model, encoded[name], config.batch_size, pad_id, device)
              if name in encoded else None for name in ("validation", "test")}
    return {"seed": seed, "best_epoch": best_epoch, "epochs_run": len(curve),
            "steps": len(curve) * steps_per_epoch, "validation_accuracy_by_epoch": curve,
            **scored}


# --- entry point -------------------------------------------------------------------------------

def _check_task(task: Task) -> None:
    problems = []
    if len(task.classes) < 2:
        problems.append(f"the training rows name {len(task.classes)} class(es) "
                        f"({', '.join(task.classes) or 'none'}); at least 2 are needed")
    for name in ("train", "validation"):
        if not task.splits[name]:
            problems.append(f"no usable {name} example (bad rows: "
                            f"{dict(task.counts[name].bad) or 'none'})")
    if problems:
        raise FinetuneError("; ".join(problems))


def results_document(model: str, config: FinetuneConfig, task: Task, runs: list[dict],
                     max_seq_len: int, device: torch.device, complete: bool) -> dict[str, Any]:
    """results.json (README, "winnow finetune")."""
    config_dict = {**asdict(config), "lr": config.peak_lr, "max_seq_len": max_seq_len}
    return {
        "format": RESULTS_FORMAT,
        "complete": complete,
        "model": model,
        "init": config.init,
        "classes": task.classes,
        "label_map": {name: index for index, name in enumerate(task.classes)},
        "config": config_dict,
        "device": device.type,
        "data": {name: counts.as_dict() for name, counts in task.counts.items()},
        "seeds": runs,
        "summary": {split: summarize(runs, split) for split in ("validation", "test")},
    }


def finetune(model: str, train: list[str], output_dir: str,
             config: FinetuneConfig | None = None, *, validation: list[str] | None = None,
             test: list[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Fine-tune ``model`` (export or run folder) on the task files, ``config.seeds`` times;
    writes ``output_dir/results.json`` after every seed (``"complete": false`` until the last)
    and returns the final document. FinetuneError for an expected failure."""
    config = config or FinetuneConfig()
    refusal = folder_refusal(output_dir, overwrite)
    if refusal is not None:
        raise FinetuneError(refusal)
    try:
        task = load_task(train, config.fields, validation, test, config.validation_fraction,
                         config.split_seed)
    except FileNotFoundError as error:
        raise FinetuneError(str(error)) from None
    _check_task(task)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="winnow-finetune-") as scratch:
        folder = model_folder(model, scratch)
        os.makedirs(output_dir, exist_ok=True)  # only once nothing can be refused
        with open(os.path.join(folder, CONFIG_FILE)) as handle:
            model_config = json.load(handle)
        max_seq_len = config.max_seq_len or model_config["max_position_embeddings"]
        if config.lr is None:
            config = replace(config, lr=default_lr(config.init, model_config["hidden_size"]))
        encoded = {name: encode(examples, folder, task.classes, max_seq_len)
                   for name, examples in task.splits.items()}
        runs: list[dict[str, Any]] = []
        for seed in range(config.seeds):
            runs.append(run_seed(folder, encoded, len(task.classes), config, seed, device))
            document = results_document(model, config, task, runs, max_seq_len, device,
                                        complete=len(runs) == config.seeds)
            write_text(os.path.join(output_dir, RESULTS_FILE),
                       json.dumps(document, indent=2) + "\n")
            print(_seed_line(runs[-1]), file=sys.stderr)
    return document


def _seed_line(run: dict[str, Any]) -> str:
    parts = [f"seed {run['seed']}: best epoch {run['best_epoch']}"]
    for split in ("validation", "test"):
        if run[split] is not None:
            parts.append(f"{split} accuracy {run[split]['accuracy']:.4f} "
                         f"macro-F1 {run[split]['macro_f1']:.4f}")
    return ", ".join(parts)
