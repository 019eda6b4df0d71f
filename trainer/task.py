"""Labelled task data for ``winnow finetune``: rows read with ``trainer.rows``, turned into
examples (text, optional second text, class name), every unusable row counted by reason.

A row is used or counted under exactly one reason, so ``rows_read = used + sum(bad)`` for each
file-backed split (the validation split carved from training rows is part of train's
``rows_read``). Reasons, besides the file problems of ``trainer.rows`` (``malformed_json``,
``not_an_object``, ``truncated_file``, ``unreadable_file``):

    missing_text / missing_text_pair     the field is absent or null
    invalid_text / invalid_text_pair     not a string
    empty_text / empty_text_pair         only whitespace
    missing_label                        the label field is absent, null or an empty string
    invalid_label                        not a string or an integer (a list, 0.5, ...)
    unseen_label                         (validation and test only) a class no training row has

Classes are the training rows' labels, as strings (``1`` and ``"1"`` are one class), sorted:
numerically when every one is an integer, else as text. A class's id is its position.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from winnow.trainer.rows import expand_files, read_rows, text_problem


@dataclass(frozen=True)
class TaskFields:
    text: str = "text"
    """Field of the (first) text."""
    text_pair: str | None = None
    """Field of the second text of a pair task (entailment, paraphrase); None: single text."""
    label: str = "label"
    """Field of the label: a string or an integer."""


@dataclass(frozen=True)
class Example:
    text: str
    text_pair: str | None
    label: str
    """The class name (see class_name)."""


@dataclass
class SplitCounts:
    """What one split was made of; ``as_dict`` is its entry in results.json's ``data``."""
    source: str
    """"files", or how it was carved out of the training rows."""
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    bad: Counter = field(default_factory=Counter)
    per_class: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "files": self.files, "rows_read": self.rows_read,
                "used": sum(self.per_class.values()), "bad": dict(sorted(self.bad.items())),
                "per_class": dict(self.per_class)}


@dataclass
class Task:
    classes: list[str]
    """Class names; a class's id is its index."""
    splits: dict[str, list[Example]]
    """"train", "validation" and, when test files were given, "test"."""
    counts: dict[str, SplitCounts]


def class_name(value: Any) -> str | None:
    """The class a label value names, or None when it names none (see invalid_label)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return None


def row_example(values: dict[str, Any], fields: TaskFields) -> Example | str:
    """The example a row holds, or the reason name it holds none."""
    problem = text_problem(values, fields.text)
    if not problem and fields.text_pair is not None:
        problem = text_problem(values, fields.text_pair, "_pair")
    if problem:
        return problem
    label = values.get(fields.label)
    if label is None or label == "":
        return "missing_label"
    name = class_name(label)
    if name is None:
        return "invalid_label"
    if not name:
        return "missing_label"
    pair = values[fields.text_pair] if fields.text_pair is not None else None
    return Example(values[fields.text], pair, name)


def read_examples(patterns: list[str], fields: TaskFields, counts: SplitCounts) -> list[Example]:
    """The examples of the files ``patterns`` name, in file order; the rest counted by reason
    into ``counts``. FileNotFoundError for a pattern that matches nothing."""
    examples = []
    counts.files = expand_files(patterns)
    for path in counts.files:
        for row in read_rows(path):
            counts.rows_read += 1
            example = row.problem or row_example(row.values, fields)
            if isinstance(example, str):
                counts.bad[example] += 1
            else:
                examples.append(example)
    return examples


def sorted_classes(names: set[str]) -> list[str]:
    """Numerically when every name is an integer (so "10" follows "9"), else as text."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def stratified_split(examples: list[Example], fraction: float, seed: int
                     ) -> tuple[list[Example], list[Example]]:
    """(kept, held_out): ``round(fraction * n)`` of each class's n examples held out, chosen
    by a generator seeded with ``seed`` (at least one of a class with two or more, none of a
    class with one); both keep the input order."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for position, example in enumerate(examples):
        by_class.setdefault(example.label, []).append(position)
    held_out: set[int] = set()
    for name in sorted(by_class):
        positions = by_class[name]
        take = min(max(round(fraction * len(positions)), 1), len(positions) - 1)
        held_out.update(rng.sample(positions, take))
    return ([e for i, e in enumerate(examples) if i not in held_out],
            [e for i, e in enumerate(examples) if i in held_out])


def _known(examples: list[Example], classes: list[str], counts: SplitCounts) -> list[Example]:
    known = set(classes)
    kept = [example for example in examples if example.label in known]
    if len(kept) < len(examples):
        counts.bad["unseen_label"] += len(examples) - len(kept)
    return kept


def load_task(train: list[str], fields: TaskFields, validation: list[str] | None = None,
              test: list[str] | None = None, validation_fraction: float = 0.1,
              split_seed: int = 0) -> Task:
    """Read the task files; without ``validation``, hold out a stratified ``validation_fraction``
    of the training examples (seeded by ``split_seed``, the same for every fine-tuning seed)."""
    counts = {"train": SplitCounts("files")}
    splits = {"train": read_examples(train, fields, counts["train"])}
    classes = sorted_classes({example.label for example in splits["train"]})
    if validation:
        counts["validation"] = SplitCounts("files")
        splits["validation"] = _known(read_examples(validation, fields, counts["validation"]),
                                      classes, counts["validation"])
    else:
        counts["validation"] = SplitCounts(
            f"train: stratified {validation_fraction:g} split, seed {split_seed}")
        splits["train"], splits["validation"] = stratified_split(
            splits["train"], validation_fraction, split_seed)
    if test:
        counts["test"] = SplitCounts("files")
        splits["test"] = _known(read_examples(test, fields, counts["test"]), classes,
                                counts["test"])
    for name, examples in splits.items():
        counts[name].per_class = Counter({c: 0 for c in classes})
        counts[name].per_class.update(example.label for example in examples)
    return Task(classes, splits, counts)
