"""Documents larger than ``input.max_document_bytes`` are quarantined by the reader as
``document_too_large``, before they are parsed: one 45 MB document took 3.5 GB of a worker."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.pipeline.config import ConfigError, config_from_dict
from winnow.pipeline.readers import InputConfig, read_records
from winnow.schemas.records import Document, Quarantined

LIMIT = InputConfig(max_document_bytes=100)


def _line(text: str) -> bytes:
    return json.dumps({"text": text}).encode() + b"\n"


def _fates(path) -> list[tuple[int, str]]:
    return [(r.position, r.reason if isinstance(r, Quarantined) else "document")
            for r in read_records(str(path), LIMIT)]


@pytest.mark.parametrize("name, compress", [("in.jsonl", bytes), ("in.jsonl.gz", gzip.compress)])
def test_a_line_over_the_limit_is_quarantined_and_the_next_ones_are_read(tmp_path, name,
                                                                         compress):
    at_limit = _line("a" * 88)  # 100 bytes without its newline: kept
    over = _line("b" * 89)
    # Not JSON at all: the size is judged before the line is parsed.
    unparsed = b'{"text": "' + b"c" * 5000 + b"\n"
    path = tmp_path / name
    path.write_bytes(compress(at_limit + over + b"\n" + unparsed + _line("d")))

    assert _fates(path) == [(0, "document"), (1, "document_too_large"),
                            (2, "document_too_large"), (3, "document")]
    too_large = [r for r in read_records(str(path), LIMIT) if isinstance(r, Quarantined)]
    assert [r.detail for r in too_large] == [
        "101 bytes, over input.max_document_bytes (100)",
        "5,010 bytes, over input.max_document_bytes (100)"]
    assert too_large[1].raw_prefix == unparsed[:100]


def test_a_text_file_over_the_limit_is_not_read_past_it(tmp_path):
    (tmp_path / "small.txt").write_text("s" * 100)
    (tmp_path / "large.txt.gz").write_bytes(gzip.compress(b"l" * 101))
    assert _fates(tmp_path / "small.txt") == [(0, "document")]
    (large,) = read_records(str(tmp_path / "large.txt.gz"), LIMIT)
    assert (large.reason, large.detail) == (
        "document_too_large", "more than 100 bytes, over input.max_document_bytes (100)")


def test_a_parquet_text_over_the_limit_counts_utf8_bytes(tmp_path):
    # 26 characters, 104 bytes: over the limit by bytes, not by characters.
    texts = ["e" * 100, "\U0001f600" * 26, "f"]
    pq.write_table(pa.table({"text": texts}), tmp_path / "in.parquet")
    assert _fates(tmp_path / "in.parquet") == [(0, "document"), (1, "document_too_large"),
                                               (2, "document")]


def test_zero_turns_the_limit_off_and_a_negative_limit_is_refused(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(_line("g" * 1000))
    (record,) = read_records(str(path), InputConfig(max_document_bytes=0))
    assert isinstance(record, Document)
    with pytest.raises(ConfigError, match="max_document_bytes"):
        config_from_dict({"input": {"max_document_bytes": -1}})
