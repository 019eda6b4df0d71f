"""``README.md`` of a run folder: a Hugging Face dataset card, so ``datasets.load_dataset(RUN)``
reads kept/ and ``load_dataset(RUN, "removed")`` / ``"quarantined"`` the other two folders.

The card's YAML front matter lists the three folders as named configurations (``configs:``,
kept the default); without it ``datasets`` reads every Parquet file of the folder as one split
and fails on the first file whose columns differ from kept/'s. A folder that holds no record
is left out of ``configs:`` (the text says so): ``datasets`` cannot load a split with no rows,
neither from files without row groups ("corresponds to no data") nor from files with an empty
one (pyarrow's "BatchSize must be greater than 0"). Files without rows beside files with rows
are fine.

The text describes the run from its report (inputs, counts by reason, the settings that differ
from the defaults, shards) and the licences kept/ holds (``fields.license``). It holds no wall
time or runner, so the same input, config and seed give the same card on any runner.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from apache_beam.io.filesystems import FileSystems

from winnow.pipeline.filesystem import open_binary
from winnow.pipeline.report_text import config_value, non_default_config, removal_rows
from winnow.pipeline.run_folder import parquet_files
from winnow.pipeline.writers import write_atomically
from winnow.schemas.parquet import ParquetFile
from winnow.schemas.records import FIELDS_COLUMN, KEPT_SCHEMA, QUARANTINED_SCHEMA, REMOVED_SCHEMA
from winnow.schemas.report import Report

CARD_FILE = "README.md"
CARD_TITLE = "winnow curation run"
"""The card's ``pretty_name``, by which a README.md in an output folder is known as a card."""
LICENCE_FIELDS = ("license", "licence")
"""Names of an input field holding a record's licence, looked for in kept/'s ``fields``."""

_FOLDER_ROWS = {
    "kept": ("a kept document", KEPT_SCHEMA),
    "removed": ("a removed document, with the stage and reason that removed it", REMOVED_SCHEMA),
    "quarantined": ("an input record that is not a document (malformed, unreadable), with "
                    "its reason and its first raw bytes", QUARANTINED_SCHEMA),
}


def folder_records(report: Report) -> dict[str, int]:
    """Records each folder holds, from the report: {kept, removed, quarantined: count}."""
    documents = report["documents"]
    return {"kept": documents["kept"], "removed": sum(documents["removed"].values()),
            "quarantined": sum(documents["quarantined"].values())}


def card_configs(report: Report) -> list[dict[str, Any]]:
    """The ``configs:`` entries: one per folder holding records, kept the default."""
    return [{"config_name": folder, "data_files": [{"split": "train",
                                                    "path": f"{folder}/*.parquet"}],
             **({"default": True} if folder == "kept" else {})}
            for folder, count in folder_records(report).items() if count]


def kept_licences(run_dir: str) -> tuple[str | None, Counter]:
    """(the licence field's name, licence -> kept documents) read from kept/'s
    ``fields.<name>`` column alone; (None, empty) when the records carry no licence field."""
    name, licences = None, Counter()
    for path in parquet_files(run_dir, "kept"):
        with open_binary(path) as handle:
            parquet = ParquetFile(handle)
            schema = parquet.schema_arrow
            if FIELDS_COLUMN not in schema.names or not hasattr(
                    schema.field(FIELDS_COLUMN).type, "names"):
                return None, Counter()
            names = schema.field(FIELDS_COLUMN).type.names
            name = next((n for n in LICENCE_FIELDS if n in names), None)
            if name is None:
                return None, Counter()
            # read as the struct with that one child; flatten() gives the child itself
            column = parquet.read(columns=[f"{FIELDS_COLUMN}.{name}"]).flatten().column(0)
        licences.update("(none)" if value is None else str(value)
                        for value in column.to_pylist())
    return name, licences


def is_dataset_card(head: bytes) -> bool:
    """Whether a README.md starting with ``head`` is a card a run wrote (its front matter names
    ``CARD_TITLE``), not the user's own file."""
    return head.startswith(b"---\n") and f"\npretty_name: {CARD_TITLE}\n".encode() in head


def dataset_card(report: Report, licence_field: str | None, licences: Counter) -> str:
    """The card's text: YAML front matter, then the run in Markdown."""
    front = yaml.safe_dump({"pretty_name": CARD_TITLE, "configs": card_configs(report)},
                           sort_keys=False)
    lines = [f"---\n{front}---", "", f"# {CARD_TITLE}", ""]
    lines += _inputs_lines(report) + _configs_lines(report) + _documents_lines(report)
    lines += _licence_lines(licence_field, licences) + _shards_lines(report)
    lines += _config_lines(report)
    return "\n".join(lines) + "\n"


def write_dataset_card(run_dir: str, report: Report) -> str:
    """Write DIR/README.md atomically; returns its path."""
    path = FileSystems.join(run_dir, CARD_FILE)
    write_atomically(path, dataset_card(report, *kept_licences(run_dir)).encode("utf-8"))
    return path


def _markdown_table(headers: list[str], rows: list[tuple]) -> list[str]:
    return ([f"| {' | '.join(headers)} |", f"|{'---|' * len(headers)}"]
            + [f"| {' | '.join(str(cell) for cell in row)} |" for row in rows])


def _inputs_lines(report: Report) -> list[str]:
    inputs = ", ".join(f"`{path}`" for path in report.get("inputs", [])) or "(not recorded)"
    return [f"Documents curated by winnow from {inputs}. `report.json` "
            "holds every figure of the run; `winnow report RUN` shows them.", ""]


def _configs_lines(report: Report) -> list[str]:
    counts = folder_records(report)
    rows = []
    for folder, (row, schema) in _FOLDER_ROWS.items():
        name = f"`{folder}` (default)" if folder == "kept" else f"`{folder}`"
        if not counts[folder]:
            name = f"none: `{folder}/` is empty"
        rows.append((name, f"`{folder}/`", f"{counts[folder]:,}", row,
                     ", ".join(f"`{column}`" for column in schema.names)))
    lines = ["## Loading", "", "```python", "from datasets import load_dataset", "",
             'kept = load_dataset("RUN")["train"]  # RUN: this folder'
             if counts["kept"] else "# this run kept no document: there is no kept split"]
    lines += [f'{folder} = load_dataset("RUN", "{folder}")["train"]'
              for folder in ("removed", "quarantined") if counts[folder]]
    lines += ["```", "", "Or with pandas: `pandas.read_parquet(\"RUN/kept\")`. A folder "
              "without records has no configuration (`datasets` cannot load an empty split).",
              ""]
    return lines + _markdown_table(["configuration", "folder", "records", "one row per",
                                    "columns"], rows) + [
        "", "`fields` holds the input record's other fields (licence, URL, ...); `metadata` "
        "and `details` are JSON text.", ""]


def _documents_lines(report: Report) -> list[str]:
    documents, counts = report["documents"], folder_records(report)
    lines = ["## Documents", "",
             f"{documents['input']:,} records read: {counts['kept']:,} kept, "
             f"{counts['removed']:,} removed, {counts['quarantined']:,} quarantined.", ""]
    removed = removal_rows(report)
    if removed:
        lines += ["Removed, by stage and reason:", ""]
        lines += _markdown_table(["stage", "reason", "documents"],
                                 [(stage, f"`{reason}`", f"{count:,}")
                                  for stage, reason, count in removed]) + [""]
    if documents["quarantined"]:
        lines += ["Quarantined, by reason:", ""]
        lines += _markdown_table(["reason", "records"],
                                 [(f"`{reason}`", f"{count:,}")
                                  for reason, count in documents["quarantined"].items()]) + [""]
    return lines


def _licence_lines(licence_field: str | None, licences: Counter) -> list[str]:
    lines = ["## Licences", ""]
    if licence_field is None:
        return lines + ["The kept records carry no `license` field: check the licences of "
                        "the inputs before you publish or train on them.", ""]
    return lines + [f"Licences of the kept documents (`fields.{licence_field}`):", ""] + (
        _markdown_table(["licence", "documents"],
                        [(f"`{licence}`", f"{count:,}")
                         for licence, count in sorted(licences.items(),
                                                      key=lambda item: (-item[1], item[0]))])
        + [""])


def _shards_lines(report: Report) -> list[str]:
    shards = report.get("shards", {})
    if not shards.get("enabled"):
        return []
    files = shards.get("shards", 0)
    return ["## Training shards", "",
            f"`shards/`: {shards.get('examples', 0):,} {str(shards.get('objective')).upper()} "
            f"examples, {shards.get('tokens', 0):,} tokens, {files:,} shard "
            f"{'file' if files == 1 else 'files'} (max_seq_len {shards.get('max_seq_len')}, "
            f"vocabulary {shards.get('vocab_size')}); `winnow shards stats RUN/shards` "
            "describes them, `winnow pretrain --shards RUN/shards` trains on them.", ""] + (
        _without_example_lines(shards.get("without_example", {})))


def _without_example_lines(without_example: dict[str, int]) -> list[str]:
    if not without_example:
        return []
    return ["Kept documents that gave no training example (they are in kept/): "
            + ", ".join(f"`{reason}` {count:,}" for reason, count in without_example.items())
            + ".", ""]


def _config_lines(report: Report) -> list[str]:
    if "config" not in report:
        return []
    changed = non_default_config(report["config"])
    lines = ["## Configuration", "", "Settings that differ from the defaults "
             "(`report.json` holds them all):", ""]
    if not changed:
        return lines + ["All defaults.", ""]
    return lines + _markdown_table(["key", "value", "default"],
                                   [(f"`{key}`", f"`{config_value(value)}`",
                                     f"`{config_value(default)}`")
                                    for key, (value, default) in changed.items()]) + [""]

