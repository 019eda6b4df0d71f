"""A compressed JSONL file cut short, in every compressed format the reader takes.

Whatever the format, the records before the cut come out as documents, in order; the torn last
line is not a ``malformed_json`` record, and the file gets exactly one ``truncated_file``
record, at the position of the first record it lost. zstandard's stream reader used to stop
silently at the cut: a 400-record file cut in half gave its first records plus a
``malformed_json`` torn line, and a small one-frame file cut short vanished from the report.
"""

import bz2
import gzip
import io
import json
import lzma
import random
from collections import Counter

import pytest
import zstandard

from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.readers import InputConfig, read_records
from winnow.schemas.records import Document
from winnow.schemas.report import check_accounting


def _zstd_streamed(data: bytes) -> bytes:
    """As the zstd command writes it: no content size in the frame header."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as writer:
        writer.write(data)
    return out.getvalue()


COMPRESSED_FORMATS = {
    ".gz": gzip.compress,
    # Level 1: 100 kB blocks, so that half of the file holds whole blocks to read.
    ".bz2": lambda data: bz2.compress(data, compresslevel=1),
    ".xz": lzma.compress,
    ".lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
    ".zst": zstandard.ZstdCompressor().compress,
    ".zstd": _zstd_streamed,
}


def _records(count: int) -> bytes:
    """``count`` JSONL records of varied words (text that compresses as prose does)."""
    words = random.Random(14)
    vocabulary = [
        "".join(words.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(words.randint(2, 9)))
        for _ in range(2000)]
    return b"".join(
        json.dumps({"id": f"r{i}", "text": " ".join(words.choices(vocabulary, k=400))}).encode()
        + b"\n" for i in range(count))


CASES = [(case, suffix) for suffix in COMPRESSED_FORMATS for case in ("half", "tiny")]
RECORDS = {"half": 400, "tiny": 3}


def _cut_file(folder, case: str, suffix: str):
    """``half``: 400 records, cut in half; ``tiny``: 3 records (one small frame or block),
    cut 10 bytes short. Returns the path written."""
    whole = COMPRESSED_FORMATS[suffix](_records(RECORDS[case]))
    path = folder / f"{case}-{suffix[1:]}.jsonl{suffix}"
    path.write_bytes(whole[: len(whole) // 2] if case == "half" else whole[:-10])
    return path


@pytest.mark.parametrize("case, suffix", CASES)
def test_a_cut_file_keeps_what_it_held_and_reports_the_cut(tmp_path, case, suffix):
    path = _cut_file(tmp_path, case, suffix)

    records = list(read_records(str(path), InputConfig()))

    documents = [r for r in records if isinstance(r, Document)]
    assert [d.id for d in documents] == [f"r{i}" for i in range(len(documents))]
    assert Counter(r.reason for r in records if not isinstance(r, Document)) == {
        "truncated_file": 1}
    assert records[-1].reason == "truncated_file"
    assert records[-1].position == len(documents)
    if case == "half":
        assert 0 < len(documents) < RECORDS[case]  # the whole blocks before the cut are read


def test_a_run_over_cut_files_reports_each_one(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    files = [_cut_file(inputs, case, suffix) for case, suffix in CASES]

    report = run_curation([str(inputs)], str(tmp_path / "run"), config_from_dict({}))

    documents = report["documents"]
    assert check_accounting(report) == []
    assert documents["quarantined"] == {"truncated_file": len(files)}
    read = sum(1 for path in files for record in read_records(str(path), InputConfig())
               if isinstance(record, Document))
    assert documents["input"] == read + len(files)
