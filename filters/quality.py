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
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import numpy as np
import xxhash

from winnow.filters.base import KEEP, Reason, check_fraction, check_positive
from winnow.filters.model_files import is_remote, local_model_file, local_path

REASONS = ("low_quality",)

HQ_LABEL = "__label__hq"
LQ_LABEL = "__label__lq"
LABELS = frozenset({HQ_LABEL, LQ_LABEL})

MODES = ("threshold", "pareto")

DEFAULT_THRESHOLD = 0.5
"""``QualityConfig.threshold``'s default; training measures the model at it."""

DEFAULT_MAX_CHARS = 20_000
"""Documents are cut to this many characters before training and scoring (``TrainSettings``)."""

_SEED_LIMIT = 2**31
"""fastText keeps its seed in a C ``int``."""


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
    threshold: float = DEFAULT_THRESHOLD
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
        if self.model and not is_remote(self.model) and not Path(
                local_path(self.model)).is_file():
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
    about 90 MB), so build one per worker, not per call."""

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
    with local_model_file(path, "quality model", open_binary) as local:
        return QualityScorer(local, max_chars, source=path)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    word_ngrams: int = 2
    """Longest word n-gram used as a feature (DCLM uses bigrams)."""
    epoch: int = 25
    """Passes over the training data. fastText's defaults (5 passes at lr 0.1) are made for
    hundreds of thousands of lines; on a few hundred documents per class they leave every score
    at 0.50, or at the class prior (bench/quality_pairs.py, BENCHMARKS.md "Quality classifier on
    independent pairs"). 25 passes at lr 1.0, fastText's tutorial setting for small sets, gave
    0.99-1.00 held-out accuracy on three independent pairs at 300 to 2,000 documents per class,
    and 0.96-0.99 at 50 to 100, where 5 passes at lr 1.0 gave 0.70-0.98, mostly flat scores.
    Training time grows in proportion; with far more documents, fewer passes may do."""
    lr: float = 1.0
    """Learning rate (see ``epoch``)."""
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
    200,000 gives about 90 MB and the same validation F1 on our trials."""
    autotune_seconds: int = 0
    """When above 0, fastText's autotune searches lr, epoch, word n-grams and subwords for this
    many seconds against the validation split, in place of those settings (dim and bucket stay).
    Off by default: what it finds depends on how many trials fit in the time, so runs are not
    reproducible, and the validation figures it reports are the ones it was tuned on."""
    significance: float = 0.01
    """A model is refused as no better than chance unless its validation accuracy beats always
    guessing the larger class with a one-sided exact binomial p-value below this."""
    min_score_gap: float = 0.2
    """A model is refused when the mean P(hq) of the validation hq documents exceeds that of the
    lq documents by less than this: scores that barely spread leave every verdict to noise."""
    target_precision: float = 0.95
    """The metrics give the threshold that keeps the most hq validation documents while this
    share of the documents it keeps is hq (on the validation split's class balance)."""

    def errors(self) -> list[str]:
        problems: list[str] = []
        for name in ("word_ngrams", "epoch", "dim", "min_count", "max_chars", "bucket"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if (not isinstance(self.autotune_seconds, int) or isinstance(self.autotune_seconds, bool)
                or self.autotune_seconds < 0):
            problems.append(f"autotune_seconds must be a non-negative integer, "
                            f"got {self.autotune_seconds!r}")
        problems += check_positive("lr", self.lr)
        for name in ("validation_fraction", "significance"):
            if not 0.0 < getattr(self, name) < 1.0:
                problems.append(f"{name} must be between 0 and 1 (exclusive), "
                                f"got {getattr(self, name)!r}")
        if not 0.0 < self.target_precision <= 1.0:
            problems.append(f"target_precision must be in (0, 1], got {self.target_precision!r}")
        problems += check_fraction("min_score_gap", self.min_score_gap)
        if not isinstance(self.seed, int) or not 0 <= self.seed < _SEED_LIMIT:
            problems.append(f"seed must be an integer in [0, 2**31), got {self.seed!r}")
        return problems


class WeakModelError(ValueError):
    """Training produced a model no better than chance, or whose scores barely spread; it was
    not saved. ``metrics`` holds what was measured (also written to ``MODEL.refused.json``)."""

    def __init__(self, message: str, metrics: dict):
        super().__init__(message)
        self.metrics = metrics


WEAK_MODEL_ADVICE = (
    "Give more documents per class (or a larger --validation-fraction), train longer or "
    "faster (--epoch, --lr), and check that --positive and --negative hold different kinds of "
    "text with no mix-up between them; --allow-weak saves the model anyway")


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
                        settings: TrainSettings, *, allow_weak: bool = False) -> dict:
    """Train a quality classifier on ``positive`` (hq) and ``negative`` (lq) documents.

    Documents are held in memory as prepared lines. Each class is shuffled (seeded) and split
    into training and validation parts, so the validation set has the same class balance; the
    model is trained on one thread with the settings' seed and measured on the validation set
    (:func:`validation_metrics`). A weak model (:func:`weak_model_reasons`) raises
    :class:`WeakModelError` and nothing is written under ``output``; its metrics go to
    ``output + ".refused.json"`` for inspection. With ``allow_weak`` it is saved anyway, its
    metrics saying so. Otherwise the model is saved to ``output`` (a local path; written to a
    temporary name and renamed, so an interrupted run leaves no model there) and the metrics
    as JSON to ``output + ".metrics.json"``; they are returned.
    """
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
    del hq, lq

    started = time.perf_counter()
    model = _fit(training, hq_validation, lq_validation, settings)
    train_seconds = time.perf_counter() - started
    metrics = {
        "model": output,
        **validation_metrics([_probability_hq(model, line) for line in hq_validation],
                             [_probability_hq(model, line) for line in lq_validation],
                             settings),
        "train": {"hq": len(hq_train), "lq": len(lq_train)},
        "skipped_empty": {"hq": hq_empty, "lq": lq_empty},
        "train_seconds": round(train_seconds, 3),
        "settings": asdict(settings),
    }
    if settings.autotune_seconds:
        chosen = model.f.getArgs()
        metrics["autotuned"] = {name: getattr(chosen, name) for name in (
            "lr", "epoch", "wordNgrams", "dim", "minn", "maxn", "bucket", "minCount")}
    reasons = weak_model_reasons(metrics, settings)
    metrics["weak"] = reasons
    metrics["allow_weak"] = allow_weak
    if reasons and not allow_weak:
        _write_json(output + ".refused.json", metrics)
        raise WeakModelError(
            f"refused to save a weak model to {output}: {'; '.join(reasons)}. "
            f"{WEAK_MODEL_ADVICE} (measurements in {output}.refused.json)", metrics)
    _save_model(model, output)
    _write_json(output + ".metrics.json", metrics)
    if os.path.exists(output + ".refused.json"):
        os.unlink(output + ".refused.json")  # from an earlier, refused run
    return metrics


def _fit(training: list[str], hq_validation: list[str], lq_validation: list[str],
         settings: TrainSettings):
    """A fastText model trained on the labelled ``training`` lines, on one thread."""
    import fasttext

    common = {"dim": settings.dim, "bucket": settings.bucket, "loss": "softmax", "thread": 1,
              "seed": settings.seed, "verbose": 0}
    with tempfile.TemporaryDirectory(prefix="winnow-quality-train-") as directory:
        train_file = os.path.join(directory, "train.txt")
        with open(train_file, "w", encoding="utf-8") as handle:
            handle.writelines(training)
        if not settings.autotune_seconds:
            return fasttext.train_supervised(
                input=train_file, wordNgrams=settings.word_ngrams, epoch=settings.epoch,
                lr=settings.lr, minCount=settings.min_count, **common)
        validation_file = os.path.join(directory, "validation.txt")
        with open(validation_file, "w", encoding="utf-8") as handle:
            handle.writelines(f"{HQ_LABEL} {line}\n" for line in hq_validation)
            handle.writelines(f"{LQ_LABEL} {line}\n" for line in lq_validation)
        return fasttext.train_supervised(
            input=train_file, autotuneValidationFile=validation_file,
            autotuneDuration=settings.autotune_seconds, **common)


def _save_model(model, output: str) -> None:
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    partial = output + ".partial"
    model.save_model(partial)
    os.replace(partial, output)


def _write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


# ---------------------------------------------------------------------------------------------
# Validation: what the model does on held-out documents, and whether it is usable
# ---------------------------------------------------------------------------------------------

SCORE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SCORE_BINS = 10


def validation_metrics(hq_scores: list[float], lq_scores: list[float],
                       settings: TrainSettings) -> dict:
    """Everything measured on the validation split from each class's P(hq) scores: precision,
    recall, F1 of hq and accuracy at the default ``QualityConfig.threshold``, the confusion
    counts, the score distribution of each class, the gap between the class means, the binomial
    test against always guessing the larger class, and the threshold for
    ``settings.target_precision``."""
    threshold = DEFAULT_THRESHOLD
    true_positive = sum(score >= threshold for score in hq_scores)
    false_positive = sum(score >= threshold for score in lq_scores)
    correct = true_positive + len(lq_scores) - false_positive
    total = len(hq_scores) + len(lq_scores)
    precision = _ratio(true_positive, true_positive + false_positive)
    recall = _ratio(true_positive, len(hq_scores))
    majority_rate = max(len(hq_scores), len(lq_scores)) / total
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "accuracy": correct / total,
        "confusion": {
            "true_positive": true_positive, "false_positive": false_positive,
            "false_negative": len(hq_scores) - true_positive,
            "true_negative": len(lq_scores) - false_positive,
        },
        "validation": {"hq": len(hq_scores), "lq": len(lq_scores)},
        "scores": {"hq": score_distribution(hq_scores), "lq": score_distribution(lq_scores)},
        "score_gap": float(np.mean(hq_scores) - np.mean(lq_scores)),
        "chance": {"majority_rate": majority_rate,
                   "p_value": binomial_tail(correct, total, majority_rate),
                   "best_p_value": binomial_tail(total, total, majority_rate)},
        "threshold_for_precision": threshold_for_precision(
            hq_scores, lq_scores, settings.target_precision),
    }


def score_distribution(scores: list[float]) -> dict:
    """Mean, quantiles and a histogram of ``SCORE_BINS`` equal bins over [0, 1] of P(hq)."""
    counts, edges = np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))
    return {
        "mean": round(float(np.mean(scores)), 4),
        "quantiles": {f"{q:g}": round(float(value), 4)
                      for q, value in zip(SCORE_QUANTILES, np.quantile(scores, SCORE_QUANTILES),
                                          strict=True)},
        "histogram": {"bin_edges": [round(float(edge), 4) for edge in edges],
                      "counts": [int(count) for count in counts]},
    }


def threshold_for_precision(hq_scores: list[float], lq_scores: list[float],
                            target: float) -> dict:
    """The threshold that keeps the most hq validation documents while at least ``target`` of
    the documents it keeps (P(hq) >= threshold) are hq; it is the score of the lowest-scoring
    document kept. ``threshold`` is None when no threshold reaches the target. Precision
    depends on the share of lq in the validation split, which is that of the training
    documents; on crawl with more lq, the same threshold gives a lower precision."""
    ranked = sorted([(score, True) for score in hq_scores] +
                    [(score, False) for score in lq_scores], reverse=True)
    found, hq_kept, lq_kept = None, 0, 0
    for index, (score, is_hq) in enumerate(ranked):
        hq_kept += is_hq
        lq_kept += not is_hq
        if index + 1 < len(ranked) and ranked[index + 1][0] == score:
            continue  # a threshold keeps all documents of equal score or none
        if hq_kept >= target * (hq_kept + lq_kept):
            found = (score, hq_kept, lq_kept)
    if found is None:
        return {"target_precision": target, "threshold": None}
    score, hq_kept, lq_kept = found
    return {"target_precision": target, "threshold": score,
            "precision": hq_kept / (hq_kept + lq_kept), "hq_kept": hq_kept / len(hq_scores),
            "lq_kept": lq_kept / len(lq_scores)}


def binomial_tail(successes: int, trials: int, rate: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, rate), summed in log space (exact for the
    validation sizes we see; no scipy on workers)."""
    if successes <= 0:
        return 1.0
    if rate >= 1.0:
        return 1.0 if successes <= trials else 0.0
    log_terms = [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                 + k * math.log(rate) + (trials - k) * math.log1p(-rate)
                 for k in range(successes, trials + 1)]
    largest = max(log_terms)
    return min(1.0, math.exp(largest) * math.fsum(math.exp(t - largest) for t in log_terms))


def weak_model_reasons(metrics: dict, settings: TrainSettings) -> list[str]:
    """Why the measured model is not usable, one phrase per rule broken; empty when usable.

    Two rules: the validation accuracy at the default threshold must beat always guessing the
    larger class (one-sided exact binomial test at ``settings.significance``), and the mean
    P(hq) of hq validation documents must exceed that of lq ones by ``min_score_gap``: the
    issue 12 model at fastText's defaults scored 0.63 accuracy with every score in 0.45..0.55.
    """
    reasons = []
    chance = metrics["chance"]
    total = metrics["validation"]["hq"] + metrics["validation"]["lq"]
    if chance["best_p_value"] >= settings.significance:
        reasons.append(
            f"the validation split ({total} documents) is too small to tell any model from "
            f"chance: use more documents or a larger --validation-fraction")
    elif chance["p_value"] >= settings.significance:
        reasons.append(
            f"validation accuracy {metrics['accuracy']:.3f} on {total} documents is not shown "
            f"to beat always guessing the larger class ({chance['majority_rate']:.3f}; "
            f"one-sided binomial p = {chance['p_value']:.2g} >= {settings.significance:g})")
    if metrics["score_gap"] < settings.min_score_gap:
        reasons.append(
            f"scores barely spread: mean P(hq) {metrics['scores']['hq']['mean']:.3f} on hq and "
            f"{metrics['scores']['lq']['mean']:.3f} on lq validation documents, a gap of "
            f"{metrics['score_gap']:.3f} < {settings.min_score_gap:g}")
    return reasons


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / denominator if denominator else 0.0
