import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winnow.pipeline.readers import InputConfig, file_format, parse_jsonl_line, read_records
from winnow.schemas.records import Document, Quarantined

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


RECORD = {"id": "d1", "text": "words", "source": "crawl-2024", "license": "CC-BY-4.0",
          "url": "https://example.org/a", "lang": None, "label": 3,
          "meta": {"authors": ["Ann", "Bo"], "depth": {"level": 2}, "empty": {}}}
OTHER_FIELDS = {name: value for name, value in RECORD.items() if name not in ("id", "text")}


def test_every_other_field_of_a_jsonl_record_is_kept_as_is():
    doc = parse_jsonl_line(json.dumps(RECORD).encode(), "in.jsonl", 4, CONFIG)
    assert (doc.id, doc.text, doc.source, doc.position) == ("d1", "words", "in.jsonl", 4)
    assert doc.fields == OTHER_FIELDS


def test_fields_are_limited_and_renamed_by_the_config():
    config = InputConfig(keep_fields=("license", "meta", "missing"),
                         rename_fields={"meta": "crawl_meta"})
    doc = parse_jsonl_line(json.dumps(RECORD).encode(), "in.jsonl", 0, config)
    assert doc.fields == {"license": "CC-BY-4.0", "crawl_meta": RECORD["meta"]}
    # A renamed field wins over a kept field that already has its new name.
    swap = InputConfig(rename_fields={"source": "license"})
    doc = parse_jsonl_line(json.dumps(RECORD).encode(), "in.jsonl", 0, swap)
    assert doc.fields["license"] == "crawl-2024" and "source" not in doc.fields
    none = parse_jsonl_line(json.dumps(RECORD).encode(), "in.jsonl", 0,
                            InputConfig(keep_fields=()))
    assert none.fields == {}


def test_parquet_records_keep_every_column(tmp_path):
    path = tmp_path / "t.parquet"
    meta = {"authors": ["Ann", "Bo"], "depth": {"level": 2}}  # Parquet has no empty struct
    record = {**RECORD, "meta": meta}
    pq.write_table(pa.Table.from_pylist([record, {"id": "d2", "text": "more", "label": None}]),
                   path)
    first, second = read_records(str(path), CONFIG)
    assert first.fields == {**OTHER_FIELDS, "meta": meta}
    # Parquet columns are typed over the file: a record without a column reads it as null.
    assert second.fields == {name: None for name in OTHER_FIELDS}
    (limited, _) = read_records(str(path), InputConfig(keep_fields=("url",)))
    assert limited.fields == {"url": RECORD["url"]}


def test_parquet_rows_of_large_documents_are_read_in_small_batches(tmp_path, monkeypatch):
    from winnow.pipeline import readers

    texts = [f"book {n} " + "word " * 20_000 for n in range(40)]  # about 100 KB each
    pq.write_table(pa.table({"id": [str(n) for n in range(40)], "text": texts}),
                   tmp_path / "books.parquet", row_group_size=40)
    pq.write_table(pa.table({"id": ["a"], "text": ["short"]}), tmp_path / "one.parquet")
    monkeypatch.setattr(readers, "PARQUET_BATCH_BYTES", 1_000_000)  # 1 MB: about 10 rows
    assert readers.rows_per_batch(pq.read_metadata(tmp_path / "books.parquet")) in range(5, 11)
    assert readers.rows_per_batch(pq.read_metadata(tmp_path / "one.parquet")) == 1024
    batches = []
    real = readers.ParquetFile.iter_batches
    monkeypatch.setattr(readers.ParquetFile, "iter_batches", lambda self, **kw: batches.append(
        kw["batch_size"]) or real(self, **kw))
    documents = read_records(str(tmp_path / "books.parquet"), InputConfig())
    assert [doc.text for doc in documents] == texts and batches == [
        readers.rows_per_batch(pq.read_metadata(tmp_path / "books.parquet"))]


def test_a_lone_surrogate_in_a_field_is_replaced_not_quarantined():
    raw = b'{"text": "ok", "title": "a \\ud800 b", "emoji": "\\ud83d\\ude00", "k": {"\\udc80": 1}}'
    doc = parse_jsonl_line(raw, "in.jsonl", 0, CONFIG)
    assert doc.fields == {"title": "a \ufffd b", "emoji": "\U0001f600", "k": {"\ufffd": 1}}


@pytest.mark.parametrize("name, compress", [("bom.jsonl", bytes), ("bom.jsonl.gz", gzip.compress)])
def test_a_byte_order_mark_and_crlf_line_ends_do_not_quarantine_jsonl(tmp_path, name, compress):
    path = tmp_path / name
    path.write_bytes(compress(b'\xef\xbb\xbf{"id": "a", "text": "first"}\r\n\r\n'
                              b'{"id": "b", "text": "second\\r\\nline"}\r\n'))
    records = list(read_records(str(path), CONFIG))
    assert [(r.id, r.text, r.position) for r in records] == [
        ("a", "first", 0), ("b", "second\r\nline", 1)]


def test_a_text_file_loses_its_byte_order_mark(tmp_path):
    path = tmp_path / "page.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    (record,) = read_records(str(path), CONFIG)
    assert record.text == "line one\r\nline two\r\n"  # the normalize stage folds CRLF


@pytest.mark.parametrize("name", ["plain.jsonl.gz", "plain.txt.gz", "plain.jsonl.zst",
                                  "plain.jsonl.bz2", "plain.jsonl.xz"])
def test_a_file_not_in_the_format_its_name_says_is_unreadable_not_truncated(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b'{"text": "never compressed"}\n' * 3)
    records = list(read_records(str(path), CONFIG))
    assert [(r.reason, r.position) for r in records] == [("unreadable_file", 0)]
    assert "does not start as" in records[0].detail
