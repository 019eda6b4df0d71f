"""Inputs whose records carry fields of every kind (nested, null, conflicting types, NaN,
beyond int64), in JSONL with a byte order mark and CRLF line ends, Parquet and plain text."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.pipeline.bad_inputs import GOOD_TEXT

JSONL_RECORDS = [
    {"id": "k1", "text": GOOD_TEXT, "source": "crawl-A", "license": "CC-BY-4.0",
     "url": "https://a.example/1", "lang": "en", "label": 1,
     "meta": {"tags": ["x", "y"], "depth": 1}, "score": 1},
    {"id": "k2", "text": "Second page. " + GOOD_TEXT, "source": "crawl-B", "license": None,
     "label": "spam", "meta": {"depth": None, "extra": {}}, "score": 0.25, "big": 2**70},
    {"id": "r1", "text": "too short to keep", "license": "MIT", "score": float("nan")},
]
PARQUET_RECORD = {"id": "p1", "text": "From a table. " + GOOD_TEXT, "license": "PD",
                  "source": "books", "n_tokens": 123}


def write_inputs(folder: Path) -> None:
    """JSONL with a byte order mark and CRLF line ends, a Parquet table, a text file with a
    byte order mark and CRLF line ends."""
    folder.mkdir()
    lines = b"".join(json.dumps(record).encode() + b"\r\n" for record in JSONL_RECORDS)
    (folder / "records.jsonl").write_bytes(b"\xef\xbb\xbf" + lines)
    pq.write_table(pa.Table.from_pylist([PARQUET_RECORD]), folder / "table.parquet")
    page = GOOD_TEXT.replace(". ", ".\r\n")
    (folder / "page.txt").write_bytes(b"\xef\xbb\xbf" + page.encode() + b"\r\n")
