"""Deterministic, atomic Parquet output.

Records are spread over ``num_shards`` files by a 64-bit xxhash of their id (the same on every
machine, unlike Python's ``hash``), sorted by ``(id, source, position)`` inside each file, and
written as ``part-00003-of-00008.parquet``. Every shard index is written, empty or not, so a
folder's file list depends only on the config. A file is written under a temporary name and
renamed when complete, so a killed run never leaves a half-written file under a final name.
Same input, config and pyarrow version: byte-identical files, whatever the runner or worker count.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from apache_beam.io.filesystems import FileSystems

from schemas.records import (
    Document,
    Quarantined,
    Removed,
)

ROW_GROUP_SIZE = 10_000


def shard_name(index: int, num_shards: int) -> str:
    return f"part-{index:05d}-of-{num_shards:05d}.parquet"


def shard_index(record_id: str, num_shards: int) -> int:
    return xxhash.xxh64_intdigest(record_id.encode("utf-8", "surrogatepass")) % num_shards


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and a rename."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary) as handle:
        handle.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def kept_row(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "text": doc.text,
        "source": doc.source,
        "position": doc.position,
        "language": doc.metadata.get("language"),
        "language_score": doc.metadata.get("language_score"),
        "metadata": json.dumps(doc.metadata, sort_keys=True, ensure_ascii=False),
    }


def removed_row(removed: Removed) -> dict[str, Any]:
    return {
        "id": removed.id,
        "stage": removed.stage,
        "reason": removed.reason,
        "text": removed.text,
        "source": removed.source,
        "position": removed.position,
        "details": json.dumps(removed.details, sort_keys=True, ensure_ascii=False),
    }


def quarantined_row(record: Quarantined) -> dict[str, Any]:
    return {
        "id": record.id,
        "source": record.source,
        "position": record.position,
        "reason": record.reason,
        "raw_prefix": record.raw_prefix,
        "detail": record.detail,
    }


def encode_parquet(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    table = pa.Table.from_pylist(rows, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=ROW_GROUP_SIZE,
                   write_statistics=True)
    return buffer.getvalue()


class WriteParquetShards(beam.PTransform):
    """records -> paths of the written files (one per shard, empty shards included)."""

    def __init__(self, directory: str, schema: pa.Schema, to_row: Callable[[Any], dict],
                 num_shards: int):
        super().__init__()
        self.directory = directory
        self.schema = schema
        self.to_row = to_row
        self.num_shards = num_shards

    def expand(self, records):
        num_shards = self.num_shards
        written = (
            records
            | "KeyByShard" >> beam.Map(
                lambda record: (shard_index(record.id, num_shards), record))
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.MapTuple(self._write_shard)
        )
        # Shard indices no record hashed to are written empty afterwards, from the list of written
        # paths. (Flattening empty markers into the records instead made Beam's local runner copy
        # every record through one more stage: it materializes each multi-input Flatten.)
        empty = (
            written
            | "WrittenShards" >> beam.combiners.ToList()
            | "WriteEmptyShards" >> beam.FlatMap(self._write_empty_shards)
        )
        return (written, empty) | "AllShards" >> beam.Flatten()

    def _write_shard(self, index: int, records: Iterable[Any]) -> str:
        ordered = sorted(records, key=lambda r: r.sort_key)
        path = FileSystems.join(self.directory, shard_name(index, self.num_shards))
        write_atomically(path, encode_parquet([self.to_row(r) for r in ordered], self.schema))
        return path

    def _write_empty_shards(self, written_paths: list[str]) -> Iterable[str]:
        written = set(written_paths)
        for index in range(self.num_shards):
            path = FileSystems.join(self.directory, shard_name(index, self.num_shards))
            if path not in written:
                write_atomically(path, encode_parquet([], self.schema))
                yield path
