"""Near-duplicate clusters: connected components, chains, survivors, streaming memory."""

import json
import random
import tracemalloc

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from winnow.filters.minhash import MinHasher, exact_jaccard
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.near_dedup import (
    ConnectedComponents,
    NotConvergedError,
    _check_star,
    decide_cluster,
    large_star,
    members_with_signatures,
    shared_bucket_members,
    small_star,
    star_edges,
)


def union_find_roots(edges):
    parent = {}

    def find(node):
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        root_a, root_b = find(a), find(b)
        parent[max(root_a, root_b)] = min(root_a, root_b)
    return {node: find(node) for node in parent if find(node) != node}


@pytest.mark.parametrize("graph", ["chain", "random", "star_of_chains"])
def test_components_match_union_find(graph):
    rng = random.Random(7)
    if graph == "chain":  # worst case for label propagation: a long path in shuffled order
        order = list(range(64))
        rng.shuffle(order)
        edges = list(zip(order, order[1:], strict=False))
    elif graph == "random":
        edges = [(rng.randrange(200), rng.randrange(200)) for _ in range(150)]
    else:
        edges = [(0, i) for i in range(1, 6)] + [(i, i * 10) for i in range(1, 6)]
        edges += [(i * 10, i * 100) for i in range(1, 6)]
    edges = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b})
    expected = union_find_roots(edges)
    with BeamTestPipeline() as pipeline:
        member_to_root = (pipeline | beam.Create(edges) | ConnectedComponents(max_rounds=10))
        assert_that(member_to_root, equal_to(sorted(expected.items())))


def test_too_few_rounds_fail_loudly_instead_of_writing_wrong_clusters():
    order = list(range(200))
    random.Random(3).shuffle(order)
    edges = [(min(a, b), max(a, b)) for a, b in zip(order, order[1:], strict=False)]
    with pytest.raises(Exception, match="did not converge in 1 rounds"):
        with BeamTestPipeline() as pipeline:
            _ = pipeline | beam.Create(edges) | ConnectedComponents(max_rounds=1)


def test_check_star_accepts_roots_and_single_members_only():
    assert _check_star(("r", ["root", "root"]), 3) == "r"
    assert _check_star(("m", [("member", "r")]), 3) == "m"
    with pytest.raises(NotConvergedError):
        _check_star(("m", [("member", "r"), "root"]), 3)
    with pytest.raises(NotConvergedError):
        _check_star(("m", [("member", "r"), ("member", "s")]), 3)


def test_star_steps():
    assert sorted(large_star((5, [2, 7, 9]))) == [(7, 2), (9, 2)]
    assert sorted(small_star((9, [4, 2, 7]))) == [(4, 2), (7, 2), (9, 2)]


def test_bucket_steps_join_signatures_only_to_shared_buckets():
    assert list(shared_bucket_members(("k1", iter(["a"])))) == []  # one document: no candidates
    assert list(shared_bucket_members(("k2", iter(["c", "a", "b"])))) == [
        ("c", "k2"), ("a", "k2"), ("b", "k2")]
    joined = ("a", {"band_keys": ["k2", "k5"], "signature": [(b"sig", None)]})
    assert list(members_with_signatures(joined)) == [("k2", ("a", b"sig", None)),
                                                     ("k5", ("a", b"sig", None))]
    lonely = ("z", {"band_keys": [], "signature": [(b"sig", None)]})
    assert list(members_with_signatures(lonely)) == []
    assert list(star_edges(("k", ["c", "a", "b"]))) == [("a", "b"), ("a", "c")]


def test_survivor_is_best_scored_then_smallest_ref():
    members = [(("b", "f", 0), 0.9), (("a", "f", 1), 0.5), (("c", "f", 2), 0.9)]
    outputs = list(decide_cluster((("a", "f", 1), members), sample_size=2))
    decisions = dict(o for o in outputs if isinstance(o, tuple))
    assert set(decisions.values()) == {("a", ("b", "f", 0))}
    (summary,) = [o.value for o in outputs if not isinstance(o, tuple)]
    assert summary == {"cluster_id": "a", "size": 3, "survivor_id": "b",
                       "member_ids": ["a", "b"]}
    unscored = [(ref, None) for ref, _ in members]
    outputs = list(decide_cluster((("a", "f", 1), unscored), sample_size=5))
    assert {o[1][1] for o in outputs if isinstance(o, tuple)} == {("a", "f", 1)}


class CountingMembers:
    """A re-iterable group of 100k members produced lazily, as Beam streams grouped values."""

    def __init__(self, size):
        self.size = size

    def __iter__(self):
        for index in range(self.size):
            yield (f"doc-{index:08d}", "source.jsonl", index), index / self.size


def test_cluster_decisions_stream_members_instead_of_holding_them():
    members = CountingMembers(100_000)
    tracemalloc.start()
    consumed = sum(1 for _ in decide_cluster((("doc-00000000", "source.jsonl", 0), members), 5))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    all_members_bytes = 100_000 * 250  # a ref tuple and its strings, conservatively
    assert consumed == 100_001  # every member's decision and the cluster summary
    assert peak < all_members_bytes / 20


def chained_texts():
    """Three documents where a~b and b~c but not a~c (word 5-gram Jaccard)."""
    rng = random.Random(11)
    words = [rng.choice("alpha beta gamma delta river stone light north cloud field".split())
             + str(rng.randrange(50)) for _ in range(300)]
    b = list(words)
    a = list(words)
    c = list(words)
    for position in range(5, 300, 60):  # a differs from b in a few places...
        a[position] = "changed"
    for position in range(35, 300, 60):  # ...and c in a few others
        c[position] = "altered"
    return " ".join(a), " ".join(b), " ".join(c)


@pytest.mark.parametrize("verify", ["exact", "estimated", "none"])
def test_a_chain_of_near_duplicates_ends_in_one_cluster(tmp_path, verify):
    a, b, c = chained_texts()
    hasher = MinHasher()
    similarity = {name: exact_jaccard(hasher.shingle_hashes(x), hasher.shingle_hashes(y))
                  for name, x, y in (("ab", a, b), ("bc", b, c), ("ac", a, c))}
    threshold = 0.75
    assert similarity["ab"] >= threshold and similarity["bc"] >= threshold
    assert similarity["ac"] < threshold
    records = [{"id": "doc-c", "text": c}, {"id": "doc-a", "text": a},
               {"id": "doc-b", "text": b}, {"id": "other", "text": "unrelated words " * 40}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = config_from_dict({
        "heuristics": {"enabled": False}, "language": {"enabled": False},
        "near_dedup": {"threshold": threshold, "verify": verify}})
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"), config)
    removed = {r["id"]: json.loads(r["details"])
               for r in pq.read_table(tmp_path / "run" / "removed").to_pylist()}
    assert removed == {"doc-b": {"cluster_id": "doc-a", "survivor_id": "doc-a"},
                       "doc-c": {"cluster_id": "doc-a", "survivor_id": "doc-a"}}
    near = report["near_dedup"]
    assert (near["clusters"], near["documents_in_clusters"]) == (1, 3)
    assert near["cluster_size_histogram"] == {"3-4": 1}
    assert near["largest_clusters"][0]["member_ids"] == ["doc-a", "doc-b", "doc-c"]
    assert near["fraction_removed"] == 0.5
