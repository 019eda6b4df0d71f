"""The contract every filter follows.

A filter is a callable ``(text: str) -> str | None``: ``None`` (``KEEP``) keeps the document, a
string drops it and names the reason. Reason names are ``snake_case`` and say what was wrong with
the document (``too_few_words``, not ``word_count``), because they become Beam counter names
(``heuristics/removed:too_few_words``), report keys and the ``reason`` column of ``removed/``.

A filter that measures something may return a ``Drop`` instead of a bare reason: the reason plus
``details`` (the measured value and the bound it crossed), which the stage stores in the
``details`` column of ``removed/`` so that ``winnow report --reason`` shows why.

Each stage's thresholds live in a frozen dataclass next to its rules, with a docstring per field;
``errors()`` returns every invalid setting as a readable message so the config loader can report
them all at once before a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Reason = str | None
"""``None`` keeps the document; a string drops it for that reason."""

KEEP = None
"""The verdict that keeps a document, as a ``Reason`` or a ``Verdict``."""


@dataclass(frozen=True)
class Drop:
    """A drop verdict with its evidence: ``reason`` as above, ``details`` JSON-ready values
    (e.g. ``{"words": 12, "min": 50}``) that go to the ``details`` column of ``removed/``."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)


Verdict = Drop | None
"""``None`` keeps the document; a ``Drop`` removes it for ``Drop.reason``."""


def check_fraction(name: str, value: float) -> list[str]:
    """Validation helper: ``value`` must lie in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        return [f"{name} must be between 0 and 1, got {value!r}"]
    return []


def check_positive(name: str, value: float) -> list[str]:
    """Validation helper: ``value`` must be > 0."""
    if not value > 0:
        return [f"{name} must be greater than 0, got {value!r}"]
    return []
