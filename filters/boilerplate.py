"""Stage ``boilerplate``: lines repeated across documents (C4), removed after deduplication.

C4 (Raffel et al. 2020) drops every repeated three-sentence span but one; the line-level form
here: a line of at least ``min_chars`` characters that appears in at least ``min_documents``
documents is kept only in its owner, the document with the smallest ``(id, source,
position)``, and removed from the rest. Lines are compared by a 128-bit xxh3 hash of the
stripped line.

Why after ``near_dedup``, on its survivors only: an article syndicated to three sites shares
every paragraph with its copies. Cut those paragraphs first, and each copy but one becomes a
fragment of its few edited paragraphs, which is a near-duplicate of nothing and survives into
the corpus (on 600 such clusters, only 68% of the copies were removed). Deciding which
documents stay first leaves this stage the lines that distinct documents really share:
licence headers, navigation, sign-up boxes.

A document that loses lines is checked again against the rule it passed whole: it must keep
at least ``min_words`` words (the heuristics stage's Gopher word count, counted the same way),
else it is removed as ``too_short_after_boilerplate``; with nothing left, ``only_boilerplate``.

The grouping by line is the pipeline's job (``pipeline.boilerplate``); here are the keys and
the line surgery.
"""

from __future__ import annotations

from dataclasses import dataclass

import xxhash

from winnow.filters.base import KEEP, Drop, Verdict
from winnow.filters.heuristics import content_words

REASONS = ("only_boilerplate", "too_short_after_boilerplate")


@dataclass(frozen=True)
class BoilerplateConfig:
    enabled: bool = True
    min_documents: int = 3
    """A line counts as boilerplate when at least this many documents (after deduplication)
    contain it."""
    min_chars: int = 30
    """Shorter lines ("Example:", "}") are never treated as boilerplate: they repeat naturally."""

    def errors(self) -> list[str]:
        problems = []
        if self.min_documents < 2:
            problems.append(f"min_documents must be at least 2, got {self.min_documents!r}")
        if self.min_chars < 1:
            problems.append(f"min_chars must be at least 1, got {self.min_chars!r}")
        return problems


def line_key(line: str) -> bytes:
    """16-byte key of one line, ignoring surrounding whitespace."""
    return xxhash.xxh3_128_digest(line.strip().encode("utf-8"))


def boilerplate_candidate_keys(text: str, min_chars: int) -> set[bytes]:
    """Keys of the distinct lines of ``text`` long enough to be considered boilerplate."""
    return {line_key(line) for line in text.split("\n") if len(line.strip()) >= min_chars}


def remove_lines(text: str, keys_to_remove: set[bytes], min_chars: int) -> str:
    """``text`` without the lines whose key is in ``keys_to_remove``; other lines untouched."""
    if not keys_to_remove:
        return text
    kept_lines = [
        line for line in text.split("\n")
        if len(line.strip()) < min_chars or line_key(line) not in keys_to_remove
    ]
    return "\n".join(kept_lines).strip()


def fragment_verdict(text: str, min_words: int) -> Verdict:
    """Keep (``None``) or drop what line removal left of a document. ``min_words`` is the word
    count the document passed whole (1 when no such rule ran); the details give the words left
    against it, as the heuristics' ``too_few_words`` does."""
    if not text.strip():
        return Drop("only_boilerplate")
    words = len(content_words(text.split()))
    if words < min_words:
        return Drop("too_short_after_boilerplate", {"words": words, "min": min_words})
    return KEEP
