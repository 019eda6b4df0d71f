"""From a shard example back to its input records and their licences (pipeline.provenance)."""

import gzip
import json

import pytest

from tests.pipeline.report_runs import SAMPLE
from winnow.cli import main
from winnow.pipeline.provenance import example_sources, kept_records
from winnow.schemas.shard_format import DocumentRef
from winnow.schemas.shard_reader import ShardReader


def input_records() -> dict[tuple[str, int], dict]:
    """(input file, position) -> the sample's record as written."""
    path = SAMPLE / "docs.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return {(str(path), position): json.loads(line) for position, line in enumerate(lines)}


def test_every_example_leads_back_to_its_records_and_licences(pii_on):
    records = input_records()
    reader = ShardReader(pii_on / "shards")
    checked = 0
    for index in range(0, len(reader), 97):
        provenance = reader.provenance(index)
        sources = example_sources(str(pii_on), index)
        for segment, ref in zip("ab", provenance, strict=True):
            row = sources[segment]
            assert DocumentRef(row["id"], row["input_file"], row["input_position"]) == ref
            original = records.get((ref.input_file, ref.input_position))
            if original is not None:  # the sample's docs.jsonl.gz; its extra.jsonl has no licence
                assert row["fields"] == {"license": original["license"],
                                         "source": original["source"]}
                checked += 1
    assert checked > 10


def test_shards_show_prints_the_licence_of_each_segment(pii_on, capsys):
    assert main(["shards", "show", str(pii_on), "--start", "5", "-n", "2", "--provenance",
                 "--json"]) == 0
    examples = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["index"] for e in examples] == [5, 6]
    for example in examples:
        sources = example_sources(str(pii_on), example["index"])
        for segment in "ab":
            assert example[f"document_{segment}"]["fields"] == sources[segment]["fields"]
            assert "license" in example[f"document_{segment}"]["fields"]


def test_a_ref_that_is_not_in_kept_is_named(pii_on):
    stray = DocumentRef("no-such-doc", "elsewhere.jsonl", 3)
    with pytest.raises(ValueError, match="no-such-doc.*another run"):
        kept_records(str(pii_on), [stray])
