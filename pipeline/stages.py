"""The per-document stages: each wraps one module of ``filters/`` as ``Document -> Document |
Removed``. ``pipeline.transforms.ApplyStage`` runs any of them inside Beam and does the counting,
timing and routing of removals for all of them.

Stages that need whole-corpus grouping (exact and near dedup) are not here but in
``pipeline.dedup`` and ``pipeline.near_dedup``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from winnow.filters.base import Verdict
from winnow.filters.heuristics import HeuristicFilter, HeuristicsConfig, measure_bounds
from winnow.filters.language import LanguageConfig, LanguageIdentifier, language_verdict
from winnow.filters.normalize import NormalizeConfig, check_not_empty, normalize_text
from winnow.filters.pii import PiiConfig, PiiRedactor
from winnow.filters.quality import QualityConfig, QualityScorer, load_quality_model, quality_verdict
from winnow.pipeline.filesystem import open_binary
from winnow.schemas.records import Document, Removed

Outcome = Document | Removed


class Stage:
    """One per-document stage. ``setup`` runs once per worker (load models there)."""

    name: str = ""

    def setup(self) -> None:
        pass

    def apply(self, doc: Document) -> Outcome:
        raise NotImplementedError

    def tally(self, outcome: Outcome) -> Mapping[str, int]:
        """Stage-specific counts for one outcome, kept or removed (PII spans by type, quality
        score bins); they are summed into the report and into Beam counters."""
        return {}

    def measures(self, doc: Document) -> Mapping[str, float]:
        """The values this stage's thresholds are held to, measured on one document whatever
        its outcome (``{measure: value}``); the report draws their distributions."""
        return {}

    def bounds(self, measure: str) -> Mapping[str, float]:
        """``{"min": bound}`` and/or ``{"max": bound}`` of a measure."""
        return {}

    def apply_and_measure(self, doc: Document) -> tuple[Outcome, Mapping[str, float]]:
        """``apply`` and ``measures`` of one document; a stage whose verdict comes from its
        measures overrides it to measure once."""
        return self.apply(doc), self.measures(doc)


class NormalizeStage(Stage):
    name = "normalize"

    def __init__(self, config: NormalizeConfig):
        self.config = config

    def apply(self, doc: Document) -> Outcome:
        text = normalize_text(doc.text, self.config)
        reason = check_not_empty(text)
        if reason:
            return Removed.of(doc, self.name, reason)
        return doc if text == doc.text else _with_text(doc, text)


class HeuristicsStage(Stage):
    name = "heuristics"

    def __init__(self, config: HeuristicsConfig):
        self.config = config
        self.rules = HeuristicFilter(config)

    def apply(self, doc: Document) -> Outcome:
        text = self.rules.clean(doc.text)
        return self._outcome(doc, text, self.rules(text))

    def measures(self, doc: Document) -> Mapping[str, float]:
        return self.apply_and_measure(doc)[1]

    def apply_and_measure(self, doc: Document) -> tuple[Outcome, Mapping[str, float]]:
        """The verdict and the measures from one pass of the rules (``HeuristicFilter.judge``):
        measuring every document again after its verdict cost the stage 1.65x its CPU time."""
        text = self.rules.clean(doc.text)
        drop, measures = self.rules.judge(text)
        return self._outcome(doc, text, drop), measures

    def _outcome(self, doc: Document, text: str, drop: Verdict) -> Outcome:
        if drop:  # details: the measured value and the bound it crossed
            return Removed.of(doc, self.name, drop.reason, **drop.details)
        return doc if text == doc.text else _with_text(doc, text)

    def bounds(self, measure: str) -> Mapping[str, float]:
        return measure_bounds(self.config, measure)


class LanguageStage(Stage):
    name = "language"

    def __init__(self, config: LanguageConfig):
        self.config = config
        self.identifier: LanguageIdentifier | None = None

    def setup(self) -> None:
        self.identifier = LanguageIdentifier(self.config.model, open_binary)

    def apply(self, doc: Document) -> Outcome:
        assert self.identifier is not None, "setup() loads the model"
        language, score = self.identifier.predict(doc.text)
        reason = language_verdict(language, score, self.config)
        if reason:
            return Removed.of(doc, self.name, reason, language=language,
                              language_score=round(score, 4))
        return doc.with_metadata(language=language, language_score=round(score, 4))

    def tally(self, outcome: Outcome) -> Mapping[str, int]:
        """The language mix: ``kept_language:en``, ``removed_language:de``, ..."""
        if isinstance(outcome, Removed):
            return {f"removed_language:{outcome.details['language']}": 1}
        return {f"kept_language:{outcome.metadata['language']}": 1}


class QualityStage(Stage):
    """Scores every document with the user's fastText classifier; keeps the score as metadata
    and drops by threshold or seeded Pareto sampling (``filters.quality``)."""

    name = "quality"
    HISTOGRAM_BINS = 20

    def __init__(self, config: QualityConfig):
        self.config = config
        self.scorer: QualityScorer | None = None

    def setup(self) -> None:
        self.scorer = load_quality_model(self.config.model, open_binary)

    def apply(self, doc: Document) -> Outcome:
        assert self.scorer is not None, "setup() loads the model"
        score = round(self.scorer.score(doc.text), 4)
        reason = quality_verdict(score, doc.id, self.config)
        if reason:
            return Removed.of(doc, self.name, reason, quality_score=score)
        return doc.with_metadata(quality_score=score)

    def tally(self, outcome: Outcome) -> Mapping[str, int]:
        score = (outcome.details if isinstance(outcome, Removed) else outcome.metadata)[
            "quality_score"]
        return {score_bin_name(score, self.HISTOGRAM_BINS): 1}


def score_bin_name(score: float, bins: int) -> str:
    """Tally key of the histogram bin holding ``score`` in [0, 1]: ``score_bin:07``."""
    return f"score_bin:{min(int(score * bins), bins - 1):02d}"


def length_bin_name(chars: int) -> str:
    """Tally key of the log2 length bin of a text of ``chars`` characters: ``chars_bin:07``.
    Bin k holds lengths in [2 ** (k - 1), 2 ** k) (bin 0: empty), i.e. ``chars.bit_length()``."""
    return f"chars_bin:{chars.bit_length():02d}"


COUNT_MEASURES = ("words", "stop_words", "sentences")
"""Measures that count (log2 bins, as lengths); the others are ratios (linear bins)."""
LINEAR_BINS = {"mean_word_length": (0.5, 40)}
"""Measure -> (bin width, bins) of its linear histogram; by default (0.02, 50) over [0, 1].
Values past the last bin count in it."""
DEFAULT_LINEAR_BINS = (0.02, 50)


def measure_bin(measure: str, value: float) -> int:
    """The histogram bin of a measured value: ``value.bit_length()`` for counts (bin k holds
    [2 ** (k - 1), 2 ** k)), else ``value // width`` up to the last bin."""
    if measure in COUNT_MEASURES:
        return int(value).bit_length()
    width, bins = LINEAR_BINS.get(measure, DEFAULT_LINEAR_BINS)
    return min(int(value / width + 1e-9), bins - 1)  # 0.3 / 0.02 is 14.999...


def measure_bin_name(measure: str, value: float) -> str:
    """Tally key of a measured value's histogram bin: ``measure_bin:words:07``."""
    return f"{MEASURE_BIN}{measure}:{measure_bin(measure, value):02d}"


MEASURE_BIN = "measure_bin:"


class PiiStage(Stage):
    name = "pii"

    def __init__(self, config: PiiConfig):
        self.config = config
        self.redactor = PiiRedactor(config)

    def apply(self, doc: Document) -> Outcome:
        redaction = self.redactor.redact(doc.text)
        if not redaction.counts:
            return doc
        return _with_text(doc, redaction.text).with_metadata(pii_counts=dict(redaction.counts))

    def tally(self, outcome: Outcome) -> Mapping[str, int]:
        return outcome.metadata.get("pii_counts", {}) if isinstance(outcome, Document) else {}


def _with_text(doc: Document, text: str) -> Document:
    return dataclasses.replace(doc, text=text)
