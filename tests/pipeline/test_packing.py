"""What the memory reductions must leave unchanged: packed records come back equal after a
shuffle, and the tokenizer's sample, now chosen from keys before its texts are collected, is
still the documents of smallest (rank, sort key), cut to ``sample_chars_per_document``."""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from winnow.filters.sentences import SentencesConfig
from winnow.filters.tokenizer import TokenizerConfig, sample_rank
from winnow.pipeline import shards
from winnow.pipeline.packing import PackedReshuffle, packed, unpacked
from winnow.schemas.records import Document, Removed, unpack_text

DOCS = [Document(f"doc-{i}", f"text number {i} " * (i + 1), "in.jsonl", i, {"n": i})
        for i in range(12)]
DOCS += [Document("doc-3", "same id, other file", "other.jsonl", 0),
         Document("doc-3", "same id, later line", "in.jsonl", 40)]


def test_packed_records_come_back_equal():
    removed = Removed.of(DOCS[1], "exact_dedup", "exact_duplicate", survivor_id="doc-0")
    for record in (DOCS[0], removed):
        assert unpacked(packed(record)) == record
    with BeamTestPipeline() as pipeline:
        spread = pipeline | beam.Create(DOCS) | PackedReshuffle()
        assert_that(spread, equal_to(DOCS))


def _sample_as_json(sample, *_config) -> bytes:
    """The texts train_on_sample would train on, in its order, as the "model"."""
    return json.dumps([text if isinstance(text, str) else unpack_text(text)
                       for _, _, text in sorted(sample)]).encode()


def test_the_tokenizer_sample_is_the_smallest_ranks_ties_broken_by_ref(monkeypatch, tmp_path):
    monkeypatch.setattr(shards, "train_on_sample", _sample_as_json)
    # seed 9 ranks doc-3 fifth of the 12 ids: the sample of 6 takes two of its three records,
    # those of smallest (input file, position)
    config = TokenizerConfig(sample_documents=6, sample_chars_per_document=9, seed=9)
    chosen = sorted(DOCS, key=lambda doc: (sample_rank(9, doc.id), doc.sort_key))[:6]
    assert [doc.sort_key for doc in chosen if doc.id == "doc-3"] == [
        ("doc-3", "in.jsonl", 3), ("doc-3", "in.jsonl", 40)]
    expected = json.dumps([doc.text[:9] for doc in chosen]).encode()
    build = shards.BuildShards(str(tmp_path), SentencesConfig(), config, None, 10, 10)
    with BeamTestPipeline() as pipeline:
        model = build._tokenizer_model(pipeline | beam.Create(DOCS))
        assert_that(model, equal_to([expected]))
