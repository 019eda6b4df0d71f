"""The model card (README.md) that ``winnow export`` writes into an export folder.

Hugging Face front matter (``library_name: transformers`` and tags), then what a reader of the
folder needs without the run: the data the weights were trained on (the shards' manifest
summary the checkpoint recorded), the training config in brief, the last train and eval lines
of the run's metrics.jsonl at or before the exported step, how to load it, and the licence
note. Plain text from a run's records: no clock, no host, so the same run exports the same card.
"""

from __future__ import annotations

from typing import Any

from winnow.trainer.export import huggingface_architecture
from winnow.trainer.pretrained import Pretrained

MODEL_CARD_FILE = "README.md"
PAIR_TASKS = {"sop": "sentence order prediction", "nsp": "next sentence prediction"}


def model_card(pretrained: Pretrained, metrics: dict[str, dict[str, Any]]) -> str:
    """The card of ``pretrained`` (loaded from a run: ``training`` and ``step`` are set);
    ``metrics`` is ``{split: last entry}`` (``trainer.metrics.last_entries``)."""
    manifest, config = pretrained.training["manifest"], pretrained.training["config"]
    architecture = huggingface_architecture(pretrained.config)
    family = "bert" if architecture.startswith("Bert") else "albert"
    objective = manifest["objective"]
    pair_logits = "seq_relationship_logits" if family == "bert" else "sop_logits"
    sections = [
        "---\nlibrary_name: transformers\n"
        f"tags: [winnow, {family}, fill-mask, pretraining, {objective}]\n---",
        f"# {architecture} pretrained by winnow",
        "An encoder trained from scratch with masked language modelling"
        + (f" and {PAIR_TASKS.get(objective, objective)} ({objective})"
           if pretrained.config.has_pair_head else " only (packed full sentences, mlm)")
        + f" for {pretrained.step} steps, on {manifest['examples']} examples of curated text.",
        "## Data\n\n" + _table(("", "value"), [
            ("examples", manifest["examples"]),
            ("tokens", manifest["tokens"]),
            ("objective", objective),
            ("max_seq_len", manifest["max_seq_len"]),
            ("vocabulary", f"{manifest['vocab_size']} SentencePiece pieces (spiece.model)"),
            ("tokenizer sha256", f"`{manifest['tokenizer_sha256']}`"),
            ("shards manifest sha256", f"`{manifest.get('manifest_sha256', 'not recorded')}`"),
        ]),
        "## Training\n\n" + _table(("", "value"), [
            ("preset", config["model"].get("preset", "")),
            ("steps", f"{pretrained.step} of max_steps {config['max_steps']}"),
            ("batch size", config["batch_size"]),
            ("learning rate", config["lr"]),
            ("warmup steps", config["warmup_steps"]),
            ("seed", config["seed"]),
        ]),
        "## Final metrics\n\n" + _metrics_table(metrics),
        _usage(pretrained.config.has_pair_head, pair_logits, objective),
        "## Licence\n\nThe weights are derived from the training data and inherit the licences "
        "of its documents. Each input record's licence is in the curation's `kept/` "
        "(`fields.license`); `winnow shards show SHARDS --provenance` traces an example back to "
        "its records.",
    ]
    return "\n\n".join(sections) + "\n"


def _usage(pair_head: bool, pair_logits: str, objective: str) -> str:
    if not pair_head:
        return ("## Use\n\n```python\nfrom transformers import AutoModelForMaskedLM, "
                "AutoTokenizer\n\n"
                'model = AutoModelForMaskedLM.from_pretrained("path/to/this/folder")\n'
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")\n'
                'outputs = model(**tokenizer("Some text.", return_tensors="pt"))\n```\n\n'
                "`outputs.logits` are the masked-LM logits.")
    return ("## Use\n\n```python\nfrom transformers import AutoModelForPreTraining, "
            "AutoTokenizer\n\n"
            'model = AutoModelForPreTraining.from_pretrained("path/to/this/folder")\n'
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")\n'
            'outputs = model(**tokenizer("First sentence.", "Second sentence.", '
            'return_tensors="pt"))\n```\n\n'
            f"`outputs.prediction_logits` are the masked-LM logits, `outputs.{pair_logits}` "
            f"those of the {objective} head (config.json's `winnow_objective` says what label 1 "
            "means).")


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    """One row per figure, one column per split that has an entry."""
    splits = [split for split in ("train", "eval") if split in metrics]
    if not splits:
        return "The run's metrics.jsonl has no entry up to this step."
    keys = [key for key in dict.fromkeys(k for split in splits for k in metrics[split])
            if key != "split"]
    rows = [(key, *(_figure(metrics[split].get(key)) for split in splits)) for key in keys]
    return _table(("", *splits), rows)


def _figure(value: Any) -> str:
    if value is None:
        return ""
    return format(value, ".4g") if isinstance(value, float) else str(value)


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = [header, tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)
