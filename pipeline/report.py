"""Assembling ``report.json`` inside the pipeline, and printing it in a terminal.

The report's counts come from the records themselves (what was written to kept/, removed/ and
quarantined/) and from the stages' per-bundle StageStats, combined by Beam; the driver adds the
wall time once the run has finished. The layout is documented in ``schemas.report``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.shards import LENGTH_BIN
from pipeline.stages import QualityStage, score_bin_name
from pipeline.transforms import merge_stage_stats
from pipeline.writers import write_atomically
from schemas.config import WinnowConfig, config_to_dict
from schemas.report import REPORT_FILE, REPORT_FORMAT_VERSION, StageStats

EXAMPLE_CHARS = 500
"""Characters of each example document kept in the report."""


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
) -> dict[str, Any]:
    """The report as a JSON-ready dict; see schemas.report for the layout."""
    removed_by_stage: dict[str, dict[str, int]] = defaultdict(dict)
    removed_by_reason: Counter = Counter()
    for (stage, reason), count in sorted(removed_counts):
        removed_by_stage[stage][reason] = count
        removed_by_reason[reason] += count
    read = stats_by_stage.get("read", StageStats())
    pii_stats = stats_by_stage.get("pii", StageStats())
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
             **stats_by_stage.get(name, StageStats()).to_json()}
            for name, enabled in stage_order
        ],
        "pii": dict(sorted(pii_stats.tallies.items())),
        "quality": quality_section(config, stats_by_stage.get("quality", StageStats())),
        "near_dedup": near_dedup_section(
            config, stats_by_stage.get("near_dedup", StageStats()), cluster_summary),
        "shards": shards_section(config, stats_by_stage.get("shards", StageStats()), manifests),
        "examples": {
            reason: [{"id": key[0], "stage": stage, "text": snippet}
                     for key, stage, snippet in reason_examples]
            for reason, reason_examples in sorted(examples)
        },
        "config": config_to_dict(config),
    }


def quality_section(config: WinnowConfig, stats: StageStats) -> dict[str, Any]:
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


def near_dedup_section(config: WinnowConfig, stats: StageStats,
                       summary: dict[str, Any] | None) -> dict[str, Any]:
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
                   manifests: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Examples, tokens, label balance and length histogram of DIR/shards/."""
    if not config.shards.enabled:
        return {"enabled": False}
    manifest = (manifests or [{}])[0]
    lengths = {int(key.split(":")[1]) * LENGTH_BIN: count
               for key, count in sorted(stats.tallies.items()) if key.startswith("length_bin:")}
    pairs = {key: count for key, count in sorted(stats.tallies.items())
             if not key.startswith("length_bin:")}
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
        **({"note": manifest["note"]} if "note" in manifest else {}),
    }


class ClusterSummaryFn(beam.CombineFn):
    """Cluster summaries -> count, size histogram (2, 3-4, 5-8, ...) and the largest clusters
    (by size, then cluster id: deterministic)."""

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
        return sorted(clusters, key=lambda c: (-c["size"], c["cluster_id"]))[: self.LARGEST]


def _size_bin(size: int) -> str:
    """2 -> "2", 3..4 -> "3-4", 5..8 -> "5-8", ..."""
    if size <= 2:
        return str(size)
    upper = 1 << (size - 1).bit_length()
    return f"{upper // 2 + 1}-{upper}"


def example_entry(removed) -> tuple[str, tuple]:
    """(reason, comparable example): the smallest ids per reason become the examples."""
    return removed.reason, (removed.sort_key, removed.stage, removed.text[:EXAMPLE_CHARS])


class BuildReport(beam.PTransform):
    """{kept, removed, quarantined, stats} -> writes DIR/report.json; returns its path."""

    def __init__(self, output_dir: str, inputs: list[str], stage_order: list[tuple[str, bool]],
                 config: WinnowConfig):
        super().__init__()
        self.output_dir = output_dir
        self.inputs = inputs
        self.stage_order = stage_order
        self.config = config

    def expand(self, outputs):
        stats = (outputs["stats"]
                 | "MergeStats" >> beam.CombinePerKey(merge_stage_stats))
        kept = outputs["kept"] | "CountKept" >> beam.combiners.Count.Globally()
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
        path = FileSystems.join(self.output_dir, REPORT_FILE)
        return (
            outputs["kept"].pipeline
            | "Once" >> beam.Create([None])
            | "Assemble" >> beam.Map(
                lambda _, stats, kept, removed, quarantined, examples, clusters, manifests:
                assemble_report(
                    self.inputs, self.stage_order, self.config, dict(stats), kept, removed,
                    quarantined, examples if self.config.output.examples_per_reason else [],
                    clusters, manifests),
                stats=beam.pvalue.AsList(stats),
                kept=beam.pvalue.AsSingleton(kept),
                removed=beam.pvalue.AsList(removed_counts),
                quarantined=beam.pvalue.AsList(quarantined_counts),
                examples=beam.pvalue.AsList(examples),
                clusters=beam.pvalue.AsSingleton(cluster_summary),
                manifests=beam.pvalue.AsList(outputs["manifest"]))
            | "WriteReport" >> beam.Map(lambda report: _write_json(path, report))
        )


def _write_json(path: str, report: dict[str, Any]) -> str:
    write_atomically(path, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def _quality_lines(section: dict[str, Any]) -> list[str]:
    if not section.get("enabled"):
        return ["", section.get("note", "quality stage off")] if section else []
    counts = section["histogram"]["counts"]
    peak = max(counts) or 1
    rule = (f"threshold {section['threshold']}" if section["mode"] == "threshold"
            else f"pareto alpha {section['pareto_alpha']}")
    lines = ["", f"quality score histogram ({rule}):"]
    edges = section["histogram"]["bin_edges"]
    for low, high, count in zip(edges, edges[1:], counts, strict=False):
        marker = " <- threshold" if section["mode"] == "threshold" and low <= section[
            "threshold"] < high else ""
        lines.append(f"  {low:.2f}-{high:.2f} {count:>9,} {'#' * round(30 * count / peak)}"
                     f"{marker}")
    return lines


def _near_dedup_lines(section: dict[str, Any]) -> list[str]:
    if not section.get("enabled"):
        return []
    lines = ["", f"near-duplicate clusters: {section['clusters']:,} holding "
                 f"{section['documents_in_clusters']:,} documents "
                 f"({section['fraction_removed']:.2%} of the stage's input removed; "
                 f"threshold {section['threshold']}, {section['bands']} bands x "
                 f"{section['rows']} rows)"]
    sizes = ", ".join(f"{size}: {count:,}"
                      for size, count in section["cluster_size_histogram"].items())
    if sizes:
        lines.append(f"  cluster sizes: {sizes}")
    for cluster in section["largest_clusters"][:5]:
        lines.append(f"  {cluster['size']:>6,} x  {cluster['cluster_id']}  (keeps "
                     f"{cluster['survivor_id']}; e.g. {', '.join(cluster['member_ids'][:3])})")
    return lines


def _shards_lines(section: dict[str, Any]) -> list[str]:
    if not section.get("enabled"):
        return []
    labels = section["label_counts"]
    total = sum(int(count) for count in labels.values()) or 1
    lines = ["", f"shards: {section['shards']:,} files, {section['examples']:,} "
                 f"{section['objective'].upper()} examples, {section['tokens']:,} tokens "
                 f"(max_seq_len {section['max_seq_len']}, vocabulary {section['vocab_size']})"]
    if labels:
        lines.append(f"  label 1 share: {int(labels.get('1', 0)) / total:.3f}")
    if section.get("note"):
        lines.append(f"  {section['note']}")
    return lines


def read_report(run_dir: str) -> dict[str, Any]:
    with FileSystems.open(FileSystems.join(run_dir, REPORT_FILE)) as handle:
        return json.loads(handle.read().decode("utf-8"))


def finish_report(run_dir: str, wall_seconds: float, runner: str) -> dict[str, Any]:
    """Driver side, after the run: add what only the driver knows."""
    report = read_report(run_dir)
    report["wall_seconds"] = round(wall_seconds, 3)
    report["runner"] = runner
    _write_json(FileSystems.join(run_dir, REPORT_FILE), report)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The terminal summary: funnel by stage, removals by reason, quarantine, PII."""
    documents = report["documents"]
    lines = [f"inputs: {', '.join(report['inputs'])}",
             f"documents: {documents['input']:,} in, {documents['kept']:,} kept, "
             f"{sum(documents['removed'].values()):,} removed, "
             f"{sum(documents['quarantined'].values()):,} quarantined"
             + (f"  ({report['wall_seconds']:.1f} s wall)" if "wall_seconds" in report else ""),
             "", "funnel by stage:",
             f"  {'stage':<12} {'docs in':>10} {'docs out':>10} {'MB in':>9} {'MB out':>9} "
             f"{'cpu s':>8}"]
    for stage in report["stages"]:
        if not stage["enabled"]:
            lines.append(f"  {stage['name']:<12} (disabled)")
            continue
        lines.append(
            f"  {stage['name']:<12} {stage['documents_in']:>10,} {stage['documents_out']:>10,} "
            f"{stage['bytes_in'] / 1e6:>9.2f} {stage['bytes_out'] / 1e6:>9.2f} "
            f"{stage['seconds']:>8.2f}")
    lines += ["", "removed by stage and reason:"]
    for stage, reasons in report["removed_by_stage"].items():
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            lines.append(f"  {stage + '/' + reason:<44} {count:>10,}")
    if documents["quarantined"]:
        lines += ["", "quarantined (unreadable records):"]
        lines += [f"  {reason:<44} {count:>10,}"
                  for reason, count in documents["quarantined"].items()]
    lines += _quality_lines(report.get("quality", {})) + _near_dedup_lines(
        report.get("near_dedup", {}))
    lines += _shards_lines(report.get("shards", {}))
    lines += ["", "PII redacted in kept documents:"]
    lines += [f"  {kind:<44} {count:>10,}" for kind, count in report["pii"].items()] or [
        "  none found"]
    return "\n".join(lines)
