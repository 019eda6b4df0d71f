"""Ids repeat in real data. Whatever the runner, the worker count or the order documents
arrive in, a run over inputs that repeat ids writes the same bytes: every choice among
documents is made by (id, input file, input position), never by id alone."""

from collections import Counter
from pathlib import Path
from unittest import mock

import apache_beam as beam
import pytest

from tests.hostile.repeated_ids import write_mixed_repeats, write_one_id
from tests.pipeline.test_curate import MULTI_PROCESSING, output_bytes
from winnow.filters.pairs import OBJECTIVES
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.near_dedup import decide_cluster
from winnow.pipeline.report import ClusterSummaryFn
from winnow.pipeline.shards import BuildShards, group_of
from winnow.schemas.records import Document
from winnow.schemas.report import check_accounting
from winnow.schemas.shard_format import shard_prefix
from winnow.schemas.shard_reader import ShardReader, read_documents

FOLDERS = ("kept", "removed", "quarantined", "shards", "tokenizer")


def repeated_id_config(objective: str):
    """Every dedup stage on (the defaults), a tokenizer trained on 10 of the 240 documents
    that share one id, small shards and groups so that several of each are written."""
    return config_from_dict({
        "tokenizer": {"sample_documents": 10},
        "pairs": {"objective": objective},
        "output": {"num_shards": 3},
        "shards": {"examples_per_shard": 100, "group_documents": 10},
    })


def comparable(report: dict) -> dict:
    """A report without what differs between two runs of the same input: timings, paths."""
    report = {**report, "stages": [{k: v for k, v in stage.items() if k != "seconds"}
                                   for stage in report["stages"]]}
    for key in ("wall_seconds", "runner", "inputs"):
        report.pop(key, None)
    return report


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_repeated_ids_give_the_same_bytes_on_every_runner(tmp_path, objective):
    write_one_id(tmp_path / "in")
    write_mixed_repeats(tmp_path / "in")
    config = repeated_id_config(objective)
    in_memory = run_curation([str(tmp_path / "in")], str(tmp_path / "a"), config)
    workers = run_curation([str(tmp_path / "in")], str(tmp_path / "b"), config,
                           MULTI_PROCESSING)

    assert check_accounting(in_memory) == []
    assert in_memory["documents"]["input"] == 252
    removed = in_memory["documents"]["removed"]
    assert removed["exact_duplicate"] >= 2 and removed["near_duplicate"] >= 1
    funnel = {stage["name"]: stage for stage in in_memory["stages"]}
    assert funnel["boilerplate"]["tallies"]["lines_removed"] >= 2
    assert in_memory["shards"]["examples"] > 200
    first, second = output_bytes(tmp_path / "a"), output_bytes(tmp_path / "b")
    assert {name.split("/")[0] for name in first} == set(FOLDERS)
    assert sorted(first) == sorted(second)
    for name in first:
        assert first[name] == second[name], name
    assert comparable(in_memory) == comparable(workers)


def test_nsp_pairs_documents_that_share_an_id_within_and_across_files(tmp_path):
    # 'doc-7' twice in a.jsonl with different texts, and in b.jsonl and c.jsonl; a.jsonl is
    # also named twice on the command line. Commit d83f599 keyed NSP groups by id and failed
    # with "document id 'doc-1' appears twice in the NSP group" after writing kept/.
    paths = write_mixed_repeats(tmp_path / "in")
    report = run_curation([str(tmp_path / "in"), str(paths[0])], str(tmp_path / "run"),
                          config_from_dict({"pairs": {"objective": "nsp"}}))
    assert check_accounting(report) == []
    assert report["documents"]["input"] == 12  # a.jsonl is read once
    reader = ShardReader(tmp_path / "run" / "shards")
    refs = {ref for shard in range(len(reader.manifest.shards))
            for ref in read_documents(tmp_path / "run" / "shards" / f"{shard_prefix(shard)}"
                                      ".documents.jsonl")}
    doc_7 = {(Path(ref.input_file).name, ref.input_position) for ref in refs
             if ref.id == "doc-7"}
    assert doc_7 == {("a.jsonl", 0), ("a.jsonl", 2), ("b.jsonl", 1), ("c.jsonl", 0),
                     ("c.jsonl", 2)}
    assert report["shards"]["label_counts"]["1"] > 0  # random next segments were drawn


def test_cluster_summaries_do_not_depend_on_the_order_members_arrive_in():
    members = [((f"d{n}", f"{'ab'[n % 2]}.jsonl", n), None) for n in range(8)]
    summaries = []
    for ordered in (members, members[::-1]):
        outputs = list(decide_cluster((members[0][0], ordered), sample_size=3))
        summaries += [o.value for o in outputs if not isinstance(o, tuple)]
    assert summaries[0] == summaries[1]
    assert summaries[0]["member_ids"] == ["d0", "d1", "d2"]


def test_largest_clusters_that_tie_on_size_and_id_list_the_same_way_in_any_order():
    # Two clusters rooted at documents that share the id 'same' (from two files).
    clusters = [{"cluster_id": "same", "size": 2, "survivor_id": "same",
                 "member_ids": ["same", "same"]},
                {"cluster_id": "same", "size": 2, "survivor_id": "same",
                 "member_ids": ["other", "same"]},
                {"cluster_id": "zzz", "size": 3, "survivor_id": "zzz", "member_ids": ["zzz"]}]
    combine = ClusterSummaryFn()
    combine.LARGEST = 2
    outputs = []
    for ordered in (clusters, clusters[::-1]):
        accumulator = combine.create_accumulator()
        for cluster in ordered:
            accumulator = combine.add_input(accumulator, cluster)
        outputs.append(combine.extract_output(accumulator)["largest_clusters"])
    assert outputs[0] == outputs[1]
    assert [c["member_ids"] for c in outputs[0]] == [["zzz"], ["other", "same"]]


def tokenizer_sample_texts(docs, out: Path) -> list[str]:
    """The texts the tokenizer stage trains on, for ``docs`` arriving in that order (the
    training itself replaced by joining its sentences)."""
    config = repeated_id_config("sop")
    build = BuildShards("unused", config.sentences, config.tokenizer, config.pairs, 100, 10)
    with mock.patch("winnow.pipeline.shards.train_tokenizer",
                    lambda sentences, _: "\n".join(sentences).encode()):
        with beam.Pipeline() as pipeline:
            model = build._tokenizer_model(pipeline | beam.Create(docs, reshuffle=False))
            _ = model | beam.Map(out.write_bytes)
    return out.read_text().split("\n")


def test_the_tokenizer_sample_among_documents_that_share_an_id_is_the_same_in_any_order(
        tmp_path):
    docs = [Document("same", f"Sentence number {n}.", f"{'ab'[n % 2]}.jsonl", n)
            for n in range(40)]
    first = tokenizer_sample_texts(docs, tmp_path / "first")
    assert len(first) == 10
    assert tokenizer_sample_texts(docs[::-1], tmp_path / "reversed") == first
    # the smallest refs: (same, a.jsonl, 0), (same, a.jsonl, 2), ..., (same, a.jsonl, 18)
    assert first == [f"Sentence number {n}." for n in range(0, 20, 2)]


def test_documents_that_share_an_id_spread_over_the_pairing_groups():
    docs = [Document("same", "text", "one-id.jsonl", n) for n in range(240)]
    sizes = Counter(group_of(doc, seed=12345, groups=24) for doc in docs)
    assert len(sizes) >= 20 and max(sizes.values()) <= 25
