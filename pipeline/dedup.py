"""Exact deduplication across the corpus (stage ``exact_dedup``), as a Beam grouping.

``doc_key_to_docs``: GroupByKey on the 128-bit hash of the text; the smallest document (by id,
source, position) survives, the rest are removed as ``exact_duplicate`` with its id. One pass
over each group keeps one document in memory, however large the group.
"""

from __future__ import annotations

import apache_beam as beam

from winnow.filters.dedup import ExactDedupConfig, document_key
from winnow.pipeline.packing import packed, unpacked
from winnow.pipeline.transforms import REMOVED, STATS, BundleStats, stage_outputs
from winnow.schemas.records import Document, Removed

STAGE = "exact_dedup"


def doc_ref(doc: Document) -> tuple[str, str, int]:
    """A document's unique, ordered identity (ids alone may repeat in the input)."""
    return doc.sort_key


class KeepSmallestFn(beam.DoFn):
    """(doc key, docs) -> the smallest doc; the others on ``removed`` naming it as survivor.
    Two passes over the group (Beam's grouped values are re-iterable): find the survivor, then
    route the rest, so no more than one document is held at a time."""

    def setup(self):
        self._stats = BundleStats()

    def process(self, doc_key_and_packed_docs):
        _, packed_docs = doc_key_and_packed_docs
        docs = _Unpacking(packed_docs)
        survivor = min(docs, key=doc_ref)
        survivor_ref = doc_ref(survivor)
        stats = self._stats.stage(STAGE)
        for doc in docs:
            stats.documents_in += 1
            stats.bytes_in += len(doc.text.encode("utf-8"))
            if doc_ref(doc) == survivor_ref:
                continue
            stats.removed["exact_duplicate"] += 1
            self._stats.count(f"{STAGE}/removed:exact_duplicate")
            removed = Removed.of(doc, STAGE, "exact_duplicate", survivor_id=survivor.id)
            yield beam.pvalue.TaggedOutput(REMOVED, removed)
        stats.documents_out += 1
        stats.bytes_out += len(survivor.text.encode("utf-8"))
        self._stats.count(f"{STAGE}/kept")
        yield survivor

    def finish_bundle(self):
        yield from self._stats.flush()


class _Unpacking:
    """The documents of a group of packed ones, unpacked one at a time on each pass."""

    def __init__(self, packed_docs):
        self.packed_docs = packed_docs

    def __iter__(self):
        return map(unpacked, self.packed_docs)


class ExactDedup(beam.PTransform):
    """docs -> {kept: unique docs, removed: [Removed], stats: [(stage, StageStats)]}."""

    def __init__(self, config: ExactDedupConfig):
        super().__init__(label=STAGE)
        self.config = config

    def expand(self, docs):
        return stage_outputs(
            docs
            | "KeyByText" >> beam.Map(lambda doc: (document_key(doc.text), packed(doc)))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepSmallest" >> beam.ParDo(KeepSmallestFn()).with_outputs(
                REMOVED, STATS, main="kept")
        )
