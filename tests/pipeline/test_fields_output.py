"""Input fields end to end: every field of a JSONL or Parquet record reaches kept/ and removed/
in the ``fields`` struct column, readable by pyarrow, pandas and Hugging Face ``datasets``
without a json.loads per row; byte order marks and CRLF line ends read cleanly."""

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.pipeline.bad_inputs import GOOD_TEXT
from tests.pipeline.field_inputs import write_inputs
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation

NO_SHARDS = {"shards": {"enabled": False}, "near_dedup": {"enabled": False},
             "output": {"num_shards": 3}}
# The unified fields type: label (int and string) and big (beyond int64) are JSON text;
# meta.extra ({} only) too; score mixes exact ints and floats, so it is a float.
FIELDS_TYPE = pa.struct([
    ("big", pa.string()), ("label", pa.string()), ("lang", pa.string()),
    ("license", pa.string()),
    ("meta", pa.struct([("depth", pa.int64()), ("extra", pa.string()),
                        ("tags", pa.list_(pa.field("element", pa.string())))])),
    ("n_tokens", pa.int64()), ("score", pa.float64()), ("source", pa.string()),
    ("url", pa.string())])
EMPTY_FIELDS = {name: None for name in FIELDS_TYPE.names}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fields")
    write_inputs(root / "in")
    run_curation([str(root / "in")], str(root / "run"), config_from_dict(NO_SHARDS))
    return root / "run"


def rows_by_id(run: Path, folder: str) -> dict[str, dict]:
    return {row["id"]: row for row in pq.read_table(run / folder).to_pylist()}


def test_every_field_reaches_kept_and_removed_with_its_exact_value(run):
    kept, removed = rows_by_id(run, "kept"), rows_by_id(run, "removed")
    assert set(kept) == {"k1", "k2", "p1", str(run.parent / "in" / "page.txt")}
    assert kept["k1"]["fields"] == {
        **EMPTY_FIELDS, "source": "crawl-A", "license": "CC-BY-4.0",
        "url": "https://a.example/1", "lang": "en", "label": "1",
        "meta": {"tags": ["x", "y"], "depth": 1, "extra": None}, "score": 1.0}
    assert kept["k2"]["fields"] == {
        **EMPTY_FIELDS, "source": "crawl-B", "label": '"spam"',
        "meta": {"tags": None, "depth": None, "extra": "{}"}, "score": 0.25,
        "big": str(2**70)}
    assert kept["p1"]["fields"] == {**EMPTY_FIELDS, "license": "PD", "source": "books",
                                    "n_tokens": 123}
    assert removed["r1"]["reason"] == "too_few_words"
    r1_fields = removed["r1"]["fields"]
    assert math.isnan(r1_fields.pop("score"))
    expected = {**EMPTY_FIELDS, "license": "MIT"}
    del expected["score"]  # NaN, checked above
    assert r1_fields == expected


def test_the_input_file_and_position_have_their_own_columns(run):
    kept = rows_by_id(run, "kept")
    input_folder = run.parent / "in"
    assert (kept["k2"]["input_file"], kept["k2"]["input_position"]) == (
        str(input_folder / "records.jsonl"), 1)
    assert (kept["p1"]["input_file"], kept["p1"]["input_position"]) == (
        str(input_folder / "table.parquet"), 0)
    assert {"source", "position"}.isdisjoint(pq.read_schema(next((run / "kept").iterdir())).names)


def test_every_kept_and_removed_file_has_the_same_fields_type(run):
    files = sorted((run / "kept").glob("*.parquet")) + sorted((run / "removed").glob("*.parquet"))
    assert len(files) == 6
    types = {pq.read_schema(path).field("fields").type for path in files}
    assert types == {FIELDS_TYPE}
    label = pq.read_schema(files[0]).field("fields").type.field("label")
    assert label.metadata == {b"winnow.encoding": b"json"}
    # An empty file has no row group: datasets fails on a row group of 0 rows.
    for path in files:
        metadata = pq.read_metadata(path)
        assert metadata.num_row_groups == (1 if metadata.num_rows else 0)


def test_a_byte_order_mark_and_crlf_neither_quarantine_nor_reach_the_text(run):
    assert pq.read_table(run / "quarantined").num_rows == 0
    kept = rows_by_id(run, "kept")
    page = kept[str(run.parent / "in" / "page.txt")]["text"]
    assert page == GOOD_TEXT.replace(". ", ".\n")
    assert kept["k1"]["text"] == GOOD_TEXT


def test_pyarrow_reads_a_field_as_a_typed_column(run):
    table = pq.read_table(run / "kept").sort_by("id")
    licenses = table["fields"].combine_chunks().field("license").to_pylist()
    # The text file's id, its path, sorts first; it has no fields.
    assert table["id"].to_pylist()[1:] == ["k1", "k2", "p1"]
    assert licenses == [None, "CC-BY-4.0", None, "PD"]


def test_pandas_reads_a_field_without_json(run):
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(run / "kept", dtype_backend="pyarrow").sort_values("id")
    assert list(frame["fields"].struct.field("source"))[1:] == ["crawl-A", "crawl-B", "books"]
    plain = pd.read_parquet(run / "kept").sort_values("id")
    assert plain["fields"].iloc[1]["license"] == "CC-BY-4.0"


def test_hugging_face_datasets_reads_a_field_without_json(run):
    datasets = pytest.importorskip("datasets")
    files = sorted(str(path) for path in (run / "kept").glob("*.parquet"))
    kept = datasets.Dataset.from_parquet(files).sort("id")
    assert kept[1]["fields"]["license"] == "CC-BY-4.0"
    assert kept.flatten()["fields.source"][1:] == ["crawl-A", "crawl-B", "books"]


def test_the_config_limits_and_renames_the_fields(tmp_path):
    write_inputs(tmp_path / "in")
    config = config_from_dict({**NO_SHARDS, "input": {
        "keep_fields": ["license", "meta", "absent"], "rename_fields": {"meta": "crawl_meta"}}})
    run_curation([str(tmp_path / "in")], str(tmp_path / "run"), config)
    kept, removed = rows_by_id(tmp_path / "run", "kept"), rows_by_id(tmp_path / "run", "removed")
    assert kept["k1"]["fields"] == {"absent": None, "license": "CC-BY-4.0",
                                    "crawl_meta": {"tags": ["x", "y"], "depth": 1,
                                                   "extra": None}}
    assert removed["r1"]["fields"] == {"absent": None, "license": "MIT", "crawl_meta": None}
