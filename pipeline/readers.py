"""Reading input files into ``Document`` or ``Quarantined`` records, one file at a time.

Every record a file holds comes out as exactly one of the two, so nothing is lost: a line that
is not JSON, not UTF-8, has no text field or a non-string text is quarantined with its position
and raw bytes; a record over ``max_document_bytes`` is quarantined as ``document_too_large``
without being parsed; a compressed file that ends early, in any format, yields what it held and
then one ``truncated_file`` record (its torn last line is part of the cut, not a record); a
file that cannot be opened or parsed at all, or whose name Beam cannot carry, yields one
``unreadable_file`` record, as does one that is not in the compression format its name says
(plain JSON named ``.jsonl.gz``) and a symbolic link to nothing (``pipeline.curate`` lists those
too: Beam's listing skips them). Blank lines in JSONL are not records.

Files are opened through Beam's FileSystems (local, gs://, s3://, hdfs://) and decompressed here
with the standard codecs, which read lines at C speed.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import pyarrow as pa

from winnow.filters.normalize import has_lone_surrogate
from winnow.pipeline.filesystem import open_binary
from winnow.schemas.compressed import (
    MAGIC_BYTES,
    STREAM_ERRORS,
    decompressed,
    not_in_its_format,
    without_compression_suffix,
)
from winnow.schemas.parquet import ParquetFile
from winnow.schemas.records import RAW_PREFIX_BYTES, Document, Quarantined

ALL_FIELDS = "*"
"""``input.keep_fields: ["*"]``: keep every field of the input records."""


@dataclass(frozen=True)
class InputConfig:
    id_field: str = "id"
    """JSONL/Parquet field holding the document id. Records without one get
    ``<file>:<record index>``, which is stable across runs."""
    text_field: str = "text"
    """JSONL/Parquet field holding the document text."""
    format: str = "auto"
    """jsonl, parquet, text (one document per file), or auto (by file extension: .jsonl,
    .jsonl.gz, .jsonl.zst, .json, .parquet; anything else is text)."""
    keep_fields: tuple[str, ...] = (ALL_FIELDS,)
    """The record's other fields (not the id and text fields) kept in the ``fields`` column of
    kept/ and removed/: ``["*"]`` every field, ``[]`` none, or a list of names (a listed field a
    record lacks is null)."""
    rename_fields: dict[str, str] = field(default_factory=dict)
    """Input field name -> its name in the ``fields`` column, e.g. ``{meta: crawl_meta}``.
    With ``keep_fields: ["*"]``, a renamed field replaces a record's field that already has
    the new name."""
    max_document_bytes: int = 8_000_000
    """A record larger than this, in bytes as stored (a JSONL line, a text file, a Parquet text
    value in UTF-8), is quarantined as ``document_too_large``; a JSONL line is not even parsed.
    Curating a document takes about 20 times its size in memory, and about 65 times when it
    passes every stage (heuristics off: 45 MB peaked at 3.3 GB; BENCHMARKS.md), so this bounds
    what one document costs a worker (under 0.8 GB). 8 MB keeps whole books (the KJV Bible is
    4.4 MB) and is 8 times Common Crawl's 1 MiB page cap; with the default heuristics nothing
    over 100,000 words (about 0.7 MB of English) is kept anyway. 0: no limit."""

    def errors(self) -> list[str]:
        problems = []
        if self.format not in ("auto", "jsonl", "parquet", "text"):
            problems.append(f"format must be auto, jsonl, parquet or text, got {self.format!r}")
        if self.max_document_bytes < 0:
            problems.append(f"max_document_bytes must be 0 (no limit) or more, got "
                            f"{self.max_document_bytes}")
        return problems + self._keep_fields_errors() + self._rename_fields_errors()

    @property
    def keeps_all_fields(self) -> bool:
        return self.keep_fields == (ALL_FIELDS,)

    def _column_clash(self, name: str) -> str | None:
        """Why ``name`` cannot be a field (it is the id or the text field), else None."""
        if name in (self.id_field, self.text_field):
            kind = "id" if name == self.id_field else "text"
            return f"{name!r} is the {kind} field, stored in its own column"
        return None

    def _keep_fields_errors(self) -> list[str]:
        if self.keeps_all_fields:
            return []
        problems = []
        if ALL_FIELDS in self.keep_fields:
            problems.append('keep_fields: "*" keeps every field and stands alone')
        if len(set(self.keep_fields)) < len(self.keep_fields):
            problems.append(f"keep_fields: names repeat in {list(self.keep_fields)}")
        problems += [f"keep_fields: {why}"
                     for why in map(self._column_clash, self.keep_fields) if why]
        return problems

    def _rename_fields_errors(self) -> list[str]:
        problems = []
        for old, new in self.rename_fields.items():
            if not isinstance(old, str) or not isinstance(new, str) or not new:
                problems.append(f"rename_fields: {old!r}: {new!r} must map a name to a "
                                "non-empty name")
            elif self._column_clash(old):
                problems.append(f"rename_fields: {self._column_clash(old)}")
            elif not self.keeps_all_fields and old not in self.keep_fields:
                problems.append(f"rename_fields: {old!r} is not in keep_fields")
            elif new in self.keep_fields and new not in self.rename_fields:
                problems.append(f"rename_fields: {old!r} would replace the kept field {new!r}")
        targets = list(self.rename_fields.values())
        if len(set(map(repr, targets))) < len(targets):
            problems.append(f"rename_fields: two fields get the same name in {targets}")
        return problems

    def kept_field_names(self) -> list[str]:
        """The names ``fields`` holds whatever the records hold (after renaming); empty when
        every field is kept (the records decide then)."""
        if self.keeps_all_fields:
            return []
        return [self.rename_fields.get(name, name) for name in self.keep_fields]


Record = Document | Quarantined

_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def file_format(path: str, configured: str) -> str:
    """jsonl, parquet or text, from the config or else the file name."""
    if configured != "auto":
        return configured
    name = without_compression_suffix(path)
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def read_records(path: str, config: InputConfig) -> Iterator[Record]:
    """All records of one file, in file order."""
    if os.path.islink(path) and not os.path.exists(path):  # local only: os sees no gs://
        yield Quarantined(path, 0, "unreadable_file", b"", f"a symbolic link to "
                          f"{os.readlink(path)}, which does not exist")
        return
    readers = {"jsonl": _read_jsonl, "parquet": _read_parquet, "text": _read_text}
    try:
        yield from readers[file_format(path, config.format)](path, config)
    except STREAM_ERRORS as error:
        # Raised before the first record: the file could not be opened or is not what its name
        # says. Mid-file stream errors are handled inside the readers with their position.
        yield Quarantined(path, 0, "unreadable_file", b"", f"{type(error).__name__}: {error}")


def carried_name(path: str) -> tuple[str, bool]:
    """``(path, True)`` when the file name is valid UTF-8, the only names Beam's string coder
    carries to a worker; else ``(the name with those bytes written as \\xNN, False)``.

    Linux allows any bytes in a name; Python holds the ones that are not UTF-8 as lone
    surrogates (PEP 383), which no UTF-8 encoder accepts."""
    try:
        path.encode("utf-8")
        return path, True
    except UnicodeEncodeError:
        pass
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), False
    except UnicodeEncodeError:  # a surrogate that does not stand for a byte: \udXXX
        return path.encode("utf-8", "backslashreplace").decode("utf-8"), False


def unreadable_name(escaped_name: str) -> Quarantined:
    """The record of a file that was not read because Beam cannot carry its name."""
    return Quarantined(escaped_name, 0, "unreadable_file", b"",
                       "the file name is not valid UTF-8 (its other bytes are shown as \\xNN): "
                       "Beam cannot carry it to a worker, so the file was not read")


def open_decompressed(path: str) -> IO[bytes]:
    """The file's contents (any Beam filesystem), decompressed by its suffix."""
    return decompressed(open_binary(path), path)


def _stream_failure(path: str, position: int, error: Exception) -> Quarantined:
    """The record of a decompression error at record ``position``: ``unreadable_file`` when
    the file is not in the format its suffix names (plain text named .gz: gzip says "Not a
    gzipped file"), else ``truncated_file`` (the stream ended early or broke). The first bytes
    are read again only here, on the error path."""
    with open_binary(path) as raw:
        mismatch = not_in_its_format(raw.read(MAGIC_BYTES), path)
    if mismatch is not None:
        return Quarantined(path, 0, "unreadable_file", b"", mismatch)
    return Quarantined(path, position, "truncated_file", b"", f"{type(error).__name__}: {error}")


def _read_jsonl(path: str, config: InputConfig) -> Iterator[Record]:
    position = 0
    limit = config.max_document_bytes
    with open_decompressed(path) as stream:
        while True:
            try:
                raw_line, size = _next_line(stream, limit)
            except STREAM_ERRORS as error:
                # The torn last line is part of the truncation, not a malformed record.
                yield _stream_failure(path, position, error)
                return
            if not raw_line:
                return
            if size is not None:
                yield Quarantined(path, position, "document_too_large",
                                  raw_line[:RAW_PREFIX_BYTES], _too_large(f"{size:,}", limit))
            elif not raw_line.strip():
                continue  # blank lines are not records
            else:
                # A byte order mark opens files written by Windows tools, and every part of
                # files joined with cat: it is not JSON, and never a record's content.
                line = raw_line.removeprefix(codecs.BOM_UTF8).rstrip(b"\r\n")
                yield parse_jsonl_line(line, path, position, config)
            position += 1


def _next_line(stream: IO[bytes], limit: int) -> tuple[bytes, int | None]:
    """The next line (b"" at the end) and, when it is longer than ``limit`` bytes, its size:
    then only its first ``limit`` bytes are returned, and the rest is read past in pieces, so
    that one line never costs more than ``limit`` bytes of memory."""
    line = stream.readline(limit + 1 if limit else -1)
    if not limit or len(line.rstrip(b"\r\n")) <= limit:
        return line, None
    size, rest = len(line), line
    while rest and not rest.endswith(b"\n"):
        rest = stream.readline(1 << 20)
        size += len(rest)
    return line[:limit], size - (1 if rest.endswith(b"\n") else 0)


def _too_large(size: str, limit: int) -> str:
    """The detail of a ``document_too_large`` record: ``size`` says how large it is."""
    return f"{size} bytes, over input.max_document_bytes ({limit:,})"


def _over_limit(text: str, limit: int) -> bool:
    """``text`` takes more than ``limit`` bytes in UTF-8 (encoded only when the length does not
    tell: a character takes 1 to 4 bytes)."""
    if not limit or len(text) * 4 <= limit:
        return False
    return len(text) > limit or len(text.encode("utf-8")) > limit


def parse_jsonl_line(raw: bytes, path: str, position: int, config: InputConfig) -> Record:
    """One JSONL line as a Document, or Quarantined with the reason it is not one."""
    def quarantine(reason: str, detail: str) -> Quarantined:
        return Quarantined(path, position, reason, raw[:RAW_PREFIX_BYTES], detail)

    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return quarantine("invalid_utf8", str(error))
    try:
        value = json.loads(line)
    except ValueError as error:  # json.JSONDecodeError, and RecursionError-free ValueErrors
        return quarantine("malformed_json", str(error))
    except RecursionError:
        return quarantine("malformed_json", "nesting too deep")
    if not isinstance(value, dict):
        return quarantine("not_an_object", f"top-level {type(value).__name__}")
    # Only a \ud800..\udfff escape puts a surrogate into decoded JSON (the line is valid UTF-8);
    # pairs (emoji) match too, and the check after this one tells them apart.
    return _document_from_record(value, path, position, config, quarantine,
                                 escapes=_SURROGATE_ESCAPE.search(raw) is not None)


def _document_from_record(record: dict, path: str, position: int, config: InputConfig,
                          quarantine, escapes: bool = False) -> Record:
    """``escapes``: string values may hold lone surrogates (JSON ``\\ud800``)."""
    text = record.get(config.text_field)
    if text is None:
        return quarantine("missing_text", f"no {config.text_field!r} field")
    if not isinstance(text, str):
        return quarantine("text_not_string", f"{config.text_field!r} is {type(text).__name__}")
    if has_lone_surrogate(text):
        return quarantine("invalid_unicode", "text holds a lone surrogate code point")
    fields = other_fields(record, config)
    return Document(
        id=_document_id(record.get(config.id_field), path, position),
        text=text,
        source=path,
        position=position,
        fields=replace_lone_surrogates(fields) if escapes else fields,
    )


def other_fields(record: dict, config: InputConfig) -> dict:
    """The record's fields for ``Document.fields``: all but the id and text fields (or those
    ``keep_fields`` lists), renamed by ``rename_fields``."""
    if config.keeps_all_fields:
        own = (config.id_field, config.text_field)
        kept = [(name, value) for name, value in record.items() if name not in own]
    else:
        kept = [(name, record[name]) for name in config.keep_fields if name in record]
    renames = config.rename_fields
    if not renames:
        return dict(kept)
    fields = {name: value for name, value in kept if name not in renames}
    fields.update((renames[name], value) for name, value in kept if name in renames)
    return fields


def replace_lone_surrogates(value):
    """``value`` with every lone surrogate in its strings and keys replaced by U+FFFD: UTF-8 (and
    so Parquet) cannot hold them. A field is context, not text to curate: it is kept, not
    quarantined (the text field is, as ``invalid_unicode``)."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value) if has_lone_surrogate(value) else value
    if isinstance(value, dict):
        return {replace_lone_surrogates(k): replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    return value


def _document_id(value: object, path: str, position: int) -> str:
    """The record's own id when it has a usable one, else ``<path>:<position>``."""
    if isinstance(value, str) and value and not has_lone_surrogate(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{path}:{position}"


def _read_parquet(path: str, config: InputConfig) -> Iterator[Record]:
    with open_binary(path) as raw:
        try:
            parquet = ParquetFile(raw)
        except (pa.ArrowException, OSError) as error:
            yield Quarantined(path, 0, "unreadable_file", b"", f"{type(error).__name__}: {error}")
            return
        columns = parquet.schema_arrow.names
        if not config.keeps_all_fields:
            wanted = {config.id_field, config.text_field, *config.keep_fields}
            columns = [name for name in columns if name in wanted]
        position = 0
        try:
            for batch in parquet.iter_batches(batch_size=rows_per_batch(parquet.metadata),
                                              columns=columns):
                for row in batch.to_pylist():
                    yield _parquet_row(row, path, position, config)
                    position += 1
        except (pa.ArrowException, OSError) as error:
            yield Quarantined(path, position, "truncated_file", b"",
                              f"{type(error).__name__}: {error}")


PARQUET_BATCH_ROWS = 1024
PARQUET_BATCH_BYTES = 64 * 1024 * 1024
"""A Parquet input is read in batches of at most PARQUET_BATCH_ROWS rows and about this many
uncompressed bytes: each batch is decoded whole (and made Python objects) before a row's size
is checked, so 1024 book-length rows at once would be gigabytes on one worker."""


def rows_per_batch(metadata) -> int:
    """Rows per batch of a Parquet file (``pyarrow.parquet.FileMetaData``): by its mean row
    size over all columns (an overestimate when fewer are read: smaller batches, the safe
    side), 1 to PARQUET_BATCH_ROWS."""
    stored = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if not metadata.num_rows or not stored:
        return PARQUET_BATCH_ROWS
    return max(1, min(PARQUET_BATCH_ROWS, PARQUET_BATCH_BYTES * metadata.num_rows // stored))


def _parquet_row(row: dict, path: str, position: int, config: InputConfig) -> Record:
    def quarantine(reason: str, detail: str) -> Quarantined:
        return Quarantined(path, position, reason, repr(row)[:RAW_PREFIX_BYTES].encode(), detail)

    text, limit = row.get(config.text_field), config.max_document_bytes
    if isinstance(text, str) and _over_limit(text, limit):
        return quarantine("document_too_large",
                          _too_large(f"{len(text.encode('utf-8')):,}", limit))
    return _document_from_record(row, path, position, config, quarantine)


def _read_text(path: str, config: InputConfig) -> Iterator[Record]:
    """A plain text file is one document, with its path as id; one over the size limit is
    read no further than the limit."""
    limit = config.max_document_bytes
    with open_decompressed(path) as stream:
        try:
            raw = stream.read(limit + 1 if limit else -1)
        except STREAM_ERRORS as error:
            yield _stream_failure(path, 0, error)
            return
    if limit and len(raw) > limit:
        yield Quarantined(path, 0, "document_too_large", raw[:RAW_PREFIX_BYTES],
                          _too_large(f"more than {limit:,}", limit))
        return
    try:
        text = raw.decode("utf-8-sig")  # without a leading byte order mark
    except UnicodeDecodeError as error:
        yield Quarantined(path, 0, "invalid_utf8", raw[:RAW_PREFIX_BYTES], str(error))
        return
    yield Document(id=path, text=text, source=path, position=0)
