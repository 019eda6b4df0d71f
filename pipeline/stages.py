"""The per-document stages: each wraps one module of ``filters/`` as ``Document -> Document |
Removed``. ``pipeline.transforms.ApplyStage`` runs any of them inside Beam and does the counting,
timing and routing of removals for all of them.

Stages that need whole-corpus grouping (exact dedup) are not here but in ``pipeline.dedup``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Union

from filters.heuristics import HeuristicFilter, HeuristicsConfig
from filters.language import LanguageConfig, LanguageIdentifier, language_verdict
from filters.normalize import NormalizeConfig, check_not_empty, normalize_text
from filters.pii import PiiConfig, PiiRedactor
from schemas.records import Document, Removed

Outcome = Union[Document, Removed]


class Stage:
    """One per-document stage. ``setup`` runs once per worker (load models there)."""

    name: str = ""

    def setup(self) -> None:
        pass

    def apply(self, doc: Document) -> Outcome:
        raise NotImplementedError

    def tally(self, doc: Document) -> Mapping[str, int]:
        """Stage-specific counts for a kept document (e.g. PII spans by type)."""
        return {}


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
        reason = self.rules(text)
        if reason:
            return Removed.of(doc, self.name, reason)
        return doc if text == doc.text else _with_text(doc, text)


class LanguageStage(Stage):
    name = "language"

    def __init__(self, config: LanguageConfig):
        self.config = config
        self.identifier: LanguageIdentifier | None = None

    def setup(self) -> None:
        self.identifier = LanguageIdentifier(self.config.model)

    def apply(self, doc: Document) -> Outcome:
        assert self.identifier is not None, "setup() loads the model"
        language, score = self.identifier.predict(doc.text)
        reason = language_verdict(language, score, self.config)
        if reason:
            return Removed.of(doc, self.name, reason, language=language,
                              language_score=round(score, 4))
        return doc.with_metadata(language=language, language_score=round(score, 4))


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

    def tally(self, doc: Document) -> Mapping[str, int]:
        return doc.metadata.get("pii_counts", {})


def _with_text(doc: Document, text: str) -> Document:
    return Document(doc.id, text, doc.source, doc.position, doc.metadata)
