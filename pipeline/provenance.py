"""From a training example back to the input records it came from, with their licences.

A shard names, for each example, the documents of its segments A and B (shard format 2:
``schemas.shard_format.DocumentRef``: id, input file, position). A run folder's kept/ holds each
of those documents with the record's other input fields (``license``, ``url``, ``source``, ...;
``schemas.fields``). ``example_sources`` joins the two:

    >>> from pipeline.provenance import example_sources
    >>> sources = example_sources("runs/sample", 17)
    >>> sources["a"]["fields"]["license"], sources["b"]["input_file"]

An mlm example packs any number of documents: ``ShardReader.documents(i)`` lists them all
(``example_sources`` gives its first as "a" and its last as "b").

``winnow shards show RUN --provenance`` prints the same for a range of examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from winnow.pipeline.filesystem import open_binary
from winnow.pipeline.run_folder import parquet_files
from winnow.schemas.fields import decode
from winnow.schemas.records import FIELDS_COLUMN
from winnow.schemas.shard_format import DocumentRef
from winnow.schemas.shard_reader import ShardReader, shards_folder


def kept_records(run_dir: str, refs: Iterable[DocumentRef]) -> dict[DocumentRef, dict[str, Any]]:
    """The kept/ rows of ``refs`` (without their text), keyed by ref, with ``fields`` decoded.

    Reads only the row groups whose input_file and input_position statistics can hold the
    refs, file by file (local or any Beam filesystem, e.g. gs://). A ref missing from kept/ (a
    shard folder paired with another run) is an error."""
    wanted = set(refs)
    where = (pc.field("input_file").isin(sorted({ref.input_file for ref in wanted}))
             & pc.field("input_position").isin(sorted({ref.input_position for ref in wanted})))
    found = {}
    for path in parquet_files(run_dir, "kept"):
        with open_binary(path) as handle:
            schema = pq.read_schema(handle)
            columns = [name for name in schema.names if name != "text"]
            handle.seek(0)
            # on this thread only: see schemas/parquet.py
            rows = pq.read_table(handle, columns=columns, filters=where, use_threads=False,
                                 pre_buffer=False)
        fields = schema.field(FIELDS_COLUMN)
        for row in rows.to_pylist():
            ref = DocumentRef(row["id"], row["input_file"], row["input_position"])
            if ref in wanted:
                found[ref] = {**row, FIELDS_COLUMN: decode(row[FIELDS_COLUMN], fields) or {}}
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{run_dir}/kept holds no document {missing[0].to_json()}"
                         f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}: "
                         "are these shards from another run?")
    return found


def example_sources(run_dir: str, index: int) -> dict[str, dict[str, Any]]:
    """``{"a": record, "b": record}``: the kept/ rows of the documents example ``index`` of the
    run's shards came from (the same row twice when A and B share a document)."""
    provenance = ShardReader(shards_folder(run_dir)).provenance(index)
    records = kept_records(run_dir, provenance)
    return {"a": records[provenance.a], "b": records[provenance.b]}
