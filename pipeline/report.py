"""``report.json``, built inside the pipeline and written into the run folder.

The report's counts come from the records themselves (what was written to kept/, removed/ and
quarantined/) and from the stages' per-bundle StageStats, combined by Beam; the driver adds the
wall time once the run has finished. The layout is typed in ``schemas.report``. Reading a run
folder back is ``pipeline.run_folder``; printing it, ``pipeline.report_text`` (terminal) and
``pipeline.html_report`` (HTML).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from winnow.filters.heuristics import MEASURES, measure_bounds
from winnow.filters.pii import PiiRedactor
from winnow.filters.pii_names import NameRedactor
from winnow.pipeline.config import WinnowConfig, config_to_dict
from winnow.pipeline.filesystem import open_binary
from winnow.pipeline.shards import LENGTH_BIN, WITHOUT_EXAMPLE
from winnow.pipeline.stages import (
    COUNT_MEASURES,
    DEFAULT_LINEAR_BINS,
    LINEAR_BINS,
    MEASURE_BIN,
    QualityStage,
    length_bin_name,
    measure_bin,
    score_bin_name,
)
from winnow.pipeline.transforms import NEAR_THRESHOLD, NEAR_THRESHOLD_EXAMPLES, merge_stage_stats
from winnow.pipeline.writers import json_column, write_atomically
from winnow.schemas.report import (
    REPORT_FILE,
    REPORT_FORMAT_VERSION,
    LanguagesSection,
    LengthsSection,
    NearDedupSection,
    QualitySection,
    Report,
    ShardsSection,
    SourcesSection,
    StageStats,
    ThresholdsSection,
    report_from_json,
    report_to_json,
)

EXAMPLE_CHARS = 500
"""Characters of each example document kept in the report."""
SOURCES_SHOWN = 50
"""Input files, and values of the records' ``source`` field, the report breaks down (the
largest); the others are summed in one row."""
SOURCE_FIELD = "source"
LANGUAGE_KEPT = "kept_language:"
LANGUAGE_REMOVED = "removed_language:"
"""Tally prefixes of the language stage (``pipeline.stages.LanguageStage.tally``)."""


def assemble_report(
    inputs: list[str],
    stage_order: list[tuple[str, bool]],
    config: WinnowConfig,
    stats_by_stage: dict[str, StageStats],
    kept: int,
    removed_counts: list[tuple[tuple[str, str], int]],
    quarantined_counts: list[tuple[str, int]],
    examples: list[tuple[str, list]],
    cluster_summary: dict[str, Any] | None = None,
    manifests: list[dict[str, Any]] | None = None,
    kept_profile: list[tuple[str, int]] | None = None,
    near_threshold: list[tuple[str, list]] | None = None,
    source_counts: list[tuple[tuple[str, str, str, str], int]] | None = None,
    kept_examples: list | None = None,
) -> Report:
    """The report as written to report.json (layout: ``schemas.report.Report``).
    ``kept_profile``: (``chars_bin:NN`` or ``language:xx``, count) over the kept documents;
    ``near_threshold``: (key, nearest candidates) (``transforms.near_threshold_candidate``);
    ``source_counts``: ((kind, name, outcome, reason), count) (``source_keys``);
    ``kept_examples``: the kept documents with the smallest sort keys."""
    removed_by_stage: dict[str, dict[str, int]] = defaultdict(dict)
    removed_by_reason: Counter = Counter()
    for (stage, reason), count in sorted(removed_counts):
        removed_by_stage[stage][reason] = count
        removed_by_reason[reason] += count
    read = stats_by_stage.get("read", StageStats())
    pii_stats = stats_by_stage.get("pii", StageStats())
    profile = Counter(dict(kept_profile or []))
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "inputs": list(inputs),
        "documents": {
            "input": read.documents_in,
            "kept": kept,
            "removed": dict(sorted(removed_by_reason.items())),
            "quarantined": dict(sorted(quarantined_counts)),
        },
        "removed_by_stage": dict(removed_by_stage),
        "stages": [
            {"name": name, "enabled": enabled,
             **_without_measures(stats_by_stage.get(name, StageStats()).to_json())}
            for name, enabled in stage_order
        ],
        "pii": dict(sorted(pii_stats.tallies.items())),
        "quality": quality_section(config, stats_by_stage.get("quality", StageStats())),
        "languages": languages_section(
            config, stats_by_stage.get("language", StageStats()), profile),
        "lengths": lengths_section(read.tallies, profile),
        "near_dedup": near_dedup_section(
            config, stats_by_stage.get("near_dedup", StageStats()), cluster_summary),
        "shards": shards_section(config, stats_by_stage.get("shards", StageStats()), manifests),
        "thresholds": thresholds_section(config, stats_by_stage, near_threshold or []),
        "sources": sources_section(source_counts or []),
        "kept_examples": [{"id": key[0], "text": snippet} for key, snippet in kept_examples or []],
        "examples": {
            reason: [{"id": key[0], "stage": stage, "text": snippet, "details": json.loads(details)}
                     for key, stage, snippet, details in reason_examples]
            for reason, reason_examples in sorted(examples)
        },
        "config": config_to_dict(config),
    }


def _without_measures(row: dict[str, Any]) -> dict[str, Any]:
    """A stage row without its measure histograms (they are the ``thresholds`` section)."""
    row["tallies"] = {key: count for key, count in row["tallies"].items()
                      if not key.startswith(MEASURE_BIN)}
    return row


def measure_unit(measure: str) -> str:
    """What a heuristic measure counts, for the axis of its histogram."""
    for suffix, unit in (("line_fraction", "fraction of lines"),
                         ("paragraph_fraction", "fraction of paragraphs"),
                         ("char_fraction", "fraction of characters"),
                         ("word_fraction", "fraction of words"),
                         ("word_ratio", "symbols per word"),
                         ("mean_word_length", "characters per word")):
        if measure.endswith(suffix):
            return unit
    return measure.replace("_", " ")  # counts: words, stop words, sentences


def thresholds_section(config: WinnowConfig, stats_by_stage: dict[str, StageStats],
                       near_threshold: list[tuple[str, list]]) -> ThresholdsSection:
    """Per measure of the stages that measure (the heuristics): the histogram of the value
    over every document the stage saw, its bounds, and the documents nearest each bound."""
    near: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(dict))
    for key, candidates in sorted(near_threshold):
        measure, side, position = key.rsplit(":", 2)
        near[measure][side][position] = [
            {"id": sort_key[0], "value": value, "outcome": outcome, "text": text}
            for _, sort_key, value, outcome, text in candidates]
    measures = {}
    for stage, stats in sorted(stats_by_stage.items()):
        bins: dict[str, Counter] = defaultdict(Counter)
        for key, count in stats.tallies.items():
            if key.startswith(MEASURE_BIN):
                measure, number = key[len(MEASURE_BIN):].rsplit(":", 1)
                bins[measure][int(number)] += count
        for measure in sorted(bins, key=_rule_order):
            bounds = _measure_bounds(config, stage, measure)
            measures[measure] = {"stage": stage, "unit": measure_unit(measure), "bounds": bounds,
                                 **_measure_histogram(measure, bins[measure], bounds),
                                 "near": {side: dict(sorted(near[measure][side].items()))
                                          for side in bounds}}
    return {"measures": measures}


def _rule_order(measure: str) -> tuple[int, str]:
    return (MEASURES.index(measure) if measure in MEASURES else len(MEASURES), measure)


def _measure_bounds(config: WinnowConfig, stage: str, measure: str) -> dict[str, float]:
    return measure_bounds(config.heuristics, measure) if stage == "heuristics" else {}


def _measure_histogram(measure: str, counts: Counter, bounds: dict[str, float]) -> dict:
    """``scale`` (``log2`` for counts, else ``linear``), ``bin_edges`` and ``counts``: every
    bin of a linear measure; for a count, the bins from the smallest to the largest used or
    holding a bound."""
    if measure not in COUNT_MEASURES:
        width, number = LINEAR_BINS.get(measure, DEFAULT_LINEAR_BINS)
        return {"scale": "linear", "bin_edges": [round(i * width, 6) for i in range(number + 1)],
                "counts": [counts.get(i, 0) for i in range(number)]}
    used = sorted(set(counts) | {measure_bin(measure, bound) for bound in bounds.values()})
    bins = range(used[0], used[-1] + 1)
    return {"scale": "log2",
            "bin_edges": [_bin_low(k) for k in bins] + [_bin_low(used[-1] + 1)],
            "counts": [counts.get(k, 0) for k in bins]}


def source_keys(record, outcome: str) -> list[tuple[str, str, str, str]]:
    """A record's rows in the per-source breakdown: (``input_file`` or ``source_field``, name,
    ``kept``/``removed``/``quarantined``, reason or "")."""
    reason = "" if outcome == "kept" else record.reason
    keys = [("input_file", record.source, outcome, reason)]
    value = getattr(record, "fields", {}).get(SOURCE_FIELD)
    if value is not None:
        keys.append(("source_field", value if isinstance(value, str) else json.dumps(value),
                      outcome, reason))
    return keys


def sources_section(source_counts: list[tuple[tuple[str, str, str, str], int]]
                    ) -> SourcesSection:
    """Kept, removed and quarantined by input file and by the records' ``source`` field: the
    ``SOURCES_SHOWN`` largest of each (by records, then name), the rest summed as one row."""
    tables: dict[str, dict[str, dict]] = {"input_file": {}, "source_field": {}}
    for (kind, name, outcome, reason), count in sorted(source_counts):
        row = tables[kind].setdefault(name, {"kept": 0, "removed": {}, "quarantined": {}})
        if outcome == "kept":
            row["kept"] += count
        else:
            row[outcome][reason] = row[outcome].get(reason, 0) + count
    return {kind: _largest_sources(rows) for kind, rows in tables.items()}


def _source_total(row: dict) -> int:
    return row["kept"] + sum(row["removed"].values()) + sum(row["quarantined"].values())


def _largest_sources(rows: dict[str, dict]) -> dict[str, dict]:
    ordered = sorted(rows, key=lambda name: (-_source_total(rows[name]), name))
    shown = {name: rows[name] for name in ordered[:SOURCES_SHOWN]}
    rest = ordered[SOURCES_SHOWN:]
    if rest:
        other = {"kept": 0, "removed": Counter(), "quarantined": Counter()}
        for name in rest:
            other["kept"] += rows[name]["kept"]
            other["removed"].update(rows[name]["removed"])
            other["quarantined"].update(rows[name]["quarantined"])
        shown[f"({len(rest)} others)"] = {"kept": other["kept"],
                                          "removed": dict(sorted(other["removed"].items())),
                                          "quarantined": dict(sorted(
                                              other["quarantined"].items()))}
    return shown


def quality_section(config: WinnowConfig, stats: StageStats) -> QualitySection:
    """Score histogram (20 bins over [0, 1]) with the threshold, or why the stage was off."""
    quality = config.quality
    if not quality.active:
        reason = "no model configured" if quality.enabled else "disabled"
        return {"enabled": False, "note": f"quality stage off: {reason}"}
    bins = QualityStage.HISTOGRAM_BINS
    counts = [stats.tallies.get(score_bin_name((i + 0.5) / bins, bins), 0) for i in range(bins)]
    return {
        "enabled": True, "model": quality.model, "mode": quality.mode,
        "threshold": quality.threshold if quality.mode == "threshold" else None,
        "pareto_alpha": quality.pareto_alpha if quality.mode == "pareto" else None,
        "histogram": {"bin_edges": [round(i / bins, 3) for i in range(bins + 1)],
                      "counts": counts},
    }


def languages_section(config: WinnowConfig, stats: StageStats,
                      kept_profile: Counter) -> LanguagesSection:
    """What the language stage saw (kept and removed by language) and the language of the
    documents kept at the end; languages by count, largest first."""
    at_stage: dict[str, dict[str, int]] = defaultdict(lambda: {"kept": 0, "removed": 0})
    for key, count in stats.tallies.items():
        for prefix, outcome in ((LANGUAGE_KEPT, "kept"), (LANGUAGE_REMOVED, "removed")):
            if key.startswith(prefix):
                at_stage[key[len(prefix):]][outcome] += count
    kept = {key.split(":", 1)[1]: count for key, count in kept_profile.items()
            if key.startswith("language:")}
    return {
        "enabled": config.language.enabled,
        "at_stage": {language: at_stage[language] for language in sorted(
            at_stage, key=lambda lang: (-sum(at_stage[lang].values()), lang))},
        "kept": dict(sorted(kept.items(), key=lambda item: (-item[1], item[0]))),
    }


def lengths_section(read_tallies: Counter, kept_profile: Counter) -> LengthsSection:
    """Document lengths in characters, log2 bins, at read (before) and in kept/ (after)."""
    before = {int(key.split(":")[1]): count for key, count in read_tallies.items()
              if key.startswith("chars_bin:")}
    after = {int(key.split(":")[1]): count for key, count in kept_profile.items()
             if key.startswith("chars_bin:")}
    used = sorted(set(before) | set(after))
    if not used:
        return {"unit": "characters", "bin_edges": [], "before": [], "after": []}
    bins = range(used[0], used[-1] + 1)
    return {
        "unit": "characters",
        "bin_edges": [_bin_low(k) for k in bins] + [_bin_low(used[-1] + 1)],
        "before": [before.get(k, 0) for k in bins],
        "after": [after.get(k, 0) for k in bins],
    }


def _bin_low(k: int) -> int:
    """Smallest length in log2 bin k (``length_bin_name``): 0, 1, 2, 4, 8, ..."""
    return 0 if k == 0 else 1 << (k - 1)


def kept_profile_keys(doc) -> list[str]:
    """A kept document's contribution to the length and language figures."""
    return [length_bin_name(len(doc.text)),
            f"language:{doc.metadata.get('language') or 'unidentified'}"]


def near_dedup_section(config: WinnowConfig, stats: StageStats,
                       summary: dict[str, Any] | None) -> NearDedupSection:
    if not config.near_dedup.enabled:
        return {"enabled": False}
    bands, rows = config.near_dedup.bands_and_rows()
    summary = summary or ClusterSummaryFn().extract_output(ClusterSummaryFn().create_accumulator())
    removed = stats.removed.get("near_duplicate", 0)
    return {
        "enabled": True, "threshold": config.near_dedup.threshold, "bands": bands, "rows": rows,
        **summary,
        "fraction_removed": round(removed / stats.documents_in, 6) if stats.documents_in else 0.0,
    }


def shards_section(config: WinnowConfig, stats: StageStats,
                   manifests: list[dict[str, Any]] | None) -> ShardsSection:
    """Examples, tokens, label balance and length histogram of DIR/shards/."""
    if not config.shards.enabled:
        return {"enabled": False}
    manifest = (manifests or [{}])[0]
    lengths = {int(key.split(":")[1]) * LENGTH_BIN: count
               for key, count in sorted(stats.tallies.items()) if key.startswith("length_bin:")}
    pairs = {key: count for key, count in sorted(stats.tallies.items())
             if not key.startswith("length_bin:")}
    without_example = {key.split(":", 1)[1]: count for key, count in pairs.items()
                       if key.startswith(f"{WITHOUT_EXAMPLE}:")}
    return {
        "enabled": True,
        "objective": config.pairs.objective,
        "max_seq_len": config.pairs.max_seq_len,
        "examples": manifest.get("examples", 0),
        "tokens": manifest.get("tokens", 0),
        "shards": len(manifest.get("shards", [])),
        "label_counts": manifest.get("label_counts", {}),
        "vocab_size": manifest.get("vocab_size"),
        "tokenizer_sha256": manifest.get("tokenizer_sha256"),
        "length_histogram": {"bin_width": LENGTH_BIN, "counts": lengths},
        "pairs": pairs,
        "without_example": without_example,
        **({"note": manifest["note"]} if "note" in manifest else {}),
    }


class ClusterSummaryFn(beam.CombineFn):
    """Cluster summaries -> count, size histogram (2, 3-4, 5-8, ...) and the largest clusters
    (by size, then cluster id, then the rest of the summary: cluster ids are document ids,
    which may repeat, and a tie broken by arrival order would differ between runners)."""

    LARGEST = 10

    def create_accumulator(self):
        return 0, 0, Counter(), []  # clusters, documents in them, size histogram, largest

    def add_input(self, accumulator, cluster):
        count, documents, histogram, largest = accumulator
        histogram[_size_bin(cluster["size"])] += 1
        return count + 1, documents + cluster["size"], histogram, self._top(largest + [cluster])

    def merge_accumulators(self, accumulators):
        count, documents, histogram, largest = self.create_accumulator()
        for other_count, other_documents, other_histogram, other_largest in accumulators:
            count += other_count
            documents += other_documents
            histogram += other_histogram
            largest = self._top(largest + other_largest)
        return count, documents, histogram, largest

    def extract_output(self, accumulator):
        count, documents, histogram, largest = accumulator
        ordered_bins = sorted(histogram, key=lambda name: int(name.split("-")[0]))
        return {"clusters": count,
                "documents_in_clusters": documents,
                "cluster_size_histogram": {name: histogram[name] for name in ordered_bins},
                "largest_clusters": largest}

    def _top(self, clusters):
        return sorted(clusters, key=_largest_first)[: self.LARGEST]


def _largest_first(cluster: dict[str, Any]) -> tuple:
    """A total order of cluster summaries: by size, largest first, then by content."""
    return -cluster["size"], cluster["cluster_id"], json.dumps(cluster, sort_keys=True)


def _size_bin(size: int) -> str:
    """2 -> "2", 3..4 -> "3-4", 5..8 -> "5-8", ..."""
    if size <= 2:
        return str(size)
    upper = 1 << (size - 1).bit_length()
    return f"{upper // 2 + 1}-{upper}"


def example_entry(removed) -> tuple[str, tuple]:
    """(reason, comparable example): the smallest ids per reason become the examples. The
    details travel as their JSON text, which (unlike a dict) compares."""
    return removed.reason, (removed.sort_key, removed.stage, removed.text[:EXAMPLE_CHARS],
                            json_column(removed.details))


def redact_report(report: Report, names: NameRedactor | None, pii=None) -> Report:
    """``report`` as written: with the pii stage on (``names``, ``pii`` its ``PiiConfig``),
    the inputs, the examples' ids and details, the largest clusters' ids and the source names
    redacted as kept/ and removed/ write them, and the near-threshold texts redacted. The
    examples and clusters were chosen by the original ids; their texts are redacted already."""
    if names is None:
        return report
    report["inputs"] = [names.name(pattern) for pattern in report["inputs"]]
    for examples in report["examples"].values():
        for example in examples:
            example["id"] = names.name(example["id"])
            example["details"] = names.leaves(example["details"])
    for cluster in report["near_dedup"].get("largest_clusters", []):
        cluster["cluster_id"] = names.name(cluster["cluster_id"])
        cluster["survivor_id"] = names.name(cluster["survivor_id"])
        cluster["member_ids"] = [names.name(member) for member in cluster["member_ids"]]
    for example in report["kept_examples"]:
        example["id"] = names.name(example["id"])
    # Near-threshold texts were taken at their stage, before the pii stage redacted them.
    redactor = PiiRedactor(pii) if pii is not None else None
    for measure in report["thresholds"]["measures"].values():
        for sides in measure["near"].values():
            for examples in sides.values():
                for example in examples:
                    example["id"] = names.name(example["id"])
                    if redactor is not None:
                        example["text"] = redactor.redact(example["text"]).text
    report["sources"] = {kind: {names.name(name): row for name, row in rows.items()}
                         for kind, rows in report["sources"].items()}
    return report


class BuildReport(beam.PTransform):
    """{kept, removed, quarantined, stats, clusters, manifest, written, near_threshold} -> writes
    DIR/report.json; returns its path. ``names``: redacts the ids and file names the report
    shows (``redact_report``).

    report.json is what marks a run complete, so its write waits on every output: ``written``
    (the paths kept/, removed/ and quarantined/ wrote) and ``manifest`` (written after the
    shards and the tokenizer) are side inputs of the write. A distributed runner orders only
    steps that depend on each other; without these it may write the report first."""

    def __init__(self, output_dir: str, inputs: list[str], stage_order: list[tuple[str, bool]],
                 config: WinnowConfig, names: NameRedactor | None = None):
        super().__init__()
        self.output_dir = output_dir
        self.inputs = inputs
        self.stage_order = stage_order
        self.config = config
        self.names = names

    def expand(self, outputs):
        stats = (outputs["stats"]
                 | "MergeStats" >> beam.CombinePerKey(merge_stage_stats))
        kept = outputs["kept"] | "CountKept" >> beam.combiners.Count.Globally()
        kept_profile = (outputs["kept"]
                        | "KeptProfile" >> beam.FlatMap(kept_profile_keys)
                        | "CountKeptProfile" >> beam.combiners.Count.PerElement())
        removed_counts = (
            outputs["removed"]
            | "StageReason" >> beam.Map(lambda removed: ((removed.stage, removed.reason), 1))
            | "CountRemoved" >> beam.CombinePerKey(sum))
        quarantined_counts = (
            outputs["quarantined"]
            | "Reason" >> beam.Map(lambda record: (record.reason, 1))
            | "CountQuarantined" >> beam.CombinePerKey(sum))
        examples = (
            outputs["removed"]
            | "ExampleEntry" >> beam.Map(example_entry)
            | "FirstExamples" >> beam.combiners.Top.SmallestPerKey(
                self.config.output.examples_per_reason or 1))
        cluster_summary = outputs["clusters"] | "SummarizeClusters" >> beam.CombineGlobally(
            ClusterSummaryFn())
        shown = min(NEAR_THRESHOLD_EXAMPLES, self.config.output.examples_per_reason) or 1
        near_threshold = (outputs[NEAR_THRESHOLD]
                          | "NearestToThresholds" >> beam.combiners.Top.SmallestPerKey(shown))
        source_counts = (
            (outputs["kept"] | "KeptSources" >> beam.FlatMap(source_keys, "kept"),
             outputs["removed"] | "RemovedSources" >> beam.FlatMap(source_keys, "removed"),
             outputs["quarantined"] | "QuarantinedSources" >> beam.FlatMap(
                 source_keys, "quarantined"))
            | "AllSources" >> beam.Flatten()
            | "CountSources" >> beam.combiners.Count.PerElement())
        kept_examples = (outputs["kept"]
                         | "KeptEntry" >> beam.Map(
                             lambda doc: (doc.sort_key, doc.text[:EXAMPLE_CHARS]))
                         | "FirstKept" >> beam.combiners.Top.Smallest(shown))
        path = FileSystems.join(self.output_dir, REPORT_FILE)
        return (
            outputs["kept"].pipeline
            | "Once" >> beam.Create([None])
            | "Assemble" >> beam.Map(
                lambda _, stats, kept, removed, quarantined, examples, clusters, manifests,
                profile, near, sources, kept_examples: redact_report(assemble_report(
                    self.inputs, self.stage_order, self.config, dict(stats), kept, removed,
                    quarantined, examples if self.config.output.examples_per_reason else [],
                    clusters, manifests, profile,
                    near if self.config.output.examples_per_reason else [], sources,
                    kept_examples if self.config.output.examples_per_reason else []),
                    self.names, self.config.pii),
                stats=beam.pvalue.AsList(stats),
                kept=beam.pvalue.AsSingleton(kept),
                removed=beam.pvalue.AsList(removed_counts),
                quarantined=beam.pvalue.AsList(quarantined_counts),
                examples=beam.pvalue.AsList(examples),
                clusters=beam.pvalue.AsSingleton(cluster_summary),
                manifests=beam.pvalue.AsList(outputs["manifest"]),
                profile=beam.pvalue.AsList(kept_profile),
                near=beam.pvalue.AsList(near_threshold),
                sources=beam.pvalue.AsList(source_counts),
                kept_examples=beam.pvalue.AsSingleton(kept_examples))
            | "WriteReport" >> beam.Map(_write_report, path,
                                        written=beam.pvalue.AsList(outputs["written"]))
        )


def _write_report(report: Report, path: str, written: list[str]) -> str:
    """``written``: every output file's path, unused but for the wait on it (see BuildReport)."""
    return _write_json(path, report)


def _write_json(path: str, report: Report) -> str:
    write_atomically(path, report_to_json(report))
    return path


def read_report(run_dir: str) -> Report:
    with open_binary(FileSystems.join(run_dir, REPORT_FILE)) as handle:
        return report_from_json(handle.read())


def finish_report(run_dir: str, wall_seconds: float, runner: str) -> Report:
    """Driver side, after the run: add what only the driver knows."""
    report = read_report(run_dir)
    report["wall_seconds"] = round(wall_seconds, 3)
    report["runner"] = runner
    _write_json(FileSystems.join(run_dir, REPORT_FILE), report)
    return report
