"""Exact deduplication across the corpus (stage ``exact_dedup``), as Beam groupings.

1. ``doc_key_to_docs``: GroupByKey on the 128-bit hash of the text; the smallest document (by
   id, source, position) survives, the rest are removed as ``exact_duplicate`` with its id.
   One pass over each group keeps one document in memory, however large the group.
2. ``line_key_to_doc_refs``: GroupByKey on the hash of each distinct long line; a line held by
   at least ``boilerplate_min_documents`` documents is removed from all but its owner (the
   smallest). The removals ``(doc ref, line key)`` are joined back to the documents by a
   CoGroupByKey on the document ref, so no worker ever holds the whole line table.
"""

from __future__ import annotations

import dataclasses
import time

import apache_beam as beam

from filters.dedup import (
    ExactDedupConfig,
    boilerplate_candidate_keys,
    check_has_content,
    document_key,
    remove_lines,
)
from pipeline.transforms import REMOVED, STATS, BundleStats
from schemas.records import Document, Removed

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

    def process(self, doc_key_and_docs):
        _, docs = doc_key_and_docs
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
        yield survivor

    def finish_bundle(self):
        yield from self._stats.flush()


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


class RemoveBoilerplateFn(beam.DoFn):
    """(doc ref, {docs: [doc], lines: [line key...]}) -> doc without those lines."""

    def __init__(self, min_chars: int):
        self.min_chars = min_chars

    def setup(self):
        self._stats = BundleStats()

    def process(self, ref_and_groups):
        _, groups = ref_and_groups
        line_keys = set(groups["lines"])
        for doc in groups["docs"]:
            started = time.perf_counter()
            text = remove_lines(doc.text, line_keys, self.min_chars)
            stats = self._stats.stage(STAGE)
            stats.seconds += time.perf_counter() - started
            if line_keys:
                stats.tallies["boilerplate_lines_removed"] += len(line_keys)
            reason = check_has_content(text)
            if reason:
                stats.removed[reason] += 1
                self._stats.count(f"{STAGE}/removed:{reason}")
                yield beam.pvalue.TaggedOutput(REMOVED, Removed.of(doc, STAGE, reason))
                continue
            yield doc if text == doc.text else dataclasses.replace(doc, text=text)

    def finish_bundle(self):
        yield from self._stats.flush()


class CountOutputFn(beam.DoFn):
    """Closes the stage's books: documents and bytes out."""

    def setup(self):
        self._stats = BundleStats()

    def process(self, doc: Document):
        stats = self._stats.stage(STAGE)
        stats.documents_out += 1
        stats.bytes_out += len(doc.text.encode("utf-8"))
        self._stats.count(f"{STAGE}/kept")
        yield doc

    def finish_bundle(self):
        yield from self._stats.flush()


class ExactDedup(beam.PTransform):
    """docs -> {main: unique docs, removed: [Removed], stats: [(stage, StageStats)]}."""

    def __init__(self, config: ExactDedupConfig):
        super().__init__(label=STAGE)
        self.config = config

    def expand(self, docs):
        unique = (
            docs
            | "KeyByText" >> beam.Map(lambda doc: (document_key(doc.text), doc))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepSmallest" >> beam.ParDo(KeepSmallestFn()).with_outputs(
                REMOVED, STATS, main="unique")
        )
        removed, stats, survivors = [unique[REMOVED]], [unique[STATS]], unique.unique
        if self.config.boilerplate_lines:
            cleaned = survivors | "BoilerplateLines" >> _RemoveBoilerplateLines(self.config)
            removed.append(cleaned[REMOVED])
            stats.append(cleaned[STATS])
            survivors = cleaned.docs
        counted = survivors | "CountOut" >> beam.ParDo(CountOutputFn()).with_outputs(
            STATS, main="docs")
        stats.append(counted[STATS])
        return {
            "docs": counted.docs,
            REMOVED: removed | "FlattenRemoved" >> beam.Flatten(),
            STATS: stats | "FlattenStats" >> beam.Flatten(),
        }


class _RemoveBoilerplateLines(beam.PTransform):
    def __init__(self, config: ExactDedupConfig):
        super().__init__()
        self.config = config

    def expand(self, docs):
        min_chars, min_documents = self.config.boilerplate_min_chars, \
            self.config.boilerplate_min_documents
        doc_ref_to_removed_line = (
            docs
            | "LineKeys" >> beam.FlatMap(lambda doc: [
                (line_key, doc_ref(doc))
                for line_key in sorted(boilerplate_candidate_keys(doc.text, min_chars))])
            | "GroupByLine" >> beam.GroupByKey()
            | "RepeatedLines" >> beam.FlatMap(boilerplate_removals, min_documents)
        )
        doc_ref_to_doc = docs | "KeyByRef" >> beam.Map(lambda doc: (doc_ref(doc), doc))
        return (
            {"docs": doc_ref_to_doc, "lines": doc_ref_to_removed_line}
            | "JoinRemovals" >> beam.CoGroupByKey()
            | "RemoveLines" >> beam.ParDo(RemoveBoilerplateFn(min_chars)).with_outputs(
                REMOVED, STATS, main="docs")
        )
