"""Records that flow through curation, and the Parquet schemas of the run folder.

Every input record ends in exactly one of three places, so that
``input = kept + removed (by reason) + quarantined (by reason)`` holds for every run:

- ``Document``: a decoded record that is still in the corpus (``kept/`` at the end);
- ``Removed``: a document a stage dropped on purpose, with the stage and reason (``removed/``);
- ``Quarantined``: a record that could not be read as a document at all (``quarantined/``):
  malformed JSON, invalid UTF-8, missing text field, a truncated compressed file.

Records are frozen: stages return new ones with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import zstandard

RAW_PREFIX_BYTES = 256
"""How much of a quarantined record's raw bytes is kept for inspection."""


@dataclass(frozen=True)
class Document:
    id: str
    """Stable id: the input's id field, or ``<source>:<record index>`` when it has none."""
    text: str
    source: str
    """The file the document was read from (written as the ``input_file`` column)."""
    position: int = 0
    """0-based record index in ``source`` (the ``input_position`` column); with ``source`` it
    identifies the record even when inputs repeat ids, and orders records deterministically."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """What stages add: ``language``, ``language_score``, ``pii_counts`` and so on."""
    fields: dict[str, Any] = field(default_factory=dict)
    """The input record's other fields (``license``, ``url``, ...; not its id and text), as
    ``input.keep_fields`` and ``input.rename_fields`` select them. Every stage carries them
    unchanged (``dataclasses.replace``) into kept/ or removed/ (``schemas.fields``)."""

    def with_metadata(self, **values: Any) -> Document:
        return dataclasses.replace(self, metadata={**self.metadata, **values})

    def __reduce__(self):
        return _document, (self.id, pack_text(self.text), self.source, self.position,
                           self.metadata, self.fields)

    @property
    def sort_key(self) -> tuple[str, str, int]:
        """Total order used wherever a deterministic choice is needed (survivors, shard order)."""
        return (self.id, self.source, self.position)


@dataclass(frozen=True)
class Removed:
    id: str
    stage: str
    reason: str
    text: str
    source: str
    position: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    """Reason-specific context, e.g. ``survivor_id`` for duplicates."""
    fields: dict[str, Any] = field(default_factory=dict)
    """The removed document's input fields (``Document.fields``)."""

    @classmethod
    def of(cls, doc: Document, stage: str, reason: str, **details: Any) -> Removed:
        return cls(doc.id, stage, reason, doc.text, doc.source, doc.position, details,
                   doc.fields)

    def __reduce__(self):
        return _removed, (self.id, self.stage, self.reason, pack_text(self.text), self.source,
                          self.position, self.details, self.fields)

    @property
    def sort_key(self) -> tuple[str, str, int]:
        return (self.id, self.source, self.position)


@dataclass(frozen=True)
class Quarantined:
    source: str
    position: int
    """0-based record index in ``source`` (a line for JSONL, a row for Parquet)."""
    reason: str
    raw_prefix: bytes
    """The first ``RAW_PREFIX_BYTES`` bytes of the raw record."""
    detail: str = ""
    """The parser's message, e.g. the JSON error."""

    @property
    def id(self) -> str:
        return f"{self.source}:{self.position}"

    @property
    def sort_key(self) -> tuple[str, str, int]:
        return (self.id, self.source, self.position)


# How records travel between Beam stages. Beam's local runner holds every PCollection between
# fused stages as encoded bytes, and its coder for these records is pickle: the text goes
# zstd-compressed (level 1, about 2.8 times smaller on English prose), which shrinks those
# buffers and every copy the runner makes of them (``pipeline.memory`` has the figures).
_CODECS = threading.local()  # zstd (de)compressors are not safe to share between threads


def pack_text(text: str) -> bytes:
    codecs = _codecs()
    return codecs.compressor.compress(text.encode("utf-8", "surrogatepass"))


def unpack_text(packed: bytes) -> str:
    return _codecs().decompressor.decompress(packed).decode("utf-8", "surrogatepass")


def _codecs():
    if not hasattr(_CODECS, "compressor"):
        _CODECS.compressor = zstandard.ZstdCompressor(level=1)
        _CODECS.decompressor = zstandard.ZstdDecompressor()
    return _CODECS


def _document(doc_id, packed, source, position, metadata, fields) -> Document:
    return Document(doc_id, unpack_text(packed), source, position, metadata, fields)


def _removed(doc_id, stage, reason, packed, source, position, details, fields) -> Removed:
    return Removed(doc_id, stage, reason, unpack_text(packed), source, position, details, fields)


# Parquet schemas of the run folder. ``source``/``position`` of the records are written as
# ``input_file``/``input_position``: an input record's own ``source`` field (a corpus name, a
# URL) goes in ``fields`` with its other fields. Metadata and details are JSON strings so that
# stages can add keys without a schema migration; the report reads typed columns from them.
# ``fields`` is a struct whose type a run unifies over all its documents
# (``schemas.fields``, ``with_fields_type``); the schemas below hold null in its place.
KEPT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.large_string()),
        ("input_file", pa.string()),
        ("input_position", pa.int64()),
        ("language", pa.string()),
        ("language_score", pa.float32()),
        ("metadata", pa.string()),
        ("fields", pa.null()),
    ]
)

REMOVED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("text", pa.large_string()),
        ("input_file", pa.string()),
        ("input_position", pa.int64()),
        ("details", pa.string()),
        ("fields", pa.null()),
    ]
)

QUARANTINED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("input_file", pa.string()),
        ("input_position", pa.int64()),
        ("reason", pa.string()),
        ("raw_prefix", pa.binary()),
        ("detail", pa.string()),
    ]
)

FIELDS_COLUMN = "fields"


def with_fields_type(schema: pa.Schema, fields: pa.Field) -> pa.Schema:
    """``schema`` with its ``fields`` column given the run's unified type."""
    return schema.set(schema.get_field_index(FIELDS_COLUMN), fields.with_name(FIELDS_COLUMN))
