"""``report.json`` for the terminal: ``format_report`` (every figure as tables),
``format_examples`` (``--reason``) and ``format_comparison`` (``--compare``), and what both
renderers share (``pipeline.html_report`` draws the same figures).

Nothing a document contains is displayed without going through ``display_text``, which redacts
PII again with the default ``PiiConfig``: the report holds its promise on runs made with the pii
stage off and on runs made by older versions.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable
from typing import Any

from winnow.pipeline.config import WinnowConfig, config_to_dict
from winnow.pipeline.report import EXAMPLE_CHARS
from winnow.pipeline.run_folder import RunView, pipeline_stages
from winnow.pipeline.transforms import NEAR_THRESHOLD_CHARS
from winnow.pipeline.writers import json_column
from winnow.schemas.report import Report

DETAILS_CHARS = 300
"""Characters of a removal's details (JSON) shown with an example."""


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
        from winnow.filters.pii import PiiConfig, PiiRedactor

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


def display_examples(report: Report) -> dict[str, list[dict[str, str]]]:
    """report.json's examples per reason, safe to display."""
    return {reason: [{"id": str(example.get("id", "")), "stage": str(example.get("stage", "")),
                      "text": display_text(example.get("text", ""), EXAMPLE_CHARS,
                                           len(example.get("text", "")) >= EXAMPLE_CHARS),
                      "details": display_text(json_column(example["details"]), DETAILS_CHARS)
                      if example.get("details") else ""}
                     for example in examples]
            for reason, examples in report.get("examples", {}).items()}


def display_thresholds(section: dict[str, Any]) -> dict[str, Any]:
    """report.json's ``thresholds`` section with its near-threshold documents safe to display
    (their texts were cut at ``NEAR_THRESHOLD_CHARS``)."""
    def shown(example: dict[str, Any]) -> dict[str, Any]:
        text = example.get("text", "")
        return {**example, "id": display_text(str(example.get("id", "")), DETAILS_CHARS),
                "text": display_text(text, NEAR_THRESHOLD_CHARS,
                                     len(text) >= NEAR_THRESHOLD_CHARS)}

    return {"measures": {
        name: {**measure, "near": {side: {position: [shown(example) for example in examples]
                                          for position, examples in positions.items()}
                                   for side, positions in measure.get("near", {}).items()}}
        for name, measure in section.get("measures", {}).items()}}


def display_kept_examples(report: Report) -> list[dict[str, str]]:
    """report.json's kept documents, safe to display."""
    return [{"id": display_text(str(example.get("id", "")), DETAILS_CHARS),
             "text": display_text(example.get("text", ""), EXAMPLE_CHARS,
                                  len(example.get("text", "")) >= EXAMPLE_CHARS)}
            for example in report.get("kept_examples", [])]


def display_report(report: Report) -> Report:
    """The whole report with every text in it safe to display (``winnow report --json``)."""
    shown = {**report, "examples": display_examples(report)}
    if "thresholds" in report:
        shown["thresholds"] = display_thresholds(report["thresholds"])
    if "kept_examples" in report:
        shown["kept_examples"] = display_kept_examples(report)
    return shown


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
            if config_value(value) != config_value(defaults.get(key))}


def config_value(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True)


def removal_rows(report: Report) -> list[tuple[str, str, int]]:
    """(stage, reason, documents): stages in pipeline order, reasons largest first."""
    by_stage = report.get("removed_by_stage", {})
    order = [stage["name"] for stage in report.get("stages", [])] or pipeline_stages()
    stages = sorted(by_stage, key=lambda s: (order.index(s) if s in order else len(order), s))
    return [(stage, reason, count) for stage in stages
            for reason, count in sorted(by_stage[stage].items(),
                                        key=lambda item: (-item[1], item[0]))]


def length_bin_label(low: int, high: int) -> str:
    """A log2 length bin [low, high): ``0``, ``1``, ``64-127``, ``1K-2K``, ``1M-2M``."""
    if high <= low + 1:
        return str(low)
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


def format_report(report: Report, view: RunView | None = None) -> str:
    """The terminal report: every figure of the HTML report, as tables."""
    lines = [f"warning: {warning}" for warning in (view.warnings if view else [])]
    lines += _summary_lines(report)
    lines += _funnel_lines(report)
    lines += _removed_lines(report)
    lines += _threshold_lines(report.get("thresholds", {}))
    lines += _source_lines(report.get("sources", {}))
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


def _summary_lines(report: Report) -> list[str]:
    documents = report["documents"]
    lines = [f"inputs: {', '.join(report['inputs'])}"] if report.get("inputs") else []
    runner = f", {report['runner']}" if report.get("runner") else ""
    wall = (f"  ({report['wall_seconds']:.1f} s wall{runner})" if "wall_seconds" in report
            else "")
    counted = " (counted in the files present)" if report.get("rebuilt_from_folders") else ""
    lines.append(f"documents{counted}: {documents['input']:,} in, {documents['kept']:,} kept, "
                 f"{sum(documents['removed'].values()):,} removed, "
                 f"{sum(documents['quarantined'].values()):,} quarantined{wall}")
    if documents["kept"] == 0 and not report.get("rebuilt_from_folders"):
        why = ("no input record was read" if documents["input"] == 0 else
               "every record was removed or quarantined (reasons below)")
        lines.append(f"nothing was kept: {why}; kept/ is empty, and so is shards/")
    return lines


def _funnel_lines(report: Report) -> list[str]:
    stages = report.get("stages", [])
    if not stages:
        return ["", "funnel by stage: not available (no report.json)"]
    rows = []
    total = report["documents"]["input"]
    for stage in stages:
        if not stage["enabled"]:
            rows.append([stage["name"], "(disabled)", "", "", "", "", "", ""])
            continue
        remaining = stage["documents_out"] / total if total else 0.0
        rows.append([stage["name"], stage["documents_in"], stage["documents_out"],
                     f"{remaining:.1%}", _bar(round(1000 * remaining), 1000, 20),
                     f"{stage['bytes_in'] / 1e6:.2f}", f"{stage['bytes_out'] / 1e6:.2f}",
                     f"{stage['seconds']:.2f}"])
    return ["", "funnel by stage: (remaining = documents out / records read)"] + table(
        ["stage", "docs in", "docs out", "remaining", "", "MB in", "MB out", "cpu s"], rows,
        align="lrrrlrrr")


def _removed_lines(report: Report) -> list[str]:
    rows = [(f"{stage}/{reason}", count) for stage, reason, count in removal_rows(report)]
    lines = ["", "removed by stage and reason:"]
    lines += table(["stage/reason", "documents"], rows) if rows else ["  none"]
    quarantined = report["documents"]["quarantined"]
    if quarantined:
        lines += ["", "quarantined (unreadable records):"]
        lines += table(["reason", "records"], quarantined.items())
    return lines


def _threshold_lines(section: dict[str, Any]) -> list[str]:
    """One row per bound of a heuristic measure: the documents measured, and the values of the
    documents nearest the bound on each side (``winnow report DIR --html FILE`` draws them)."""
    measures = section.get("measures", {})
    if not measures:
        return []
    rows = []
    for name, measure in measures.items():
        for side, bound in measure["bounds"].items():
            near = measure["near"].get(side, {})
            rows.append((name, f"{side} {bound:g}", sum(measure["counts"]),
                         _values(near.get("below", [])), _values(near.get("above", []))))
    return (["", "heuristic thresholds (every document the stage measured; values of the "
                 "nearest documents on each side):"]
            + table(["measure", "bound", "measured", "just below", "just above"], rows,
                    align="llrll"))


def _values(examples: list[dict[str, Any]]) -> str:
    return ", ".join(f"{example['value']:g}" for example in examples) or "-"


SOURCE_ROWS = 10
"""Sources per table in the terminal report (the HTML report shows 50)."""


def _source_lines(section: dict[str, Any]) -> list[str]:
    lines = []
    for kind, title in (("input_file", "by input file"), ("source_field", "by source field")):
        rows = section.get(kind, {})
        if not rows:
            continue
        shown = list(rows.items())[:SOURCE_ROWS]
        lines += ["", f"{title}:"] + table(
            ["source", "records", "kept", "removed", "quarantined", "top reason"],
            [_source_cells(name, row) for name, row in shown], align="lrrrrl")
        if len(rows) > SOURCE_ROWS:
            lines.append(f"  ... and {len(rows) - SOURCE_ROWS} more (winnow report --json)")
    return lines


def _source_cells(name: str, row: dict[str, Any]) -> tuple:
    removed, quarantined = sum(row["removed"].values()), sum(row["quarantined"].values())
    top = min(row["removed"].items(), key=lambda item: (-item[1], item[0]), default=None)
    return (name, row["kept"] + removed + quarantined, row["kept"], removed, quarantined,
            f"{top[0]} ({top[1]:,})" if top else "")


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


def _pii_lines(report: Report) -> list[str]:
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
    without = section.get("without_example", {})
    if without:
        lines.append(f"  kept documents without a training example (still in kept/): "
                     f"{sum(without.values()):,} ("
                     + ", ".join(f"{reason} {count:,}" for reason, count in without.items())
                     + ")")
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


def _config_lines(report: Report) -> list[str]:
    if "config" not in report:
        return []
    changed = non_default_config(report["config"])
    lines = ["", "configuration (settings that differ from the defaults; --json shows all):"]
    lines += table(["key", "value", "default"],
                   [(key, config_value(value), config_value(default))
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


def comparison_rows(left: Report, right: Report) -> dict[str, list[tuple]]:
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


def config_differences(left: Report, right: Report) -> list[tuple[str, str, str]]:
    """Flattened config keys whose values differ: (key, left value, right value)."""
    flat_l, flat_r = flatten_config(left.get("config", {})), flatten_config(
        right.get("config", {}))
    return [(key, config_value(flat_l.get(key)), config_value(flat_r.get(key)))
            for key in sorted(set(flat_l) | set(flat_r))
            if config_value(flat_l.get(key)) != config_value(flat_r.get(key))]


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


def format_shard_stats(stats: dict[str, Any]) -> str:
    """``winnow shards stats`` as text: the totals, the length histogram with bars, and one
    row per shard (``stats`` is ``schemas.shard_reader.shard_stats``'s dict)."""
    labels = stats["label_counts"]
    totals = [
        ("objective", stats["objective"]),
        ("max_seq_len", stats["max_seq_len"]),
        ("vocabulary", f"{stats['vocab_size']:,} ({stats['token_dtype']})"),
        ("shards", stats["shards"]),
        ("examples", stats["examples"]),
        ("tokens", stats["tokens"]),
        ("documents", stats["documents"]),
        ("label 0 / 1", f"{labels['0']:,} / {labels['1']:,} "
                        f"(label 1: {stats['label_balance']:.1%})"),
        ("mean length", f"{stats['mean_length']:,.1f} (A {stats['mean_length_a']:,.1f}, "
                        f"B {stats['mean_length_b']:,.1f})"),
        ("full length", f"{stats['full_length_fraction']:.1%}"),
    ]
    histogram = stats["length_histogram"]
    edges, counts = histogram["edges"], histogram["counts"]
    peak = max(counts, default=0)
    length_rows = [(f"{low}-{high - 1}", count, _bar(count, peak))
                   for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True)]
    shard_rows = [(shard["name"], shard["examples"], shard["tokens"], shard["documents"],
                   shard["label_counts"]["0"], shard["label_counts"]["1"])
                  for shard in stats["per_shard"]]
    lines = ["Shards", *table(["", ""], totals, align="ll")[1:], "",
             "Lengths (tokens without [CLS]/[SEP])",
             *table(["length", "examples", ""], length_rows, align="lrl"), "",
             "Per shard",
             *table(["shard", "examples", "tokens", "documents", "label 0", "label 1"],
                    shard_rows)]
    return "\n".join(lines)
