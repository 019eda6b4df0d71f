"""Boilerplate line removal across the corpus (stage ``boilerplate``), as Beam groupings.

It runs after ``near_dedup``, on the documents that survived deduplication (the reason is in
``filters.boilerplate``).

1. ``line_key_to_doc_refs``: GroupByKey on the hash of each distinct long line; a line held by
   at least ``min_documents`` documents is removed from all but its owner (the smallest ref).
2. The removals ``(doc ref, line key)`` are joined back to the documents by a CoGroupByKey on
   the document ref, so no worker ever holds the whole line table. Every document passes
   through that join, and so through ``RemoveLinesFn``, which keeps the stage's books.
"""

from __future__ import annotations

import dataclasses
import time

import apache_beam as beam

from winnow.filters.boilerplate import (
    BoilerplateConfig,
    boilerplate_candidate_keys,
    fragment_verdict,
    remove_lines,
)
from winnow.pipeline.dedup import doc_ref
from winnow.pipeline.packing import packed, unpacked
from winnow.pipeline.transforms import REMOVED, STATS, BundleStats, stage_outputs
from winnow.schemas.records import Removed

STAGE = "boilerplate"


def boilerplate_removals(line_key_and_refs, min_documents: int):
    """(line key, doc refs) -> (doc ref, line key) for every holder but the owner, when the line
    is held by at least ``min_documents`` documents. Iterates the group twice (Beam's grouped
    values are re-iterable) instead of materializing it."""
    line_key, refs = line_key_and_refs
    count = 0
    owner = None
    for ref in refs:
        count += 1
        owner = ref if owner is None or ref < owner else owner
    if count < min_documents:
        return
    for ref in refs:
        if ref != owner:
            yield ref, line_key


class RemoveLinesFn(beam.DoFn):
    """(doc ref, {docs: [doc], lines: [line key...]}) -> the doc without those lines, or a
    ``Removed`` when too little is left of it."""

    def __init__(self, min_chars: int, min_words: int):
        self.min_chars = min_chars
        self.min_words = min_words

    def setup(self):
        self._stats = BundleStats()

    def process(self, ref_and_groups):
        _, groups = ref_and_groups
        line_keys = set(groups["lines"])
        for doc in map(unpacked, groups["docs"]):  # one document per ref
            started = time.perf_counter()
            stats = self._stats.stage(STAGE)
            stats.documents_in += 1
            stats.bytes_in += len(doc.text.encode("utf-8"))
            text = remove_lines(doc.text, line_keys, self.min_chars)
            drop = fragment_verdict(text, self.min_words) if line_keys else None
            stats.seconds += time.perf_counter() - started
            if line_keys:
                stats.tallies["lines_removed"] += len(line_keys)
                stats.tallies["documents_cut"] += 1
            if drop:
                stats.removed[drop.reason] += 1
                self._stats.count(f"{STAGE}/removed:{drop.reason}")
                removed = Removed.of(doc, STAGE, drop.reason, lines_removed=len(line_keys),
                                     **drop.details)
                yield beam.pvalue.TaggedOutput(REMOVED, removed)
                continue
            stats.documents_out += 1
            stats.bytes_out += len(text.encode("utf-8"))
            self._stats.count(f"{STAGE}/kept")
            yield doc if text == doc.text else dataclasses.replace(doc, text=text)

    def finish_bundle(self):
        yield from self._stats.flush()


class RemoveBoilerplate(beam.PTransform):
    """docs -> {kept: docs without boilerplate lines, removed: [Removed], stats}.

    ``min_words``: the word count documents passed whole (the heuristics stage's
    ``min_words`` when it ran, else 1); what line removal leaves must still reach it."""

    def __init__(self, config: BoilerplateConfig, min_words: int):
        super().__init__(label=STAGE)
        self.config = config
        self.min_words = min_words

    def expand(self, docs):
        min_chars, min_documents = self.config.min_chars, self.config.min_documents
        doc_ref_to_removed_line = (
            docs
            | "LineKeys" >> beam.FlatMap(lambda doc: [
                (line_key, doc_ref(doc))
                for line_key in sorted(boilerplate_candidate_keys(doc.text, min_chars))])
            | "GroupByLine" >> beam.GroupByKey()
            | "RepeatedLines" >> beam.FlatMap(boilerplate_removals, min_documents)
        )
        doc_ref_to_doc = docs | "KeyByRef" >> beam.Map(lambda doc: (doc_ref(doc), packed(doc)))
        return stage_outputs(
            {"docs": doc_ref_to_doc, "lines": doc_ref_to_removed_line}
            | "JoinRemovals" >> beam.CoGroupByKey()
            | "RemoveLines" >> beam.ParDo(RemoveLinesFn(min_chars, self.min_words)).with_outputs(
                REMOVED, STATS, main="kept")
        )
