"""``report.json``: assembled inside the pipeline, read back from a run folder, printed.

Three parts:

- the pipeline side: the report's counts come from the records themselves (what was written to
  kept/, removed/ and quarantined/) and from the stages' per-bundle StageStats, combined by Beam;
  the driver adds the wall time once the run has finished. The layout is in ``schemas.report``.
- reading a run folder (local or any Beam filesystem, e.g. ``gs://``) with ``load_run``: the
  report, or for a run that stopped part way what can be rebuilt from the folders present,
  with what is missing; ``removed_examples`` reads documents of one reason from removed/.
- the terminal: ``format_report`` (every figure as tables), ``format_examples`` (``--reason``)
  and ``format_comparison`` (``--compare``). ``pipeline.html_report`` draws the same figures.

Nothing a document contains is displayed without going through ``display_text``, which redacts
PII again with the default ``PiiConfig``: the report holds its promise on runs made with the pii
stage off and on runs made by older versions.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.config import WinnowConfig, config_to_dict
from pipeline.shards import LENGTH_BIN
from pipeline.stage_list import STAGE_NAMES
from pipeline.stages import QualityStage, length_bin_name, score_bin_name
from pipeline.transforms import merge_stage_stats
from pipeline.writers import write_atomically
from schemas.report import REPORT_FILE, REPORT_FORMAT_VERSION, StageStats

EXAMPLE_CHARS = 500
"""Characters of each example document kept in the report."""
DETAILS_CHARS = 300
"""Characters of a removal's details (JSON) shown with an example."""
LANGUAGE_KEPT = "kept_language:"
LANGUAGE_REMOVED = "removed_language:"
"""Tally prefixes of the language stage (``pipeline.stages.LanguageStage.tally``)."""


# --- the pipeline side ---------------------------------------------------------------------------

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
) -> dict[str, Any]:
    """The report as a JSON-ready dict; see schemas.report for the layout. ``kept_profile``:
    (``chars_bin:NN`` or ``language:xx``, count) over the kept documents."""
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
             **stats_by_stage.get(name, StageStats()).to_json()}
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
        "examples": {
            reason: [{"id": key[0], "stage": stage, "text": snippet, "details": json.loads(details)}
                     for key, stage, snippet, details in reason_examples]
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


def languages_section(config: WinnowConfig, stats: StageStats,
                      kept_profile: Counter) -> dict[str, Any]:
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


def lengths_section(read_tallies: Counter, kept_profile: Counter) -> dict[str, Any]:
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
    """(reason, comparable example): the smallest ids per reason become the examples. The
    details travel as their JSON text, which (unlike a dict) compares."""
    return removed.reason, (removed.sort_key, removed.stage, removed.text[:EXAMPLE_CHARS],
                            details_json(removed.details))


def details_json(details: dict[str, Any]) -> str:
    """A removal's details as stored in the ``details`` column of removed/."""
    return json.dumps(details, sort_keys=True, ensure_ascii=False)


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
        path = FileSystems.join(self.output_dir, REPORT_FILE)
        return (
            outputs["kept"].pipeline
            | "Once" >> beam.Create([None])
            | "Assemble" >> beam.Map(
                lambda _, stats, kept, removed, quarantined, examples, clusters, manifests,
                profile: assemble_report(
                    self.inputs, self.stage_order, self.config, dict(stats), kept, removed,
                    quarantined, examples if self.config.output.examples_per_reason else [],
                    clusters, manifests, profile),
                stats=beam.pvalue.AsList(stats),
                kept=beam.pvalue.AsSingleton(kept),
                removed=beam.pvalue.AsList(removed_counts),
                quarantined=beam.pvalue.AsList(quarantined_counts),
                examples=beam.pvalue.AsList(examples),
                clusters=beam.pvalue.AsSingleton(cluster_summary),
                manifests=beam.pvalue.AsList(outputs["manifest"]),
                profile=beam.pvalue.AsList(kept_profile))
            | "WriteReport" >> beam.Map(lambda report: _write_json(path, report))
        )


def _write_json(path: str, report: dict[str, Any]) -> str:
    write_atomically(path, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def read_report(run_dir: str) -> dict[str, Any]:
    with FileSystems.open(FileSystems.join(run_dir, REPORT_FILE),
                          compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        return json.loads(handle.read().decode("utf-8"))


def finish_report(run_dir: str, wall_seconds: float, runner: str) -> dict[str, Any]:
    """Driver side, after the run: add what only the driver knows."""
    report = read_report(run_dir)
    report["wall_seconds"] = round(wall_seconds, 3)
    report["runner"] = runner
    _write_json(FileSystems.join(run_dir, REPORT_FILE), report)
    return report


# --- reading a run folder ------------------------------------------------------------------------

RECORD_FOLDERS = ("kept", "removed", "quarantined")
MANIFEST = "shards/manifest.json"
_PART = re.compile(r"part-\d+-of-(\d+)\.parquet$")


class RunNotFound(ValueError):
    """The folder does not exist or holds nothing a run writes."""


@dataclass
class RunView:
    """A run folder as the report shows it."""

    run_dir: str
    report: dict[str, Any]
    """report.json, or for an unfinished run the figures rebuilt from the folders present
    (``documents``, ``removed_by_stage``, ``languages.kept``, ``shards``; no per-stage figures)."""
    finished: bool
    """report.json was there."""
    missing: list[str] = field(default_factory=list)
    """Outputs that a finished run of this config would have and this folder lacks."""
    warnings: list[str] = field(default_factory=list)
    """What a reader must know before trusting the figures: the run did not finish, which
    stages and outputs are missing, sections an older report lacks."""


def load_run(run_dir: str) -> RunView:
    """The report of a run folder (local or ``gs://``), rebuilt from its folders when the run
    stopped before writing report.json. Raises ``RunNotFound`` when there is no run."""
    run_dir = run_dir.rstrip("/") or run_dir
    files = {folder: _parquet_files(run_dir, folder) for folder in RECORD_FOLDERS}
    has_report = _exists(FileSystems.join(run_dir, REPORT_FILE))
    has_manifest = _exists(FileSystems.join(run_dir, MANIFEST))
    if not (has_report or has_manifest or any(files.values())):
        where = "does not exist" if not _exists(run_dir) else "holds no curation run"
        raise RunNotFound(f"{run_dir} {where} (no report.json, kept/, removed/, quarantined/ "
                          f"or {MANIFEST})")
    report = read_report(run_dir) if has_report else _rebuild_report(run_dir, files,
                                                                     has_manifest)
    config = report.get("config", {})
    shards_expected = config.get("shards", {}).get("enabled", True)
    missing = [] if has_report else [REPORT_FILE]
    for folder in RECORD_FOLDERS:
        missing += _missing_parts(folder, files[folder], config.get("output", {}).get(
            "num_shards"))
    if shards_expected and not has_manifest:
        missing.append(MANIFEST)
    view = RunView(run_dir, report, has_report, missing)
    view.warnings = _run_warnings(view)
    return view


def _run_warnings(view: RunView) -> list[str]:

    report, warnings = view.report, []
    if not view.finished:
        # Beam writes kept/ and removed/ only once every stage before them has seen all its
        # input, so complete folders prove those stages finished.
        incomplete = [m for m in view.missing if m.split("/")[0] in ("kept", "removed")]
        unfinished = [] if not incomplete else [s for s in STAGE_NAMES if s != "shards"]
        if MANIFEST in view.missing:
            unfinished.append("shards")
        warnings.append(
            "this run did not finish: report.json is missing, so the figures below are rebuilt "
            "from the folders present (no per-stage funnel, timings, PII counts or examples)")
        warnings.append(f"stages missing (not shown to have finished): "
                        f"{', '.join(unfinished + ['report'])}"
                        + ("" if incomplete else " (kept/ and removed/ are complete, so every "
                                                 "stage before them finished)"))
    if view.missing:
        warnings.append(f"missing outputs: {', '.join(view.missing)}")
    if view.finished and "wall_seconds" not in report:
        warnings.append("report.json has no wall time: the driver stopped before the end")
    if view.finished:
        stale = [name for name in ("languages", "lengths") if name not in report]
        if stale:
            warnings.append(f"not in this report (made by an older winnow): {', '.join(stale)}")
    return warnings


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:  # noqa: BLE001 - a filesystem that cannot answer holds no run for us
        return False


def _match(pattern: str) -> list[str]:
    try:
        results = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError for "no such folder" on some FS
        return []
    return sorted(m.path for m in results)


def _parquet_files(run_dir: str, folder: str) -> list[str]:
    """The complete Parquet files of a folder (temporary files of a killed run are skipped)."""
    return [path for path in _match(FileSystems.join(run_dir, folder, "*.parquet"))
            if _PART.search(path)]


def _missing_parts(folder: str, files: list[str], num_shards: int | None) -> list[str]:
    expected = num_shards
    if expected is None and files:
        expected = int(_PART.search(files[0]).group(1))
    if not files:
        return [f"{folder}/"]
    if expected and len(files) < expected:
        return [f"{folder}/ ({len(files)} of {expected} files)"]
    return []


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _count_by(path: str, columns: list[str]) -> Counter:
    """Rows of a Parquet file counted by the values of ``columns`` (read alone, in Arrow)."""
    import pyarrow.parquet as pq

    with _open(path) as handle:
        table = pq.ParquetFile(handle).read(columns=columns)
    counts = table.group_by(columns).aggregate([([], "count_all")]).to_pylist()
    return Counter({tuple(row[c] for c in columns): row["count_all"] for row in counts})


def _rebuild_report(run_dir: str, files: dict[str, list[str]],
                    has_manifest: bool) -> dict[str, Any]:
    """What an unfinished run's folders tell: counts by reason and stage, kept languages,
    shard totals. ``documents.input`` is the sum of what was written."""
    removed_by_stage: dict[str, Counter] = defaultdict(Counter)
    quarantined, languages = Counter(), Counter()
    for path in files["removed"]:
        for (stage, reason), count in _count_by(path, ["stage", "reason"]).items():
            removed_by_stage[stage][reason] += count
    for path in files["quarantined"]:
        for (reason,), count in _count_by(path, ["reason"]).items():
            quarantined[reason] += count
    for path in files["kept"]:
        for (language,), count in _count_by(path, ["language"]).items():
            languages[language or "unidentified"] += count
    kept = sum(languages.values())
    removed = Counter()
    for reasons in removed_by_stage.values():
        removed += reasons
    report: dict[str, Any] = {
        "rebuilt_from_folders": True,
        "inputs": [],
        "documents": {"input": kept + sum(removed.values()) + sum(quarantined.values()),
                      "kept": kept, "removed": dict(sorted(removed.items())),
                      "quarantined": dict(sorted(quarantined.items()))},
        "removed_by_stage": {stage: dict(sorted(reasons.items()))
                             for stage, reasons in sorted(removed_by_stage.items())},
        "stages": [],
        "languages": {"kept": dict(languages.most_common())} if kept else {},
    }
    if has_manifest:
        with _open(FileSystems.join(run_dir, MANIFEST)) as handle:
            manifest = json.loads(handle.read().decode("utf-8"))
        report["shards"] = {
            "enabled": True, "objective": manifest.get("objective", "?"),
            "max_seq_len": manifest.get("max_seq_len"), "examples": manifest.get("examples", 0),
            "tokens": manifest.get("tokens", 0), "shards": len(manifest.get("shards", [])),
            "label_counts": manifest.get("label_counts", {}),
            "vocab_size": manifest.get("vocab_size")}
    return report


def removed_examples(run_dir: str, reason: str, n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` documents with the smallest ids removed for ``reason`` (or quarantined for
    it), read from DIR/removed/ (DIR/quarantined/) a row group at a time: only row groups that
    hold the reason are read whole. Each file is sorted by id, so a file stops at ``n``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: list[dict[str, Any]] = []
    for folder in ("removed", "quarantined"):
        for path in _parquet_files(run_dir, folder):
            with _open(path) as handle:
                parquet = pq.ParquetFile(handle)
                taken = 0
                for group in range(parquet.num_row_groups):
                    reasons = parquet.read_row_group(group, columns=["reason"]).column(0)
                    if not pc.any(pc.equal(reasons, reason)).as_py():
                        continue
                    rows = [row for row in parquet.read_row_group(group).to_pylist()
                            if row["reason"] == reason][: n - taken]
                    found += [_example_row(folder, row) for row in rows]
                    taken += len(rows)
                    if taken >= n:
                        break
        if found:
            break
    return sorted(found, key=lambda row: row["id"])[:n]


def _example_row(folder: str, row: dict[str, Any]) -> dict[str, Any]:
    # Runs written before the input_file/input_position columns named them source/position.
    where = {"input_file": row.get("input_file", row.get("source")),
             "input_position": row.get("input_position", row.get("position"))}
    if folder == "removed":
        return {"id": row["id"], "stage": row["stage"], **where,
                "details": row["details"] or "", "text": row["text"] or ""}
    return {"id": row["id"], "stage": "read (quarantined)", **where,
            "details": row["detail"] or "",
            "text": (row["raw_prefix"] or b"").decode("utf-8", "replace")}


# --- what may be displayed -----------------------------------------------------------------------

REDACT_CHARS = 100_000
"""Display redaction looks at most at this many leading characters of a document."""
CUT_MARGIN = 48
"""Characters dropped from the end of a text that arrived already cut: a PII span cut in half
by the earlier cut (a card number's first digits) is no longer recognisable, so the tail where
it could sit goes, up to a word boundary."""

_display_redactor = None


def display_text(text: str, limit: int = EXAMPLE_CHARS, arrived_cut: bool = False) -> str:
    """``text`` as the report may show it: PII redacted with the default ``PiiConfig`` (every
    type), cut to ``limit`` characters at a word boundary. ``arrived_cut``: the text was cut
    before it reached us (report examples, ``removed_text_max_chars``), so its tail may hold
    half a PII span."""
    global _display_redactor
    if _display_redactor is None:
        from filters.pii import PiiConfig, PiiRedactor

        _display_redactor = PiiRedactor(PiiConfig())
    shown = _display_redactor.redact(text[:REDACT_CHARS]).text
    cut = arrived_cut or len(shown) > limit or len(text) > REDACT_CHARS
    if arrived_cut:
        shown = shown[: max(0, min(limit, len(shown) - CUT_MARGIN))]
    elif cut:
        shown = shown[:limit]
    if cut:
        shown = re.sub(r"\S*$", "", shown).rstrip() + " …"
    return shown


def display_examples(report: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """report.json's examples per reason, safe to display."""
    return {reason: [{"id": str(example.get("id", "")), "stage": str(example.get("stage", "")),
                      "text": display_text(example.get("text", ""), EXAMPLE_CHARS,
                                           len(example.get("text", "")) >= EXAMPLE_CHARS),
                      "details": display_text(details_json(example["details"]), DETAILS_CHARS)
                      if example.get("details") else ""}
                     for example in examples]
            for reason, examples in report.get("examples", {}).items()}


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"quality": {"threshold": 0.5}}`` -> ``{"quality.threshold": 0.5}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def non_default_config(config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flattened keys whose value differs from the default: key -> (value, default)."""
    defaults = flatten_config(config_to_dict(WinnowConfig()))
    return {key: (value, defaults.get(key)) for key, value in flatten_config(config).items()
            if _config_value(value) != _config_value(defaults.get(key))}


def _config_value(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)


def removal_rows(report: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(stage, reason, documents): stages in pipeline order, reasons largest first."""

    by_stage = report.get("removed_by_stage", {})
    order = [stage["name"] for stage in report.get("stages", [])] or list(STAGE_NAMES)
    stages = sorted(by_stage, key=lambda s: (order.index(s) if s in order else len(order), s))
    return [(stage, reason, count) for stage in stages
            for reason, count in sorted(by_stage[stage].items(),
                                        key=lambda item: (-item[1], item[0]))]


def length_bin_label(low: int, high: int) -> str:
    """A log2 length bin [low, high): ``0``, ``64-127``, ``1K-2K``, ``1M-2M``."""
    if high <= 1:
        return "0"
    for shift, unit in ((20, "M"), (10, "K")):
        if low >= 1 << shift:
            return f"{low >> shift}{unit}-{high >> shift}{unit}"
    return f"{low}-{high - 1}"


# --- the terminal --------------------------------------------------------------------------------

def table(headers: list[str], rows: Iterable[Iterable[Any]], indent: str = "  ",
          align: str = "") -> list[str]:
    """Aligned text columns. ``align``: one ``l`` or ``r`` per column; by default the first
    column is left-aligned and the others right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max([len(headers[i])] + [len(row[i]) for row in cells])
              for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return (indent + "  ".join(
            value.ljust(width) if side == "l" else value.rjust(width)
            for value, width, side in zip(values, widths, align, strict=True))).rstrip()

    return [line(headers)] + [line(row) for row in cells]


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _bar(count: int, peak: int, width: int = 30) -> str:
    return "#" * round(width * count / peak) if peak else ""


def format_report(report: dict[str, Any], view: RunView | None = None) -> str:
    """The terminal report: every figure of the HTML report, as tables."""
    lines = [f"warning: {warning}" for warning in (view.warnings if view else [])]
    lines += _summary_lines(report)
    lines += _funnel_lines(report)
    lines += _removed_lines(report)
    lines += _quality_lines(report.get("quality", {}))
    lines += _language_lines(report.get("languages", {}))
    lines += _length_lines(report.get("lengths", {}))
    lines += _near_dedup_lines(report.get("near_dedup", {}))
    lines += _pii_lines(report)
    lines += _shards_lines(report.get("shards", {}))
    lines += _config_lines(report)
    if report.get("examples"):
        lines += ["", "examples of removed documents (PII redacted): winnow report DIR "
                      "--reason NAME [-n N], NAME one of:",
                  "  " + ", ".join(report["examples"])]
    return "\n".join(lines)


def _summary_lines(report: dict[str, Any]) -> list[str]:
    documents = report["documents"]
    lines = [f"inputs: {', '.join(report['inputs'])}"] if report.get("inputs") else []
    runner = f", {report['runner']}" if report.get("runner") else ""
    wall = (f"  ({report['wall_seconds']:.1f} s wall{runner})" if "wall_seconds" in report
            else "")
    counted = " (counted in the files present)" if report.get("rebuilt_from_folders") else ""
    lines.append(f"documents{counted}: {documents['input']:,} in, {documents['kept']:,} kept, "
                 f"{sum(documents['removed'].values()):,} removed, "
                 f"{sum(documents['quarantined'].values()):,} quarantined{wall}")
    return lines


def _funnel_lines(report: dict[str, Any]) -> list[str]:
    stages = report.get("stages", [])
    if not stages:
        return ["", "funnel by stage: not available (no report.json)"]
    rows = []
    for stage in stages:
        if not stage["enabled"]:
            rows.append([stage["name"], "(disabled)", "", "", "", ""])
            continue
        rows.append([stage["name"], stage["documents_in"], stage["documents_out"],
                     f"{stage['bytes_in'] / 1e6:.2f}", f"{stage['bytes_out'] / 1e6:.2f}",
                     f"{stage['seconds']:.2f}"])
    return ["", "funnel by stage:"] + table(
        ["stage", "docs in", "docs out", "MB in", "MB out", "cpu s"], rows)


def _removed_lines(report: dict[str, Any]) -> list[str]:
    rows = [(f"{stage}/{reason}", count) for stage, reason, count in removal_rows(report)]
    lines = ["", "removed by stage and reason:"]
    lines += table(["stage/reason", "documents"], rows) if rows else ["  none"]
    quarantined = report["documents"]["quarantined"]
    if quarantined:
        lines += ["", "quarantined (unreadable records):"]
        lines += table(["reason", "records"], quarantined.items())
    return lines


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
        lines.append(f"  {low:.2f}-{high:.2f} {count:>9,} {_bar(count, peak)}{marker}")
    return lines


def _language_lines(section: dict[str, Any]) -> list[str]:
    if not section:
        return []
    at_stage, kept = section.get("at_stage", {}), section.get("kept", {})
    languages = list(dict.fromkeys(list(at_stage) + list(kept)))
    if not languages:
        return []
    note = "" if section.get("enabled", True) else " (language stage disabled)"
    lines = ["", f"language mix{note}:"]
    if at_stage:
        lines += table(["language", "stage kept", "stage removed", "kept at end"], [
            (lang, at_stage.get(lang, {}).get("kept", 0), at_stage.get(lang, {}).get(
                "removed", 0), kept.get(lang, 0)) for lang in languages[:20]])
    else:
        lines += table(["language", "kept at end"], [(lang, kept[lang]) for lang in
                                                     languages[:20]])
    if len(languages) > 20:
        lines.append(f"  ... and {len(languages) - 20} more languages")
    return lines


def _length_lines(section: dict[str, Any]) -> list[str]:
    edges = section.get("bin_edges", [])
    if not edges:
        return []
    peak = max(section["before"] + section["after"]) or 1
    rows = [(length_bin_label(low, high), before, _bar(before, peak, 20), after,
             _bar(after, peak, 20))
            for low, high, before, after in zip(edges, edges[1:], section["before"],
                                                section["after"], strict=False)]
    return (["", f"document length ({section['unit']}, log2 bins), as read and as kept:"]
            + table(["length", "read", "", "kept", ""], rows, align="lrlrl"))


def _near_dedup_lines(section: dict[str, Any]) -> list[str]:
    if not section.get("enabled"):
        return []
    lines = ["", f"near-duplicate clusters: {section['clusters']:,} holding "
                 f"{section['documents_in_clusters']:,} documents "
                 f"({section['fraction_removed']:.2%} of the stage's input removed; "
                 f"threshold {section['threshold']}, {section['bands']} bands x "
                 f"{section['rows']} rows)"]
    if section["cluster_size_histogram"]:
        lines += table(["cluster size", "clusters"], section["cluster_size_histogram"].items())
    if section["largest_clusters"]:
        lines += ["  largest clusters:"] + table(
            ["cluster", "size", "survivor", "members (first 3)"],
            [(c["cluster_id"], c["size"], c["survivor_id"], ", ".join(c["member_ids"][:3]))
             for c in section["largest_clusters"][:5]], indent="    ", align="lrll")
    return lines


def _pii_lines(report: dict[str, Any]) -> list[str]:
    lines = ["", "PII redacted in kept documents:"]
    if "pii" not in report:
        return lines + ["  not available (no report.json)"]
    return lines + (table(["type", "spans"], report["pii"].items()) if report["pii"] else [
        "  none found"])


def _shards_lines(section: dict[str, Any]) -> list[str]:
    if not section.get("enabled"):
        return []
    labels = section.get("label_counts", {})
    total = sum(int(count) for count in labels.values()) or 1
    lines = ["", f"shards: {section['shards']:,} files, {section['examples']:,} "
                 f"{section['objective'].upper()} examples, {section['tokens']:,} tokens "
                 f"(max_seq_len {section['max_seq_len']}, vocabulary {section['vocab_size']})"]
    if labels:
        lines += table(["label", "examples", "share"],
                       [(label, int(count), f"{int(count) / total:.3f}")
                        for label, count in sorted(labels.items())])
    histogram = section.get("length_histogram", {})
    counts = histogram.get("counts", {})
    if counts:
        width, peak = histogram["bin_width"], max(counts.values())
        lines += ["  sequence length (tokens):"] + table(
            ["length", "examples", ""],
            [(f"{int(low)}-{int(low) + width - 1}", count, _bar(count, peak, 24))
             for low, count in counts.items()], indent="    ", align="lrl")
    if section.get("note"):
        lines.append(f"  {section['note']}")
    return lines


def _config_lines(report: dict[str, Any]) -> list[str]:
    if "config" not in report:
        return []
    changed = non_default_config(report["config"])
    lines = ["", "configuration (settings that differ from the defaults; --json shows all):"]
    lines += table(["key", "value", "default"],
                   [(key, _config_value(value), _config_value(default))
                    for key, (value, default) in changed.items()], align="lll") if changed else [
        "  all defaults"]
    return lines


def format_examples(view: RunView, reason: str, examples: list[dict[str, Any]],
                    n: int) -> str:
    """``--reason``: the documents removed for one reason, PII redacted."""
    documents = view.report["documents"]
    total = documents["removed"].get(reason, documents["quarantined"].get(reason, 0))
    stages = sorted({example["stage"] for example in examples})
    cut = view.report.get("config", {}).get("output", {}).get("removed_text_max_chars", 0)
    lines = [f"warning: {warning}" for warning in view.warnings]
    lines.append(f"{reason}: {total:,} documents ({', '.join(stages)}); the {len(examples)} "
                 f"with the smallest ids (asked for {n}), PII redacted:")
    for number, example in enumerate(examples, 1):
        text = display_text(example["text"], EXAMPLE_CHARS,
                            bool(cut) and len(example["text"]) >= cut)
        details = display_text(example["details"], DETAILS_CHARS)
        lines += ["", f"[{number}] {example['id']}",
                  f"    stage: {example['stage']}   input: {example['input_file']}:"
                  f"{example['input_position']}   details: {details or '{}'}"]
        lines += [f"    | {piece}" for line in text.splitlines() or [""]
                  for piece in textwrap.wrap(line, 96) or [""]]
    return "\n".join(lines)


def comparison_rows(left: dict[str, Any], right: dict[str, Any]) -> dict[str, list[tuple]]:
    """Sections of (label, left, right, delta) rows comparing two reports."""

    def row(label: str, a: Any, b: Any) -> tuple:
        delta = b - a if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
        return label, a, b, delta

    docs_l, docs_r = left["documents"], right["documents"]
    totals = [row("input", docs_l["input"], docs_r["input"]),
              row("kept", docs_l["kept"], docs_r["kept"]),
              row("removed", sum(docs_l["removed"].values()), sum(docs_r["removed"].values())),
              row("quarantined", sum(docs_l["quarantined"].values()),
                  sum(docs_r["quarantined"].values()))]
    for name, key in (("shard examples", "examples"), ("shard tokens", "tokens")):
        a, b = left.get("shards", {}).get(key), right.get("shards", {}).get(key)
        if a is not None or b is not None:
            totals.append(row(name, a or 0, b or 0))
    if "wall_seconds" in left or "wall_seconds" in right:
        totals.append(row("wall seconds", left.get("wall_seconds", 0.0),
                          right.get("wall_seconds", 0.0)))
    stages_l = {s["name"]: s for s in left.get("stages", [])}
    stages_r = {s["name"]: s for s in right.get("stages", [])}
    def out(stages: dict[str, Any], name: str) -> int | str:
        stage = stages.get(name)
        return "-" if stage is None else stage["documents_out"] if stage["enabled"] else "off"

    by_stage = [row(name, out(stages_l, name), out(stages_r, name))
                for name in dict.fromkeys(list(stages_l) + list(stages_r))]
    removed_l = {f"{s}/{r}": c for s, r, c in removal_rows(left)}
    removed_r = {f"{s}/{r}": c for s, r, c in removal_rows(right)}
    stage_removed_l = {s: sum(r.values()) for s, r in left.get("removed_by_stage", {}).items()}
    stage_removed_r = {s: sum(r.values()) for s, r in right.get("removed_by_stage", {}).items()}
    return {
        "documents": totals,
        "documents out by stage": by_stage,
        "removed by stage": [row(stage, stage_removed_l.get(stage, 0),
                                 stage_removed_r.get(stage, 0))
                             for stage in dict.fromkeys(list(stage_removed_l)
                                                        + list(stage_removed_r))],
        "removed by reason": [row(key, removed_l.get(key, 0), removed_r.get(key, 0))
                              for key in sorted(set(removed_l) | set(removed_r))],
    }


def config_differences(left: dict[str, Any], right: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Flattened config keys whose values differ: (key, left value, right value)."""
    flat_l, flat_r = flatten_config(left.get("config", {})), flatten_config(
        right.get("config", {}))
    return [(key, _config_value(flat_l.get(key)), _config_value(flat_r.get(key)))
            for key in sorted(set(flat_l) | set(flat_r))
            if _config_value(flat_l.get(key)) != _config_value(flat_r.get(key))]


def format_comparison(left: RunView, right: RunView) -> str:
    """``--compare``: two runs side by side, with deltas and the config keys that differ."""
    lines = [f"A = {left.run_dir}", f"B = {right.run_dir}"]
    for tag, view in (("A", left), ("B", right)):
        lines += [f"warning ({tag}): {warning}" for warning in view.warnings]
    for title, rows in comparison_rows(left.report, right.report).items():
        if not rows:
            continue
        lines += ["", f"{title}:"] + table(
            ["", "A", "B", "B - A"],
            [(label, a, b, "" if delta is None else _signed(delta)) for label, a, b, delta
             in rows])
    differences = config_differences(left.report, right.report)
    lines += ["", "config differences:"]
    lines += table(["key", "A", "B"], differences, align="lll") if differences else ["  none"]
    return "\n".join(lines)


def _signed(delta: float) -> str:
    if isinstance(delta, float) and not delta.is_integer():
        return f"{delta:+,.2f}"
    return "0" if delta == 0 else f"{int(delta):+,}"
