"""``winnow curate``: build and run the curation pipeline.

    read -> normalize -> heuristics -> language -> exact_dedup -> pii -> kept/
              \\____________ removed/ (stage, reason) ______________/
    read -> quarantined/ (records that are not documents)
    everything -> report.json

Cheap stages run first so that the expensive ones (language ID, the dedup shuffles) see fewer
documents. Each per-document stage is a ``pipeline.stages.Stage`` run by the one generic
``ApplyStage``; exact dedup is a pair of groupings in ``pipeline.dedup``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from filters.pii import PiiRedactor
from pipeline.dedup import ExactDedup
from pipeline.report import BuildReport, finish_report
from pipeline.stages import HeuristicsStage, LanguageStage, NormalizeStage, PiiStage, Stage
from pipeline.transforms import QUARANTINED, REMOVED, STATS, ApplyStage, ReadInputs
from pipeline.writers import (
    WriteParquetShards,
    kept_row,
    quarantined_row,
    removed_row,
)
from schemas.config import WinnowConfig
from schemas.records import KEPT_SCHEMA, QUARANTINED_SCHEMA, REMOVED_SCHEMA, Removed
from schemas.report import REPORT_FILE

STAGE_ORDER = ("read", "normalize", "heuristics", "language", "exact_dedup", "pii")
OUTPUT_FOLDERS = ("kept", "removed", "quarantined")


class CurationError(RuntimeError):
    """A problem found before the run starts (inputs, output folder)."""


def expand_inputs(patterns: list[str]) -> list[str]:
    """Every file the patterns name, sorted; a folder stands for the files below it."""
    paths: set[str] = set()
    for pattern in patterns:
        matched = [] if _has_glob(pattern) else _match(FileSystems.join(pattern.rstrip("/"), "**"))
        matched = matched or _match(pattern)
        if not matched:
            raise CurationError(f"input {pattern!r} matches no files")
        paths.update(matched)
    return sorted(paths)


def _has_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _match(pattern: str) -> list[str]:
    results = FileSystems.match([pattern])[0].metadata_list
    return [m.path for m in results if not m.path.endswith("/")
            and not FileSystems.split(m.path)[1].startswith(".")]


def prepare_output(output_dir: str, overwrite: bool) -> None:
    """Refuse to mix runs: an existing run folder is only replaced with ``overwrite``."""
    report_path = FileSystems.join(output_dir, REPORT_FILE)
    existing = [FileSystems.join(output_dir, folder) for folder in OUTPUT_FOLDERS]
    has_run = FileSystems.exists(report_path) or any(
        _match(FileSystems.join(folder, "*")) for folder in existing)
    if has_run and not overwrite:
        raise CurationError(f"{output_dir} already holds a run; pass --overwrite to replace it")
    for folder in existing:
        stale = _match(FileSystems.join(folder, "*"))
        if stale:
            FileSystems.delete(stale)
    if FileSystems.exists(report_path):
        FileSystems.delete([report_path])


def document_stages(config: WinnowConfig) -> tuple[list[Stage], list[Stage]]:
    """The enabled per-document stages before and after exact dedup."""
    before = [
        NormalizeStage(config.normalize) if config.normalize.enabled else None,
        HeuristicsStage(config.heuristics) if config.heuristics.enabled else None,
        LanguageStage(config.language) if config.language.enabled else None,
    ]
    after = [PiiStage(config.pii) if config.pii.enabled else None]
    return [s for s in before if s], [s for s in after if s]


def stage_order(config: WinnowConfig) -> list[tuple[str, bool]]:
    return [(name, name == "read" or getattr(config, name).enabled) for name in STAGE_ORDER]


class PrepareRemovedFn(beam.DoFn):
    """Redact PII in removed documents too (they are written and shown in reports) and cut
    their text to ``removed_text_max_chars``."""

    def __init__(self, config: WinnowConfig):
        self.config = config

    def setup(self):
        self._redactor = PiiRedactor(self.config.pii) if self.config.pii.enabled else None

    def process(self, removed: Removed):
        text = removed.text
        if self._redactor is not None:
            text = self._redactor.redact(text).text
        limit = self.config.output.removed_text_max_chars
        if limit:
            text = text[:limit]
        yield removed if text == removed.text else dataclasses.replace(removed, text=text)


def build_pipeline(pipeline: beam.Pipeline, inputs: list[str], paths: list[str],
                   output_dir: str, config: WinnowConfig) -> None:
    """Add the whole curation to ``pipeline``; ``paths`` are the expanded ``inputs``."""
    read = pipeline | "Read" >> ReadInputs(paths, config.input)
    docs, removed, stats = read.docs, [], [read[STATS]]
    before_dedup, after_dedup = document_stages(config)

    def apply(stage: Stage, docs):
        result = docs | ApplyStage(stage)
        removed.append(result[REMOVED])
        stats.append(result[STATS])
        return result.kept

    for stage in before_dedup:
        docs = apply(stage, docs)
    if config.exact_dedup.enabled:
        deduped = docs | ExactDedup(config.exact_dedup)
        removed.append(deduped[REMOVED])
        stats.append(deduped[STATS])
        docs = deduped["docs"]
    for stage in after_dedup:
        docs = apply(stage, docs)

    all_removed = (removed | "AllRemoved" >> beam.Flatten()
                   | "PrepareRemoved" >> beam.ParDo(PrepareRemovedFn(config)))
    quarantined = read[QUARANTINED]
    num_shards = config.output.num_shards
    join = FileSystems.join
    _ = docs | "WriteKept" >> WriteParquetShards(
        join(output_dir, "kept"), KEPT_SCHEMA, kept_row, num_shards)
    _ = all_removed | "WriteRemoved" >> WriteParquetShards(
        join(output_dir, "removed"), REMOVED_SCHEMA, removed_row, num_shards)
    _ = quarantined | "WriteQuarantined" >> WriteParquetShards(
        join(output_dir, "quarantined"), QUARANTINED_SCHEMA, quarantined_row, num_shards)
    _ = {
        "kept": docs,
        "removed": all_removed,
        "quarantined": quarantined,
        "stats": stats | "AllStats" >> beam.Flatten(),
    } | "Report" >> BuildReport(output_dir, inputs, stage_order(config), config)


def run_curation(inputs: list[str], output_dir: str, config: WinnowConfig,
                 beam_args: list[str] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Run a whole curation and return the finished report."""
    paths = expand_inputs(inputs)
    options = PipelineOptions(beam_args or [])
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    dry_run = bool(options.get_all_options().get("dry_run"))
    if not dry_run:
        prepare_output(output_dir, overwrite)
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, inputs, paths, output_dir, config)
    result = pipeline.run()
    result.wait_until_finish()
    if dry_run:
        return {}
    return finish_report(output_dir, time.monotonic() - started, str(runner))
