"""Rows of the files that evaluation and fine-tuning read, local or gs:// (schemas.storage): the
formats curate reads (JSONL, Parquet, plain text; gz, zst, bz2, xz) and CSV/TSV for labelled
task data.

A file gives ``Row`` objects in file order. A row that cannot be used is still a row, with
``values`` None and ``problem`` saying why, so callers count it instead of crashing or losing it:
``malformed_json``, ``not_an_object``, ``truncated_file`` (the file ends early; the rows before
the cut were given), ``unreadable_file`` (it could not be opened or parsed at all).
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from winnow.schemas import storage
from winnow.schemas.compressed import STREAM_ERRORS, decompressed, without_compression_suffix
from winnow.schemas.parquet import ParquetFile

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")


@dataclass(frozen=True)
class Row:
    file: str
    position: int
    """0-based: the line of a JSONL file, the record of a CSV or Parquet file."""
    values: dict[str, Any] | None
    problem: str = ""
    """Empty when ``values`` holds the row; else the reason name it does not."""
    detail: str = ""
    """The error behind a problem, for messages."""


def expand_files(patterns: list[str]) -> list[str]:
    """Files named by ``patterns`` (files, folders: every file below them, or globs), sorted
    and without repeats; raises FileNotFoundError naming a pattern that matches nothing."""
    files: set[str] = set()
    for pattern in patterns:
        if storage.is_remote(pattern):
            found = storage.matching_files(pattern)
        elif os.path.isdir(pattern):
            found = [os.path.join(folder, name) for folder, _, names in os.walk(pattern)
                     for name in names if not name.startswith(".")]
        else:
            found = [path for path in glob.glob(pattern) if os.path.isfile(path)]
        if not found:
            raise FileNotFoundError(f"no file matches {pattern}")
        files.update(found)
    return sorted(files)


def row_format(path: str) -> str:
    """jsonl, parquet, csv, tsv or text, from the file name."""
    name = without_compression_suffix(path)
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return name.rsplit(".", 1)[1]
    return "text"


def read_rows(path: str) -> Iterator[Row]:
    """Every row of one file, in file order (see the module docstring for problem rows)."""
    readers = {"jsonl": _jsonl_rows, "parquet": _parquet_rows, "csv": _csv_rows,
               "tsv": _csv_rows, "text": _text_rows}
    position = 0
    try:
        for row in readers[row_format(path)](path):
            position = row.position + 1
            yield row
    except STREAM_ERRORS + (UnicodeDecodeError, csv.Error, pa.ArrowException) as error:
        # A stream that ends inside a block or frame raises EOFError, also before its first row.
        cut = isinstance(error, EOFError) or position > 0
        problem = "truncated_file" if cut else "unreadable_file"
        yield Row(path, position, None, problem, f"{type(error).__name__}: {error}")


def _open(path: str):
    return decompressed(storage.open_read(path), path)


def _jsonl_rows(path: str) -> Iterator[Row]:
    with _open(path) as stream:
        for position, line in enumerate(stream):
            line = line.removeprefix(b"\xef\xbb\xbf").strip()
            if not line:
                continue
            try:
                values = json.loads(line)
            except ValueError:
                yield Row(path, position, None, "malformed_json")
                continue
            if isinstance(values, dict):
                yield Row(path, position, values)
            else:
                yield Row(path, position, None, "not_an_object")


def _csv_rows(path: str) -> Iterator[Row]:
    delimiter = "\t" if row_format(path) == "tsv" else ","
    with _open(path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        for position, values in enumerate(csv.DictReader(text, delimiter=delimiter)):
            yield Row(path, position, dict(values))


def _parquet_rows(path: str) -> Iterator[Row]:
    position = 0
    with storage.open_read(path) as handle:
        for batch in ParquetFile(handle).iter_batches(batch_size=1024):
            for values in batch.to_pylist():
                yield Row(path, position, values)
                position += 1


def _text_rows(path: str) -> Iterator[Row]:
    with _open(path) as stream:
        yield Row(path, 0, {"text": stream.read().decode("utf-8")})


def text_problem(values: dict[str, Any], name: str, suffix: str = "") -> str:
    """Why ``values[name]`` is not a usable text (``missing_text``, ``invalid_text``: not a
    string, ``empty_text``: only whitespace), with ``suffix`` added (``"_pair"`` for the second
    text of a pair task); "" when it is one."""
    value = values.get(name)
    if value is None:
        return f"missing_text{suffix}"
    if not isinstance(value, str):
        return f"invalid_text{suffix}"
    return "" if value.strip() else f"empty_text{suffix}"
