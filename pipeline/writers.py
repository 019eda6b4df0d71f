"""Deterministic, atomic Parquet output, and the run-wide type of the ``fields`` column.

Records are spread over ``num_shards`` files by a 64-bit xxhash of their id (the same on every
machine, unlike Python's ``hash``), sorted by ``(id, source, position)`` inside each file, and
written as ``part-00003-of-00008.parquet``. Every shard index is written, empty or not, so a
folder's file list depends only on the config. A file is written under a temporary name and
renamed when complete, so a killed run never leaves a half-written file under a final name.
Same input, config and pyarrow version: byte-identical files, whatever the runner or worker count.

kept/ and removed/ hold the documents' input fields in one struct column, ``fields``, whose type
``UnifyFieldTypes`` computes over every document read (a global combine; ``schemas.fields`` says
why the result does not depend on order), so every file of both folders has the same type.
"""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystems import FileSystems

from winnow.filters.pii_names import NameRedactor
from winnow.pipeline.packing import packed, unpacked
from winnow.pipeline.readers import InputConfig
from winnow.schemas.fields import (
    FieldType,
    arrow_field,
    declared_struct,
    describe_struct,
    encode,
    fields_column_type,
    merge,
)
from winnow.schemas.records import (
    FIELDS_COLUMN,
    Document,
    Quarantined,
    Removed,
    with_fields_type,
)

ROW_GROUP_SIZE = 10_000


@dataclass(frozen=True)
class OutputConfig:
    num_shards: int = 8
    """Parquet files per output folder (kept/, removed/, quarantined/). Each file's records are
    sorted by id inside one worker, so pick about total size / 256 MB for large corpora."""
    removed_text_max_chars: int = 0
    """Truncate the text stored in removed/ to this many characters; 0 keeps it whole."""
    examples_per_reason: int = 5
    """Example documents per removal reason kept in report.json (PII redacted)."""

    def errors(self) -> list[str]:
        problems = []
        if self.num_shards < 1:
            problems.append(f"num_shards must be at least 1, got {self.num_shards!r}")
        if self.removed_text_max_chars < 0:
            problems.append("removed_text_max_chars must be 0 or more")
        if self.examples_per_reason < 0:
            problems.append("examples_per_reason must be 0 or more")
        return problems


def shard_name(index: int, num_shards: int) -> str:
    return f"part-{index:05d}-of-{num_shards:05d}.parquet"


def shard_index(record_id: str, num_shards: int) -> int:
    return xxhash.xxh64_intdigest(record_id.encode("utf-8", "surrogatepass")) % num_shards


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and a rename."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with FileSystems.create(temporary) as handle:
            handle.write(data)
    except BaseException:  # a full disk: leave no temporary behind
        if FileSystems.exists(temporary):
            FileSystems.delete([temporary])
        raise
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def json_column(value: dict[str, Any]) -> str:
    """The JSON text of a ``metadata`` or ``details`` column: keys sorted, so equal values give
    equal bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def redacted(record: Document | Removed | Quarantined,
             names: NameRedactor | None) -> Document | Removed | Quarantined:
    """``record`` as it is written: with the pii stage on (``names``), its id, input file,
    input fields, details or metadata (near_dup_cluster) and quarantine message redacted
    (``filters.pii_names``). Writers call it after sorting records and assigning them to
    files, which use the original values."""
    if names is None:
        return record
    if isinstance(record, Quarantined):  # its id is "<input file>:<position>"
        return dataclasses.replace(record, source=names.name(record.source),
                                   detail=names.message(record.detail, record.source))
    changes = {"id": names.name(record.id), "source": names.name(record.source),
               "fields": names.leaves(record.fields)}
    if isinstance(record, Removed):
        changes["details"] = names.leaves(record.details)
    else:
        changes["metadata"] = names.leaves(record.metadata)
    return dataclasses.replace(record, **changes)


def kept_row(doc: Document, names: NameRedactor | None = None) -> dict[str, Any]:
    doc = redacted(doc, names)
    return {
        "id": doc.id,
        "text": doc.text,
        "input_file": doc.source,
        "input_position": doc.position,
        "language": doc.metadata.get("language"),
        "language_score": doc.metadata.get("language_score"),
        "metadata": json_column(doc.metadata),
        FIELDS_COLUMN: doc.fields,  # encoded to the run's type by WriteParquetShards
    }


def removed_row(removed: Removed, names: NameRedactor | None = None) -> dict[str, Any]:
    removed = redacted(removed, names)
    return {
        "id": removed.id,
        "stage": removed.stage,
        "reason": removed.reason,
        "text": removed.text,
        "input_file": removed.source,
        "input_position": removed.position,
        "details": json_column(removed.details),
        FIELDS_COLUMN: removed.fields,
    }


def quarantined_row(record: Quarantined, names: NameRedactor | None = None) -> dict[str, Any]:
    record = redacted(record, names)
    return {
        "id": record.id,
        "input_file": record.source,
        "input_position": record.position,
        "reason": record.reason,
        "raw_prefix": record.raw_prefix,
        "detail": record.detail,
    }


def encode_parquet(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    """A Parquet file of ``rows``; without rows, a file with no row group (``pq.write_table``
    writes one of 0 rows, and Hugging Face ``datasets`` fails on a folder holding one)."""
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, schema, compression="zstd", write_statistics=True) as writer:
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema),
                               row_group_size=ROW_GROUP_SIZE)
    return buffer.getvalue()


class FieldTypesFn(beam.CombineFn):
    """docs -> the FieldType of their ``fields``, unified (``schemas.fields.merge``). Starts
    from ``declared``, the struct of the names the config keeps whatever the records hold."""

    def __init__(self, declared: FieldType):
        self.declared = declared

    def create_accumulator(self) -> FieldType:
        return self.declared

    def add_input(self, accumulator: FieldType, doc: Document) -> FieldType:
        return merge(accumulator, describe_struct(doc.fields))

    def merge_accumulators(self, accumulators) -> FieldType:
        unified = self.declared
        for accumulator in accumulators:
            unified = merge(unified, accumulator)
        return unified

    def extract_output(self, accumulator: FieldType) -> FieldType:
        return accumulator


class UnifyFieldTypes(beam.PTransform):
    """docs -> one FieldType: the struct type of every document's ``fields``, for the writers'
    side input. Applied to the documents as read, which are exactly those that end in kept/
    or removed/ (stages never change ``fields``)."""

    def __init__(self, config: InputConfig):
        super().__init__()
        self.declared = declared_struct(config.kept_field_names())

    def expand(self, docs):
        return docs | "UnifyTypes" >> beam.CombineGlobally(FieldTypesFn(self.declared))


class WriteParquetShards(beam.PTransform):
    """records -> paths of the written files (one per shard, empty shards included).

    ``fields_type``: for a schema with a ``fields`` column, the PCollection holding the run's
    one FieldType (``UnifyFieldTypes``); the column takes its Arrow type and each row's
    ``fields`` mapping is encoded to it."""

    def __init__(self, directory: str, schema: pa.Schema, to_row: Callable[[Any], dict],
                 num_shards: int, fields_type=None):
        super().__init__()
        if (FIELDS_COLUMN in schema.names) != (fields_type is not None):
            raise ValueError(f"a schema with a {FIELDS_COLUMN!r} column needs fields_type, "
                             "and only such a schema takes it")
        self.directory = directory
        self.schema = schema
        self.to_row = to_row
        self.num_shards = num_shards
        self.fields_type = fields_type

    def expand(self, records):
        num_shards = self.num_shards
        side = ({} if self.fields_type is None
                else {"fields_type": beam.pvalue.AsSingleton(self.fields_type)})
        written = (
            records
            | "KeyByShard" >> beam.Map(
                lambda record: (shard_index(record.id, num_shards), packed(record)))
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.MapTuple(self._write_shard, **side)
        )
        # Shard indices no record hashed to are written empty afterwards, from the list of written
        # paths. (Flattening empty markers into the records instead made Beam's local runner copy
        # every record through one more stage: it materializes each multi-input Flatten.)
        empty = (
            written
            | "WrittenShards" >> beam.combiners.ToList()
            | "WriteEmptyShards" >> beam.FlatMap(self._write_empty_shards, **side)
        )
        return (written, empty) | "AllShards" >> beam.Flatten()

    def _write_shard(self, index: int, records: Iterable[Any],
                     fields_type: FieldType | None = None) -> str:
        ordered = sorted(map(unpacked, records), key=lambda r: r.sort_key)
        path = FileSystems.join(self.directory, shard_name(index, self.num_shards))
        write_atomically(path, self._encode(ordered, fields_type))
        return path

    def _write_empty_shards(self, written_paths: list[str],
                            fields_type: FieldType | None = None) -> Iterable[str]:
        written = set(written_paths)
        for index in range(self.num_shards):
            path = FileSystems.join(self.directory, shard_name(index, self.num_shards))
            if path not in written:
                write_atomically(path, self._encode([], fields_type))
                yield path

    def _encode(self, records: list[Any], fields_type: FieldType | None) -> bytes:
        rows = [self.to_row(record) for record in records]
        if fields_type is None:
            return encode_parquet(rows, self.schema)
        column_type = fields_column_type(fields_type)
        for row in rows:
            row[FIELDS_COLUMN] = encode(row[FIELDS_COLUMN], column_type)
        schema = with_fields_type(self.schema, arrow_field(FIELDS_COLUMN, column_type))
        return encode_parquet(rows, schema)
