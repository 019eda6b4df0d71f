"""Stage ``quality``: a fastText classifier that tells curated text from raw crawl.

The practice of GPT-3 (Brown et al. 2020, appendix A), DCLM (Li et al. 2024, section 4.4) and
NeMo Curator: train a linear fastText classifier with reference text (Wikipedia, books, curated
answers) as positives, ``__label__hq``, and raw crawl as negatives, ``__label__lq``; score every
document with P(hq) and keep

* ``mode="threshold"``: documents with P(hq) >= ``threshold`` (DCLM keeps a top fraction, which
  is a threshold picked on a sample);
* ``mode="pareto"``: documents where ``np.random.pareto(alpha) > 1 - P(hq)``, alpha = 9 (GPT-3).
  Low-scoring documents survive now and then, which keeps some diversity. The draw for a document
  is a pure function of ``(seed, document id)`` (:func:`pareto_draw`), so the verdict does not
  depend on order, runner or number of workers, and a rerun drops the same documents.

Users train their own model with :func:`train_quality_model` (``winnow`` ships none: a quality
model encodes a choice of reference text). Training and scoring see a document through the same
:func:`prepare_text`, after the same cut to ``max_chars`` characters.

Reason: ``low_quality``.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import xxhash

from filters.base import KEEP, Reason, check_fraction, check_positive

REASONS = ("low_quality",)

HQ_LABEL = "__label__hq"
LQ_LABEL = "__label__lq"
LABELS = frozenset({HQ_LABEL, LQ_LABEL})

MODES = ("threshold", "pareto")

DEFAULT_MAX_CHARS = 20_000
"""Documents are cut to this many characters before training and scoring (``TrainSettings``)."""

_SEED_LIMIT = 2**31
"""fastText keeps its seed in a C ``int``."""


def _is_remote(path: str) -> bool:
    """``gs://``, ``s3://``, ``http://`` ...; ``file://`` and plain paths are local."""
    return "://" in path and not path.startswith("file://")


def _local_path(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


# ---------------------------------------------------------------------------------------------
# Configuration and verdict
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QualityConfig:
    enabled: bool = True
    """Run the stage. It runs only when ``model`` is set too: winnow ships no quality model."""
    model: str = ""
    """Path to a model trained by ``train_quality_model`` (``.bin`` or ``.ftz``), local or remote
    (``gs://...``; :func:`load_quality_model` copies remote models with the caller's opener)."""
    mode: str = "threshold"
    """``threshold``: keep when P(hq) >= ``threshold``. ``pareto``: keep when a Pareto(alpha)
    draw exceeds 1 - P(hq), as GPT-3 did (appendix A)."""
    threshold: float = 0.5
    """Minimum P(hq) to keep a document in ``threshold`` mode."""
    pareto_alpha: float = 9.0
    """Shape of the Pareto (Lomax, numpy's ``pareto``) draw in ``pareto`` mode; GPT-3 used 9. A
    document with score s survives with probability (2 - s) ** -alpha."""
    seed: int = 0
    """Seeds the Pareto draws. The draw for a document depends only on (seed, document id)."""

    @property
    def active(self) -> bool:
        """Whether the stage runs: enabled and given a model."""
        return self.enabled and bool(self.model)

    def errors(self) -> list[str]:
        problems: list[str] = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        problems += check_fraction("threshold", self.threshold)
        problems += check_positive("pareto_alpha", self.pareto_alpha)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.model and not _is_remote(self.model) and not Path(
                _local_path(self.model)).is_file():
            problems.append(f"model: no file at {self.model!r}")
        return problems


def pareto_draw(seed: int, doc_id: str, alpha: float) -> float:
    """A Pareto draw (numpy's ``pareto``: Lomax, P(X > x) = (1 + x) ** -alpha) that depends only
    on ``seed`` and ``doc_id``.

    A uniform u in (0, 1) comes from the top 53 bits of a 64-bit xxh3 hash of the id (salted,
    so that it is independent of the xxh64 that picks output shards) with ``seed`` as the hash
    seed; the draw is the inverse survival function, u ** (-1 / alpha) - 1.
    """
    data = b"winnow/quality/pareto\x00" + doc_id.encode("utf-8", "surrogatepass")
    bits = xxhash.xxh3_64_intdigest(data, seed=seed % 2**64)
    u = ((bits >> 11) + 0.5) / 2**53  # strictly inside (0, 1)
    return math.expm1(-math.log(u) / alpha)


def quality_verdict(score: float, doc_id: str, config: QualityConfig) -> Reason:
    """Keep (``None``) or drop (``"low_quality"``) a document with P(hq) = ``score``."""
    if config.mode == "pareto":
        if pareto_draw(config.seed, doc_id, config.pareto_alpha) > 1.0 - score:
            return KEEP
        return "low_quality"
    if score >= config.threshold:
        return KEEP
    return "low_quality"


# ---------------------------------------------------------------------------------------------
# Text preparation and scoring
# ---------------------------------------------------------------------------------------------


def prepare_text(text: str) -> str:
    """The one line fastText sees, for training and scoring alike: lowercased, every run of
    whitespace (newlines included) folded into one space, no leading or trailing space.

    Callers cut the document to ``max_chars`` characters first (:func:`_cut_and_prepare`).
    """
    return " ".join(text.replace("\x00", " ").lower().split())


def _cut_and_prepare(text: str, max_chars: int) -> str:
    return prepare_text(text[:max_chars])


def _probability_hq(model, line: str) -> float:
    """P(hq) of an already prepared line."""
    labels, probabilities = model.predict(line, k=-1)
    for label, probability in zip(labels, probabilities, strict=True):
        if label == HQ_LABEL:
            return float(min(max(probability, 0.0), 1.0))
    return 0.0


class QualityScorer:
    """Wraps a trained quality model; loading reads the whole file (a default-size model is
    about 800 MB), so build one per worker, not per call."""

    def __init__(self, model_path: str, max_chars: int = DEFAULT_MAX_CHARS, *,
                 source: str | None = None):
        """``max_chars`` must match the ``TrainSettings.max_chars`` the model was trained with;
        ``source`` names the model in error messages (defaults to ``model_path``)."""
        import fasttext  # imported here so that modules importing this one load without it

        name = source or model_path
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
        if not os.path.isfile(model_path):
            raise ValueError(f"quality model {name!r}: no such file")
        try:
            model = fasttext.load_model(model_path)
        except (ValueError, RuntimeError, MemoryError, OSError) as error:
            raise ValueError(
                f"quality model {name!r} is not a readable fastText model: {error}") from error
        labels = set(model.get_labels()) if _is_supervised(model) else set()
        if labels != LABELS:
            shown = ", ".join(sorted(labels)[:10]) or "none (not a supervised model)"
            raise ValueError(
                f"quality model {name!r} must have exactly the labels {HQ_LABEL} and {LQ_LABEL};"
                f" it has {shown}")
        self._model = model
        self.max_chars = max_chars
        self.source = name

    def score(self, text: str) -> float:
        """P(hq) of ``text``, in [0, 1]."""
        return _probability_hq(self._model, _cut_and_prepare(text, self.max_chars))


def _is_supervised(model) -> bool:
    from fasttext.FastText import model_name

    return model.f.getArgs().model == model_name.supervised


def load_quality_model(path: str, open_binary: Callable[[str], IO[bytes]] | None = None,
                       max_chars: int = DEFAULT_MAX_CHARS) -> QualityScorer:
    """A :class:`QualityScorer` for a local or remote model.

    fastText reads only local files, so a remote path (``gs://...``) is copied to a temporary
    file with ``open_binary`` (for instance Beam's ``FileSystems.open``; this module stays free
    of Beam), loaded, and the copy deleted.
    """
    if not _is_remote(path):
        return QualityScorer(_local_path(path), max_chars)
    if open_binary is None:
        raise ValueError(f"quality model {path!r} is not a local file; pass open_binary to read it")
    suffix = Path(path).suffix or ".bin"
    handle, temporary = tempfile.mkstemp(prefix="winnow-quality-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as target:
            try:
                with open_binary(path) as source:
                    shutil.copyfileobj(source, target, 16 * 1024 * 1024)
            except OSError as error:
                raise ValueError(f"quality model {path!r} could not be read: {error}") from error
        return QualityScorer(temporary, max_chars, source=path)
    finally:
        os.unlink(temporary)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    word_ngrams: int = 2
    """Longest word n-gram used as a feature (DCLM uses bigrams)."""
    epoch: int = 5
    """Passes over the training data."""
    lr: float = 0.1
    """Learning rate."""
    dim: int = 100
    """Size of the hidden vectors."""
    min_count: int = 1
    """Words seen fewer times than this are ignored."""
    validation_fraction: float = 0.1
    """Share of each class held out to measure the model (at least one document of each)."""
    seed: int = 0
    """Seeds the shuffle, the split and fastText (which trains on one thread, so reruns give the
    same model)."""
    max_chars: int = DEFAULT_MAX_CHARS
    """Documents are cut to this many characters before training (scoring must use the same)."""
    bucket: int = 200_000
    """Hash buckets for word n-grams. The model stores ``bucket x dim`` floats: fastText's
    default of 2,000,000 x 100 makes an 850 MB file that every Dataflow worker must load;
    200,000 gives 127 MB and the same validation F1 on our trials."""

    def errors(self) -> list[str]:
        problems: list[str] = []
        for name in ("word_ngrams", "epoch", "dim", "min_count", "max_chars", "bucket"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        problems += check_positive("lr", self.lr)
        if not 0.0 < self.validation_fraction < 1.0:
            problems.append(
                f"validation_fraction must be between 0 and 1 (exclusive), "
                f"got {self.validation_fraction!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < _SEED_LIMIT:
            problems.append(f"seed must be an integer in [0, 2**31), got {self.seed!r}")
        return problems


def _prepared(texts: Iterable[str], max_chars: int) -> tuple[list[str], int]:
    """Prepared lines of ``texts``, and how many were empty after preparation (skipped)."""
    lines, empty = [], 0
    for text in texts:
        line = _cut_and_prepare(text, max_chars)
        if line:
            lines.append(line)
        else:
            empty += 1
    return lines, empty


def _split(lines: list[str], fraction: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Shuffle ``lines`` and hold out ``fraction`` of them (at least one, and at least one left
    to train on)."""
    lines = lines[:]
    rng.shuffle(lines)
    held_out = min(max(round(len(lines) * fraction), 1), len(lines) - 1)
    return lines[held_out:], lines[:held_out]


def train_quality_model(positive: Iterable[str], negative: Iterable[str], output: str,
                        settings: TrainSettings) -> dict:
    """Train a quality classifier on ``positive`` (hq) and ``negative`` (lq) documents.

    Documents are held in memory as prepared lines. Each class is shuffled (seeded) and split
    into training and validation parts, so the validation set has the same class balance; the
    model is trained on one thread with the settings' seed, saved to ``output`` (a local path),
    and measured on the validation set at P(hq) >= 0.5. The metrics (precision, recall and F1 of
    the hq class, accuracy, confusion counts, sizes per label, settings, training time) are
    written as JSON to ``output + ".metrics.json"`` and returned.
    """
    import fasttext

    problems = settings.errors()
    if problems:
        raise ValueError("invalid training settings: " + "; ".join(problems))
    hq, hq_empty = _prepared(positive, settings.max_chars)
    lq, lq_empty = _prepared(negative, settings.max_chars)
    for label, lines in (("positive (hq)", hq), ("negative (lq)", lq)):
        if len(lines) < 2:
            raise ValueError(
                f"{label} documents: need at least 2 non-empty documents to train and validate,"
                f" got {len(lines)}")

    rng = random.Random(settings.seed)
    hq_train, hq_validation = _split(hq, settings.validation_fraction, rng)
    lq_train, lq_validation = _split(lq, settings.validation_fraction, rng)
    training = [f"{HQ_LABEL} {line}\n" for line in hq_train]
    training += [f"{LQ_LABEL} {line}\n" for line in lq_train]
    rng.shuffle(training)

    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="winnow-quality-train-") as directory:
        train_file = os.path.join(directory, "train.txt")
        with open(train_file, "w", encoding="utf-8") as handle:
            handle.writelines(training)
        del training
        started = time.perf_counter()
        model = fasttext.train_supervised(
            input=train_file, wordNgrams=settings.word_ngrams, epoch=settings.epoch,
            lr=settings.lr, dim=settings.dim, minCount=settings.min_count,
            bucket=settings.bucket, loss="softmax", thread=1, seed=settings.seed, verbose=0)
        train_seconds = time.perf_counter() - started
    model.save_model(output)

    true_positive = sum(_probability_hq(model, line) >= 0.5 for line in hq_validation)
    false_positive = sum(_probability_hq(model, line) >= 0.5 for line in lq_validation)
    false_negative = len(hq_validation) - true_positive
    true_negative = len(lq_validation) - false_positive
    precision = _ratio(true_positive, true_positive + false_positive)
    recall = _ratio(true_positive, len(hq_validation))
    metrics = {
        "model": output,
        "threshold": 0.5,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "accuracy": _ratio(true_positive + true_negative, len(hq_validation) + len(lq_validation)),
        "confusion": {
            "true_positive": true_positive, "false_positive": false_positive,
            "false_negative": false_negative, "true_negative": true_negative,
        },
        "train": {"hq": len(hq_train), "lq": len(lq_train)},
        "validation": {"hq": len(hq_validation), "lq": len(lq_validation)},
        "skipped_empty": {"hq": hq_empty, "lq": lq_empty},
        "train_seconds": round(train_seconds, 3),
        "settings": asdict(settings),
    }
    with open(output + ".metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return metrics


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else 0.0
