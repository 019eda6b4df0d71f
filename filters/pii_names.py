"""PII in the strings around a document's text: its id, the input file's name, the record's
input fields, and what stages record about it (``details``, ``metadata``). ``NameRedactor``
redacts them with the text's ``PiiRedactor`` (the same ``PiiConfig``, the same placeholders).

These strings are names rather than prose: a path, a URL, an id built from a path. So a string
is redacted piece by piece between "/" (the text rule never takes an address right after a "/",
which there is a message id, ``lore.kernel.org/r/<id@host>``; in a file or path name it is
not), and a piece without its format suffixes (``john.doe@example.com.jsonl`` is the address
``john.doe@example.com`` and the suffix ``.jsonl``, not an address at the domain
``com.jsonl``); each piece is then redacted with its suffixes, and the whole string once more,
so nothing the text rule would find is left.

Ids are keys as well as labels: kept/ ``id`` joins ``shards/*.documents.jsonl``, removed/
``survivor_id`` names the survivor's row. So every string is redacted by a pure function of
itself, and the same id becomes the same string wherever it is written. Input file names are
also made unique over the run's inputs: two files whose names differ only in PII
(``a@x.org.jsonl``, ``b@y.org.jsonl``) would both be ``<EMAIL>.jsonl``, so the later in sorted
order becomes ``<EMAIL>~2.jsonl``. ``(input_file, input_position)`` then stays unique, and with
it every written document ref, however many redacted ids coincide. Callers redact only what
they write or show: orderings, dedup survivors, pairing and shard assignment keep using the
original values, so redaction changes no decision, and a run whose names hold no PII is
byte-identical to one without redaction. Keys of the input fields are not redacted: they are
the ``fields`` column's schema.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from winnow.filters.pii import PiiConfig, PiiRedactor

FORMAT_SUFFIXES = frozenset(
    ("jsonl", "json", "ndjson", "parquet", "txt", "text", "md", "html",
     "gz", "zst", "zstd", "bz2", "xz", "lzma"))
"""File name suffixes kept apart from the name before it is redacted (input formats and their
compressions, as ``pipeline.readers`` reads them, and plain-text documents)."""

_CACHE_LIMIT = 100_000
"""Redacted strings remembered per redactor (input file names repeat once per document)."""


def split_format_suffix(name: str) -> tuple[str, str]:
    """``"a@b.com.jsonl.gz"`` -> ``("a@b.com", ".jsonl.gz")``: the trailing known suffixes."""
    stem = name
    while True:
        head, dot, suffix = stem.rpartition(".")
        if not dot or not head or suffix.lower() not in FORMAT_SUFFIXES:
            return stem, name[len(stem):]
        stem = head


class NameRedactor:
    """Redacts ids, input file names and the string values of fields, details and metadata.

    ``input_files``: every input file of the run, so that their redacted names are unique."""

    def __init__(self, config: PiiConfig, input_files: Iterable[str] = ()):
        self._redactor = PiiRedactor(config)
        self._cache: dict[str, str] = {}
        self._files = self._unique_file_names(sorted(set(input_files)))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}  # workers start with an empty cache

    def name(self, value: str) -> str:
        """An id, file name or other string outside the text, redacted. An input file keeps
        its unique name, also inside the ``<file>:<position>`` ids of records without one."""
        redacted = self._cache.get(value)
        if redacted is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            redacted = self._cache[value] = self._name(value)
        return redacted

    def leaves(self, value: Any) -> Any:
        """``value`` (a field, a details or metadata dict) with every string in it redacted by
        ``name``; dict keys stay. The same object when nothing changed."""
        if isinstance(value, str):
            return self.name(value)
        if isinstance(value, dict):
            redacted = {key: self.leaves(item) for key, item in value.items()}
            changed = any(redacted[key] is not item for key, item in value.items())
            return redacted if changed else value
        if isinstance(value, (list, tuple)):
            items = [self.leaves(item) for item in value]
            changed = any(new is not old for new, old in zip(items, value, strict=True))
            return type(value)(items) if changed else value
        return value

    def message(self, text: str, file: str) -> str:
        """A parser's message about ``file`` (which it may quote), redacted."""
        return self.name(text.replace(file, self.name(file)) if file else text)

    def _name(self, value: str) -> str:
        mapped = self._files.get(value)
        if mapped is not None:
            return mapped
        head, colon, position = value.rpartition(":")
        if colon and position.isdigit() and head in self._files:
            return f"{self._files[head]}:{position}"  # pipeline.readers' id of a record
        return self._redact_pieces(value)

    def _redact_pieces(self, value: str) -> str:
        if not value:
            return value
        pieces = "/".join(self._redact_piece(piece) for piece in value.split("/"))
        return self._redactor.redact(pieces).text

    def _redact_piece(self, piece: str) -> str:
        stem, suffix = split_format_suffix(piece)
        return self._redactor.redact(self._redactor.redact(stem).text + suffix).text

    def _unique_file_names(self, files: list[str]) -> dict[str, str]:
        """Input file -> its redacted name, unique among all input names; only the files
        whose name changes."""
        redacted = {file: self._redact_pieces(file) for file in files}
        taken = {file for file in files if redacted[file] == file}
        names = {}
        for file in files:
            if redacted[file] == file:
                continue
            name, number = redacted[file], 1
            while name in taken:
                number += 1
                name = _numbered(redacted[file], number)
            taken.add(name)
            names[file] = name
        return names


def _numbered(path: str, number: int) -> str:
    """``dir/<EMAIL>.jsonl`` -> ``dir/<EMAIL>~2.jsonl``."""
    folder, slash, name = path.rpartition("/")
    stem, suffix = split_format_suffix(name)
    return f"{folder}{slash}{stem}~{number}{suffix}"
