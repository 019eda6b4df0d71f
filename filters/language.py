"""Stage 3, ``language``: fastText language identification (lid.176).

Peers keep a document when lid.176's top language is wanted and its probability clears a
threshold: 0.65 in datatrove and DCLM, 0.5 in cc_net. The language and score are kept as metadata
on every surviving document so users can re-slice the corpus later.

Reasons: ``unwanted_language`` (the top language is not in ``languages``) and
``low_language_score`` (it is, but below ``threshold``: mixed-language or garbled text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from winnow.filters.base import KEEP, Reason, check_fraction
from winnow.filters.model_files import is_remote, local_model_file, local_path

REASONS = ("unwanted_language", "low_language_score")

BUNDLED_LID_MODEL = str(Path(__file__).parent / "models" / "lid.176.ftz")
"""lid.176.ftz ships with winnow (see filters/models/NOTICE.md); nothing is downloaded."""


@dataclass(frozen=True)
class LanguageConfig:
    enabled: bool = True
    languages: tuple[str, ...] = ("en",)
    """ISO 639 codes as lid.176 names them (en, de, zh, ...). Empty keeps every language and
    only labels documents."""
    threshold: float = 0.65
    """Minimum probability of the top language (datatrove and DCLM use 0.65, cc_net 0.5)."""
    model: str = ""
    """Path to a fastText language-ID model, local or remote (``gs://...``, read through Beam's
    filesystems); empty means the bundled lid.176.ftz."""

    def errors(self) -> list[str]:
        problems = check_fraction("threshold", self.threshold)
        problems += [f"languages: {code!r} is not a language code" for code in self.languages
                     if not code.replace("_", "").isalpha()]
        if self.model and not is_remote(self.model) and not Path(local_path(self.model)).is_file():
            problems.append(f"model: no file at {self.model!r}")
        return problems


class LanguageIdentifier:
    """Wraps a fastText model; loading takes about 0.1 s, so build one per worker, not per call."""

    def __init__(self, model_path: str = "",
                 open_binary: Callable[[str], IO[bytes]] | None = None):
        """``model_path``: local, or remote (gs://...) read with ``open_binary`` (e.g. Beam's
        ``FileSystems.open``) into a temporary copy; empty: the bundled lid.176.ftz."""
        import fasttext  # imported here so that modules importing this one load without it

        with local_model_file(model_path or BUNDLED_LID_MODEL, "language model",
                              open_binary) as local:
            self._model = fasttext.load_model(local)

    def predict(self, text: str) -> tuple[str, float]:
        """The top language code and its probability. fastText reads one line, so newlines are
        folded into spaces first."""
        labels, scores = self._model.predict(text.replace("\n", " "), k=1)
        if not labels:
            return "unknown", 0.0
        return labels[0].removeprefix("__label__"), float(min(scores[0], 1.0))


def language_verdict(language: str, score: float, config: LanguageConfig) -> Reason:
    """Keep the document when its language is wanted and confidently identified."""
    if config.languages and language not in config.languages:
        return "unwanted_language"
    if score < config.threshold:
        return "low_language_score"
    return KEEP
