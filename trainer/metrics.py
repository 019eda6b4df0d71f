"""Metrics of a run: the per-step sums, the losses and accuracies made from them, and the log
(``RUN/metrics.jsonl``, TensorBoard when installed, a progress line)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

import torch

from winnow.trainer.checkpoints import write_text
from winnow.trainer.data import IGNORE_INDEX

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Dense bf16 peak FLOP/s by GPU name (SXM parts), for MFU."""

BAR_FORMAT = "{n_fmt}/{total_fmt} |{bar}| {remaining} left{postfix}"
"""The progress bar: steps, the bar, time left, then ``progress_postfix`` (tqdm puts ", "
before it). With 100000 steps and MFU shown it leaves the bar 11 columns of 80."""


@dataclass(frozen=True)
class Sums:
    """What a train step or an evaluation adds up over its micro-batches (then over ranks).

    The loss sums and correct counts are device tensors while a step runs (reading them would
    wait for the GPU); the counts come from the CPU batch as ints. trainer.train adds them
    over ranks into Python floats (one float32 vector, the fields in order) for ``summarize``.
    """

    mlm_loss_sum: Any = 0
    """Cross-entropy summed over the masked tokens."""
    mlm_correct: Any = 0
    """Masked tokens predicted right."""
    pair_loss_sum: Any = 0
    """Sentence-order (or next-sentence) cross-entropy summed over the examples."""
    pair_correct: Any = 0
    """Examples whose pair label is predicted right."""
    masked: Any = 0
    """Tokens selected for prediction."""
    examples: Any = 0
    tokens: Any = 0
    """Real (not padding) tokens: what the model computes on when it unpads."""
    padded_tokens: Any = 0
    """All token positions of the batches, padding to max_seq_len included: what the model
    computes on when it does not unpad (TrainConfig.unpad false)."""

    def values(self) -> list[Any]:
        """The fields in declaration order (the order of the all-reduced vector)."""
        return [getattr(self, item.name) for item in fields(self)]

    def __add__(self, other: Sums) -> Sums:
        pairs = zip(self.values(), other.values(), strict=True)
        return Sums(*(mine + theirs for mine, theirs in pairs))

    def detach(self) -> Sums:
        """The same sums without autograd history (kept across micro-batches)."""
        return Sums(*(value.detach() if isinstance(value, torch.Tensor) else value
                      for value in self.values()))


def output_sums(out: Any, pair_labels: torch.Tensor) -> Sums:
    """The loss sums and correct counts of one forward pass (``PreTrainingOutput`` given
    mlm_labels and pair_labels; device tensors, with autograd). The sums are the model's mean
    losses times their counts: the cross-entropies are computed once, in the model."""
    mlm = Sums(
        mlm_loss_sum=out.mlm_loss * len(out.mlm_targets),
        mlm_correct=(out.mlm_logits.argmax(-1) == out.mlm_targets).sum().float())
    if out.pair_logits is None:  # an mlm model: no pair head, the pair sums stay 0
        return mlm
    return mlm + Sums(
        pair_loss_sum=out.pair_loss * len(pair_labels),
        pair_correct=(out.pair_logits.argmax(-1) == pair_labels).sum().float(),
    )


def batch_counts(batch: dict[str, torch.Tensor]) -> Sums:
    """The masked, example, real and padded token counts of a CPU batch."""
    return Sums(masked=int((batch["mlm_labels"] != IGNORE_INDEX).sum()),
                examples=len(batch["pair_labels"]), tokens=int(batch["attention_mask"].sum()),
                padded_tokens=batch["input_ids"].numel())


def summarize(sums: Sums, objective: str) -> dict[str, float]:
    """Losses and accuracies from global sums; for ``objective`` "mlm" (no pair head) the
    masked-LM figures alone, loss being mlm_loss."""
    masked, examples = max(sums.masked, 1), max(sums.examples, 1)
    mlm_loss = sums.mlm_loss_sum / masked
    pair_loss = sums.pair_loss_sum / examples
    if objective == "mlm":
        return {"loss": mlm_loss, "mlm_loss": mlm_loss, "mlm_accuracy": sums.mlm_correct / masked}
    return {
        "loss": mlm_loss + pair_loss,
        "mlm_loss": mlm_loss,
        "pair_loss": pair_loss,
        "mlm_accuracy": sums.mlm_correct / masked,
        f"{objective}_accuracy": sums.pair_correct / examples,
    }


def progress_postfix(entry: dict[str, Any]) -> str:
    """The bar's text for a train entry: loss, MLM accuracy, tokens/s and MFU (when known),
    at most 40 characters; every other figure is in metrics.jsonl and TensorBoard."""
    text = (f"loss {entry['loss']:.3g} acc {entry['mlm_accuracy']:.1%} "
            f"{_si(entry['tokens_per_s'])} tok/s")
    return text if entry.get("mfu") is None else f"{text} mfu {entry['mfu']:.0%}"


def eval_line(entry: dict[str, Any]) -> str:
    """One line for an evaluation entry, printed above the bar."""
    figures = " ".join(f"{key} {value:.4g}" for key, value in entry.items()
                       if key.endswith(("loss", "accuracy")))
    return f"step {entry['step']} eval: {figures}"


def _si(value: float) -> str:
    """3 significant digits with k/M/G: 21300.5 -> '21.3k'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


class MetricsLog:
    """metrics.jsonl, TensorBoard (when installed) and a progress bar (tqdm, when installed;
    else one printed line per entry); a no-op off rank 0."""

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
            self.bar = tqdm(total=end_step, initial=start_step, unit="step", dynamic_ncols=True,
                            bar_format=BAR_FORMAT)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def note(self, text: str) -> None:
        """A line on stderr, above the bar while there is one."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def write(self, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        if self.tensorboard is not None:
            for key, value in entry.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.tensorboard.add_scalar(f"{entry['split']}/{key}", value, entry["step"])
        if entry["split"] != "train":
            self.note(eval_line(entry))
        elif self.bar is not None:
            self.bar.set_postfix_str(progress_postfix(entry), refresh=False)
        else:
            print(f"step {entry['step']}: {progress_postfix(entry)}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


def _keep_entries_up_to(path: str, step: int) -> None:
    """Drop the entries after ``step`` (logged after the checkpoint a run resumes from), and
    the torn lines a crash or a full disk left (a warning counts them). The file is rewritten
    whole, so appends always start on a fresh line."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    entries, torn = [], 0
    for line in lines:
        entry = _complete_entry(line)
        if entry is None:
            torn += bool(line.strip())
        elif entry["step"] <= step:
            entries.append(line.decode("utf-8") + "\n")
    if torn:
        print(f"warning: {path}: dropped {torn} torn line(s) (an interrupted write, e.g. a "
              "full disk)", file=sys.stderr)
    write_text(path, "".join(entries))


def last_entries(run_dir: str, step: int) -> dict[str, dict[str, Any]]:
    """``{split: entry}``: the last complete entry of each split ("train", "eval") in
    ``run_dir``'s metrics.jsonl at or before ``step`` (entries logged after the checkpoint a
    run was killed past are not the checkpoint's); empty without the file."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as handle:
        entries = [_complete_entry(line) for line in handle]
    return {entry["split"]: entry for entry in entries
            if entry is not None and entry["step"] <= step and "split" in entry}


def _complete_entry(line: bytes) -> dict[str, Any] | None:
    """The entry of one metrics.jsonl line; None for a torn or otherwise unreadable line."""
    try:
        entry = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    complete = isinstance(entry, dict) and isinstance(entry.get("step"), int)
    return entry if complete else None


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak FLOP/s of a known GPU; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


