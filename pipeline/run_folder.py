"""Reading a run folder (local or any Beam filesystem, e.g. ``gs://``) back.

``load_run``: the report, or for a run that stopped part way what can be rebuilt from the
folders present, with what is missing and what a reader must be warned of; ``removed_examples``
reads documents of one reason from removed/ (or quarantined/).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from apache_beam.io.filesystems import FileSystems

from winnow.pipeline.filesystem import exists, matching_paths, open_binary
from winnow.pipeline.report import read_report
from winnow.pipeline.stage_list import STAGE_NAMES
from winnow.schemas.report import REPORT_FILE, Report

RECORD_FOLDERS = ("kept", "removed", "quarantined")
MANIFEST = "shards/manifest.json"
_PART = re.compile(r"part-\d+-of-(\d+)\.parquet$")


class RunNotFound(ValueError):
    """The folder does not exist or holds nothing a run writes."""


@dataclass
class RunView:
    """A run folder as the report shows it."""

    run_dir: str
    report: Report
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
    files = {folder: parquet_files(run_dir, folder) for folder in RECORD_FOLDERS}
    has_report = exists(FileSystems.join(run_dir, REPORT_FILE))
    has_manifest = exists(FileSystems.join(run_dir, MANIFEST))
    if not (has_report or has_manifest or any(files.values())):
        where = "does not exist" if not exists(run_dir) else "holds no curation run"
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


def pipeline_stages() -> list[str]:
    """The rows of a curation run's funnel, in pipeline order (``pipeline.stage_list``)."""
    return list(STAGE_NAMES)


def _run_warnings(view: RunView) -> list[str]:
    report, warnings = view.report, []
    if not view.finished:
        # Beam writes kept/ and removed/ only once every stage before them has seen all its
        # input, so complete folders prove those stages finished.
        incomplete = [m for m in view.missing if m.split("/")[0] in ("kept", "removed")]
        unfinished = [] if not incomplete else [s for s in pipeline_stages() if s != "shards"]
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
        stale = [name for name in ("languages", "lengths", "thresholds", "sources")
                 if name not in report]
        if stale:
            warnings.append(f"not in this report (made by an older winnow): {', '.join(stale)}")
    return warnings


def parquet_files(run_dir: str, folder: str) -> list[str]:
    """The complete Parquet files of a folder (temporary files of a killed run are skipped)."""
    return [path for path in matching_paths(FileSystems.join(run_dir, folder, "*.parquet"))
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


def _count_by(path: str, columns: list[str]) -> Counter:
    """Rows of a Parquet file counted by the values of ``columns`` (read alone, in Arrow)."""
    from winnow.schemas.parquet import ParquetFile

    with open_binary(path) as handle:
        table = ParquetFile(handle).read(columns=columns)
    groups = table.group_by(columns, use_threads=False)  # no thread pool: schemas/parquet.py
    counts = groups.aggregate([([], "count_all")]).to_pylist()
    return Counter({tuple(row[c] for c in columns): row["count_all"] for row in counts})


def _rebuild_report(run_dir: str, files: dict[str, list[str]],
                    has_manifest: bool) -> Report:
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
    report: Report = {
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
        with open_binary(FileSystems.join(run_dir, MANIFEST)) as handle:
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

    from winnow.schemas.parquet import ParquetFile

    found: list[dict[str, Any]] = []
    for folder in ("removed", "quarantined"):
        for path in parquet_files(run_dir, folder):
            with open_binary(path) as handle:
                parquet = ParquetFile(handle)
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
