"""Stage 4, ``exact_dedup``: identical documents and boilerplate lines.

Two passes, both keyed by a 128-bit xxh3 hash (collisions are negligible at 10^12 keys, and xxh3
hashes at memory speed):

1. Documents whose normalized text is identical keep one copy: the smallest id, so the survivor
   is the same on every runner. Reason ``exact_duplicate``.
2. C4-style boilerplate lines (Raffel et al. 2020 drop every repeated three-sentence span but
   one): a line of at least ``boilerplate_min_chars`` characters that appears in at least
   ``boilerplate_min_documents`` documents is kept only in its owner, the document with the
   smallest id, and removed from the rest. A document left with nothing is dropped as
   ``only_boilerplate``.

The grouping itself is the pipeline's job; here are the keys and the line surgery.
"""

from __future__ import annotations

from dataclasses import dataclass

import xxhash

from filters.base import KEEP, Reason

REASONS = ("exact_duplicate", "only_boilerplate")


@dataclass(frozen=True)
class ExactDedupConfig:
    enabled: bool = True
    boilerplate_lines: bool = True
    """Remove lines that repeat across many documents (C4)."""
    boilerplate_min_documents: int = 3
    """A line counts as boilerplate when at least this many documents contain it."""
    boilerplate_min_chars: int = 30
    """Shorter lines ("Example:", "}") are never treated as boilerplate: they repeat naturally."""

    def errors(self) -> list[str]:
        problems = []
        if self.boilerplate_min_documents < 2:
            problems.append("boilerplate_min_documents must be at least 2, "
                            f"got {self.boilerplate_min_documents!r}")
        if self.boilerplate_min_chars < 1:
            problems.append(f"boilerplate_min_chars must be at least 1, "
                            f"got {self.boilerplate_min_chars!r}")
        return problems


def document_key(text: str) -> bytes:
    """16-byte key of a whole document; equal texts give equal keys."""
    return xxhash.xxh3_128_digest(text.encode("utf-8"))


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


def check_has_content(text: str) -> Reason:
    return "only_boilerplate" if not text.strip() else KEEP
