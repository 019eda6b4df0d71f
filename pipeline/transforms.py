"""Generic Beam transforms: read files, apply a per-document stage, and account for it.

Element shapes:
- ``file``: ``(path, carried)``, one input file; ``carried`` is False when Beam could not
  carry its name (not UTF-8), and ``path`` is the name escaped (``readers.carried_name``);
- ``doc``: ``schemas.records.Document``; ``removed``: ``Removed``; ``quarantined``: ``Quarantined``;
- ``stage_stats``: ``(stage name, schemas.report.StageStats)``, one partial per bundle;
- ``near_threshold``: ``(key, candidate)``, a document's measure beside one bound of a threshold
  (``near_threshold_candidate``); the report keeps the nearest few per key.

Each stage's counters are Beam Metrics in the ``winnow`` namespace, named
``<stage>/documents_in``, ``<stage>/kept`` and ``<stage>/removed:<reason>``, so they show in the
Dataflow UI while a job runs; ``report.json`` is computed from the data itself.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from winnow.pipeline import progress
from winnow.pipeline.filesystem import stored_size
from winnow.pipeline.memory import release_free_memory, tune_this_process
from winnow.pipeline.packing import PackedReshuffle
from winnow.pipeline.readers import InputConfig, carried_name, read_records, unreadable_name
from winnow.pipeline.stages import Stage, length_bin_name, measure_bin_name
from winnow.schemas.records import Document, Quarantined, Removed
from winnow.schemas.report import StageStats

REMOVED = "removed"
QUARANTINED = "quarantined"
STATS = "stats"
NEAR_THRESHOLD = "near_threshold"
NEAR_THRESHOLD_CHARS = 300
"""Characters of a near-threshold example's text carried to the report."""
NEAR_THRESHOLD_EXAMPLES = 3
"""Documents kept in the report on each side of each threshold (at most), and kept documents
shown."""
METRICS_NAMESPACE = "winnow"


class BundleStats:
    """Per-bundle StageStats and cached Beam counters, shared by every DoFn that accounts.

    Partial totals leave once per bundle (``flush`` in ``finish_bundle``) rather than once per
    element, so accounting costs a dict update per document.
    """

    def __init__(self) -> None:
        tune_this_process()  # made in every DoFn's setup: reaches worker processes too
        self._by_stage: dict[str, StageStats] = defaultdict(StageStats)
        self._counters: dict[str, beam.metrics.metricbase.Counter] = {}
        self._progress = progress.recorder()  # a local run's live progress, else None
        if self._progress is not None:
            self._progress.watch(self)

    def count(self, name: str, value: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)
        counter.inc(value)

    def stage(self, name: str) -> StageStats:
        return self._by_stage[name]

    def partials(self) -> dict[str, StageStats]:
        """A copy of this bundle's partials so far (read by the progress thread)."""
        return dict(self._by_stage)

    def flush(self):
        """Tagged WindowedValues for finish_bundle, then reset; the bundle's freed memory goes
        back to the system (``pipeline.memory.release_free_memory``)."""
        partials, self._by_stage = self._by_stage, defaultdict(StageStats)
        if self._progress is not None:
            self._progress.bundle_ended(partials)
        for name, stats in sorted(partials.items()):
            value = WindowedValue((name, stats), MIN_TIMESTAMP, [GlobalWindow()])
            yield beam.pvalue.TaggedOutput(STATS, value)
        release_free_memory()


class ReadFilesFn(beam.DoFn):
    """file -> Document, with Quarantined records on the ``quarantined`` output."""

    STAGE = "read"

    def __init__(self, config: InputConfig):
        self.config = config

    def setup(self):
        self._stats = BundleStats()
        self._progress = progress.recorder()

    def process(self, file: tuple[str, bool]):
        path, carried = file
        stats = self._stats.stage(self.STAGE)
        records = read_records(path, self.config) if carried else [unreadable_name(path)]
        for record in records:
            stats.documents_in += 1
            if isinstance(record, Quarantined):
                self._stats.count(f"{self.STAGE}/quarantined:{record.reason}")
                yield beam.pvalue.TaggedOutput(QUARANTINED, record)
                continue
            size = len(record.text.encode("utf-8"))
            stats.tallies[length_bin_name(len(record.text))] += 1  # lengths before curation
            stats.documents_out += 1
            stats.bytes_in += size
            stats.bytes_out += size
            self._stats.count(f"{self.STAGE}/documents")
            yield record
        if self._progress is not None:
            self._progress.file_read(stored_size(path))

    def finish_bundle(self):
        yield from self._stats.flush()


class ApplyStageFn(beam.DoFn):
    """Runs one ``Stage`` on each document: kept documents on the main output, removals on
    ``removed``, partial StageStats on ``stats``."""

    def __init__(self, stage: Stage):
        self.stage = stage

    def setup(self):
        self.stage.setup()
        self._stats = BundleStats()
        self._nearest = NearestCandidates(NEAR_THRESHOLD_EXAMPLES)

    def process(self, doc: Document):
        name = self.stage.name
        started = time.perf_counter()
        outcome, measures = self.stage.apply_and_measure(doc)
        stats = self._stats.stage(name)
        stats.seconds += time.perf_counter() - started
        stats.documents_in += 1
        stats.bytes_in += len(doc.text.encode("utf-8"))
        for key, value in self.stage.tally(outcome).items():
            stats.tallies[key] += value
            self._stats.count(f"{name}/{key}", value)
        for measure, value in measures.items():
            stats.tallies[measure_bin_name(measure, value)] += 1
            for side, bound in self.stage.bounds(measure).items():
                self._nearest.offer(*near_threshold_candidate(doc, outcome, measure, value,
                                                              side, bound))
        if isinstance(outcome, Removed):
            stats.removed[outcome.reason] += 1
            self._stats.count(f"{name}/removed:{outcome.reason}")
            yield beam.pvalue.TaggedOutput(REMOVED, outcome)
            return
        stats.documents_out += 1
        stats.bytes_out += len(outcome.text.encode("utf-8"))
        self._stats.count(f"{name}/kept")
        yield outcome

    def finish_bundle(self):
        yield from self._nearest.flush()
        yield from self._stats.flush()


class NearestCandidates:
    """The ``count`` smallest near-threshold candidates of each key seen in a bundle, given
    out at its end on ``near_threshold``. One candidate per document and bound left a
    PCollection of (documents x bounds) 300-character texts (at 160 MB of text: 400 MB when
    the report's combine decoded it) for the report to keep three per key; candidates are
    totally ordered (``near_threshold_candidate``), so the smallest of the bundles' smallest
    are the smallest of all."""

    def __init__(self, count: int):
        self.count = count
        self._by_key: dict[str, list[tuple]] = {}

    def offer(self, key: str, candidate: tuple) -> None:
        kept = self._by_key.setdefault(key, [])
        if len(kept) < self.count or candidate < kept[-1]:
            bisect.insort(kept, candidate)
            del kept[self.count:]

    def flush(self):
        by_key, self._by_key = self._by_key, {}
        for key, candidates in sorted(by_key.items()):
            for candidate in candidates:
                value = WindowedValue((key, candidate), MIN_TIMESTAMP, [GlobalWindow()])
                yield beam.pvalue.TaggedOutput(NEAR_THRESHOLD, value)


def near_threshold_candidate(doc: Document, outcome: Document | Removed, measure: str,
                             value: float, side: str, bound: float) -> tuple[str, tuple]:
    """``("words:min:below", (distance, sort key, value, outcome, text))``: a document on one
    side of one bound (``side`` ``min`` or ``max``), ordered nearest first and then by its sort
    key, a total order whatever the runner. ``below``: the value is under the bound (a ``min``
    rule drops it); ``above``: over it, or on a ``min`` bound (a ``max`` rule drops above)."""
    above = value > bound if side == "max" else value >= bound
    verdict = f"removed: {outcome.reason}" if isinstance(outcome, Removed) else "kept"
    return (f"{measure}:{side}:{'above' if above else 'below'}",
            (abs(value - bound), doc.sort_key, value, verdict, doc.text[:NEAR_THRESHOLD_CHARS]))


class ApplyStage(beam.PTransform):
    """docs -> {main: kept docs, removed, stats, near_threshold}."""

    def __init__(self, stage: Stage):
        super().__init__(label=stage.name)
        self.stage = stage

    def expand(self, docs):
        outputs = docs | beam.ParDo(ApplyStageFn(self.stage)).with_outputs(
            REMOVED, STATS, NEAR_THRESHOLD, main="kept")
        return {**stage_outputs(outputs), NEAR_THRESHOLD: outputs[NEAR_THRESHOLD]}


class ReadInputs(beam.PTransform):
    """paths -> {main: docs, quarantined, stats}. Files are spread over workers by a
    Reshuffle; each file is read start to end by one worker. The documents are reshuffled
    again, so that the stages after reading are not fused to one worker per file: with a few
    large files (or one), that fusion left most workers idle through the costly stages.
    A file whose name is not UTF-8 travels by its escaped name and is quarantined as
    ``unreadable_file``: Beam's coders cannot carry the name, and failed the whole run on it."""

    def __init__(self, paths: list[str], config: InputConfig):
        super().__init__()
        self.paths = paths
        self.config = config

    def expand(self, pipeline):
        parsed = (
            pipeline
            | "ListFiles" >> beam.Create([carried_name(path) for path in self.paths])
            | "SpreadFiles" >> beam.Reshuffle()
            | "ParseRecords" >> beam.ParDo(ReadFilesFn(self.config)).with_outputs(
                QUARANTINED, STATS, main="docs")
        )
        docs = parsed.docs | "SpreadDocuments" >> PackedReshuffle()
        return {"docs": docs, QUARANTINED: parsed[QUARANTINED], STATS: parsed[STATS]}


def stage_outputs(outputs) -> dict:
    """A stage's multi-output ParDo result as the dict every stage transform returns:
    {"kept": docs, "removed": Removed, "stats": (stage, StageStats)}."""
    return {"kept": outputs.kept, REMOVED: outputs[REMOVED], STATS: outputs[STATS]}


def merge_stage_stats(partials: list[StageStats]) -> StageStats:
    total = StageStats()
    for partial in partials:
        total = total.merge(partial)
    return total
