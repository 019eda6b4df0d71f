"""Stage ``exact_dedup``: identical documents keep one copy.

Documents whose normalized text is identical, by a 128-bit xxh3 hash (collisions are negligible
at 10^12 keys, and xxh3 hashes at memory speed), keep one copy: the smallest ``(id, source,
position)``, so the survivor is the same on every runner. Reason ``exact_duplicate``.

Lines repeated across documents are the ``boilerplate`` stage's (``filters.boilerplate``), which
runs after near dedup: documents are decided whole before any of their lines are cut.

The grouping itself is the pipeline's job; here is the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import xxhash

REASONS = ("exact_duplicate",)


@dataclass(frozen=True)
class ExactDedupConfig:
    enabled: bool = True


def document_key(text: str) -> bytes:
    """16-byte key of a whole document; equal texts give equal keys."""
    return xxhash.xxh3_128_digest(text.encode("utf-8"))
