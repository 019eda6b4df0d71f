import gzip

import pytest

from pipeline.readers import file_format, parse_jsonl_line, read_records
from schemas.config import InputConfig
from schemas.records import Document, Quarantined

CONFIG = InputConfig()


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"text": "unterminated', "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"id": "a"}', "missing_text"),
        (b'{"text": null}', "missing_text"),
        (b'{"text": ["a"]}', "text_not_string"),
        (b'{"text": "caf\xe9"}', "invalid_utf8"),
        (b'{"text": "\\udc80 lone"}', "invalid_unicode"),
        (b"[" * 100_000, "malformed_json"),
    ],
)
def test_bad_lines_are_quarantined_with_their_reason_and_bytes(raw, reason):
    record = parse_jsonl_line(raw, "in.jsonl", 7, CONFIG)
    assert isinstance(record, Quarantined)
    assert (record.reason, record.source, record.position) == (reason, "in.jsonl", 7)
    assert record.raw_prefix == raw[:256]


def test_ids_come_from_the_record_or_from_file_and_position():
    own = parse_jsonl_line(b'{"id": "doc-1", "text": "a"}', "f.jsonl", 3, CONFIG)
    numeric = parse_jsonl_line(b'{"id": 17, "text": "a"}', "f.jsonl", 3, CONFIG)
    missing = parse_jsonl_line(b'{"text": "a"}', "f.jsonl", 3, CONFIG)
    assert [own.id, numeric.id, missing.id] == ["doc-1", "17", "f.jsonl:3"]


def test_field_names_are_configurable():
    config = InputConfig(id_field="url", text_field="content")
    record = parse_jsonl_line(b'{"url": "u", "content": "c", "text": "t"}', "f", 0, config)
    assert isinstance(record, Document)
    assert (record.id, record.text) == ("u", "c")


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    lines = b"".join(b'{"text": "record %d"}\n' % i for i in range(1000))
    data = gzip.compress(lines)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    records = list(read_records(str(path), CONFIG))
    documents = [r for r in records if isinstance(r, Document)]
    assert records[-1].reason == "truncated_file"
    assert [d.text for d in documents] == [f"record {i}" for i in range(len(documents))]
    assert 0 < len(documents) < 1000
    assert records[-1].position == len(documents)


def test_zstd_and_blank_lines(tmp_path):
    import zstandard

    path = tmp_path / "a.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'{"text": "a"}\n\n  \n{"text": "b"}\n'))
    assert [r.text for r in read_records(str(path), CONFIG)] == ["a", "b"]


def test_a_text_file_is_one_document(tmp_path):
    path = tmp_path / "page.txt"
    path.write_text("line one\nline two\n", encoding="utf-8")
    (record,) = read_records(str(path), CONFIG)
    assert (record.id, record.text) == (str(path), "line one\nline two\n")


@pytest.mark.parametrize(
    "name, expected",
    [("a.jsonl", "jsonl"), ("a.jsonl.gz", "jsonl"), ("a.JSONL.ZST", "jsonl"),
     ("a.parquet", "parquet"), ("a.txt", "text"), ("a.md.gz", "text")],
)
def test_format_from_file_name(name, expected):
    assert file_format(name, "auto") == expected
    assert file_format(name, "text") == "text"
