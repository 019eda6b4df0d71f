"""``winnow report DIR --html FILE``: a run's report as one self-contained HTML page.

Every plot is inline SVG drawn here by ``bar_chart_svg``; the page has no script and fetches no
stylesheet, font or image, so it opens offline and can be attached to a ticket as it is. There
is one function per section, in the order the page shows them. All text is escaped with
``html.escape``, and document text also goes through ``pipeline.report_text.display_text`` (PII
redacted again, whatever the run's pii settings were).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from winnow.pipeline.report_text import (
    display_examples,
    flatten_config,
    length_bin_label,
    non_default_config,
    removal_rows,
)
from winnow.pipeline.run_folder import RunView
from winnow.pipeline.writers import write_atomically

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")
TOP_LANGUAGES = 12

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0 auto;
max-width:1080px;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px}td,th{padding:2px 10px;border-bottom:1px solid
#eee;text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:
tabular-nums}
.note{color:#666}.warn{background:#fff4d6;border:1px solid #e8c35a;padding:8px 12px;margin:8px 0}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;
padding:8px 14px;min-width:150px}.card b{display:block;font-size:22px}
pre{white-space:pre-wrap;background:#f6f6f6;padding:6px 8px;margin:4px 0 10px;font-size:12px}
details{margin:4px 0}summary{cursor:pointer}nav a{margin-right:10px}
tr.changed td{font-weight:600}svg text{font:11px system-ui,sans-serif;fill:#333}
"""

SECTIONS = (
    ("summary", "Summary"), ("funnel", "Funnel by stage"),
    ("removals", "Removals by stage and reason"), ("quality", "Quality scores"),
    ("languages", "Language mix"), ("lengths", "Document lengths"),
    ("near-dedup", "Near-duplicate clusters"), ("pii", "PII"), ("shards", "Shards"),
    ("examples", "Examples of removed documents"), ("config", "Configuration and timings"),
)


def render_html(view: RunView) -> str:
    """The whole page."""
    report = view.report
    body = [_header(view), _summary_section(report), _funnel_section(report),
            _removals_section(report), _quality_section(report), _languages_section(report),
            _lengths_section(report), _near_dedup_section(report), _pii_section(report),
            _shards_section(report), _examples_section(report), _config_section(report)]
    title = html.escape(f"winnow report: {view.run_dir}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(view: RunView, path: str) -> None:
    """Write the page to ``path`` (local or any Beam filesystem), atomically."""
    write_atomically(path, render_html(view).encode("utf-8"))


# --- plots ---------------------------------------------------------------------------------------

def bar_chart_svg(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
                  horizontal: bool = False, width: int = 760, height: int = 240,
                  marker: tuple[float, str] | None = None, caption: str = "") -> str:
    """Bars of one or more series over the same labels, as inline SVG.

    ``series``: ``[(name, values)]``, a legend is drawn when there are several. Vertical (the
    default) draws a histogram with the labels under the bars; ``horizontal`` draws one row per
    label, for long names, with the value at the end of each bar (``height`` then follows the
    rows). ``marker``: ``(position, text)``, a dashed line at ``position`` in bar units (0 is the
    left edge of the first bar, ``len(labels)`` the right edge of the last), e.g. a threshold.
    """
    values = [value for _, vals in series for value in vals]
    top = _nice_ceiling(max(values, default=0))
    if top < 2 and all(float(value).is_integer() for value in values):
        top = 2  # counts: axis ticks 0, 1, 2 rather than 0, 0.5, 1
    legend = _legend(series) if len(series) > 1 else ""
    head = 22 if legend or marker else 8
    if horizontal:
        body, height = _horizontal_bars(labels, series, width, head, top)
    else:
        body = _vertical_bars(labels, series, width, height, head, top, marker)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{html.escape(caption)}">'
            f"{legend}{body}</svg>")


def _vertical_bars(labels, series, width, height, head, top, marker) -> str:
    count, per_group = max(len(labels), 1), len(series)
    longest = max((len(label) for label in labels), default=1)
    left, right = 56, 16
    group = (width - left - right) / count
    rotate = longest * 6.5 > group
    bottom = min(100, 14 + int(longest * 5.2)) if rotate else 22
    plot_h = height - head - bottom
    base = head + plot_h
    bar = min(group * 0.8 / per_group, 56)
    parts = _y_axis(left, width - right, head, base, top)
    for index, label in enumerate(labels):
        x0 = left + index * group + (group - bar * per_group) / 2
        for number, (name, vals) in enumerate(series):
            value = vals[index]
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x0 + number * bar:.1f}" y="{base - h:.1f}" '
                f'width="{max(bar - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[number % len(PALETTE)]}"><title>'
                f"{html.escape(f'{label}: {_number(value)} ({name})')}</title></rect>")
        cx, ty = left + (index + 0.5) * group, base + 13
        text = html.escape(label)
        parts.append(f'<text x="{cx:.1f}" y="{ty}" text-anchor="end" '
                     f'transform="rotate(-40 {cx:.1f} {ty})">{text}</text>' if rotate else
                     f'<text x="{cx:.1f}" y="{ty}" text-anchor="middle">{text}</text>')
    if marker is not None:
        x = left + marker[0] * group
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{head - 4}" y2="{base}" '
                     f'stroke="#d62728" stroke-width="2" stroke-dasharray="5,3"/>'
                     f'<text x="{x + 4:.1f}" y="{head + 6}" style="fill:#d62728">'
                     f"{html.escape(marker[1])}</text>")
    return "".join(parts)


def _horizontal_bars(labels, series, width, head, top) -> tuple[str, int]:
    per_group = len(series)
    longest = max((len(label) for label in labels), default=1)
    left = min(320, 14 + int(longest * 6.6))
    row = 15 * per_group + 7
    plot_w = width - left - 80
    parts = []
    for index, label in enumerate(labels):
        y0 = head + index * row
        parts.append(f'<text x="{left - 6}" y="{y0 + row / 2 + 4:.1f}" text-anchor="end">'
                     f"{html.escape(label)}</text>")
        for number, (name, vals) in enumerate(series):
            value, y = vals[index], y0 + 3 + number * 15
            w = plot_w * value / top
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="13" '
                f'fill="{PALETTE[number % len(PALETTE)]}"><title>'
                f"{html.escape(f'{label}: {_number(value)} ({name})')}</title></rect>"
                f'<text x="{left + w + 4:.1f}" y="{y + 11}">{_number(value)}</text>')
    height = head + len(labels) * row + 6
    parts.append(f'<line x1="{left}" x2="{left}" y1="{head}" y2="{height - 6}" '
                 f'stroke="#999"/>')
    return "".join(parts), height


def _y_axis(left: float, right: float, head: float, base: float, top: float) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = base - (base - head) * fraction
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{"#999" if fraction == 0 else "#e4e4e4"}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_number(top * fraction)}</text>")
    return parts


def _legend(series) -> str:
    parts, x = [], 56
    for number, (name, _) in enumerate(series):
        parts.append(f'<rect x="{x}" y="4" width="11" height="11" '
                     f'fill="{PALETTE[number % len(PALETTE)]}"/>'
                     f'<text x="{x + 15}" y="14">{html.escape(name)}</text>')
        x += 30 + int(len(name) * 6.5)
    return "".join(parts)


def _nice_ceiling(value: float) -> float:
    """The axis top: 1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


# --- building blocks -----------------------------------------------------------------------------

def _section(anchor: str, *content: str) -> str:
    title = dict(SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n' + "\n".join(
        content) + "</section>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
           row_classes: Sequence[str] | None = None) -> str:
    """A table; numbers are formatted and right-aligned, everything is escaped."""
    def cell(tag: str, value: Any) -> str:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = _number(value) if numeric else "" if value is None else str(value)
        return f'<{tag}{" class=n" if numeric else ""}>{html.escape(text)}</{tag}>'

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes else ""
        body.append(f'<tr{f" class={css}" if css else ""}>'
                    + "".join(cell("td", value) for value in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _absent(report: dict[str, Any]) -> str:
    return _note("not available: report.json is missing" if report.get("rebuilt_from_folders")
                 else "not in this report (written by an older winnow)")


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


# --- sections ------------------------------------------------------------------------------------

def _header(view: RunView) -> str:
    report = view.report
    facts = [f"run folder: {view.run_dir}"]
    if report.get("inputs"):
        facts.append(f"inputs: {', '.join(report['inputs'])}")
    if "wall_seconds" in report:
        facts.append(f"{report.get('runner', '')} {report['wall_seconds']:,.1f} s wall".strip())
    warnings = "".join(f'<div class="warn">{html.escape(w)}</div>' for w in view.warnings)
    nav = " ".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title in SECTIONS)
    return (f"<h1>winnow run report</h1><p>{'<br>'.join(html.escape(f) for f in facts)}</p>"
            f"{warnings}<nav>{nav}</nav>")


def _summary_section(report: dict[str, Any]) -> str:
    documents = report["documents"]
    total = documents["input"]
    first = "counted in the files present" if report.get("rebuilt_from_folders") else (
        "records read")
    cards = [("documents in", total, first),
             ("kept", documents["kept"], _share(documents["kept"], total)),
             ("removed", sum(documents["removed"].values()), ""),
             ("quarantined", sum(documents["quarantined"].values()), "")]
    html_cards = "".join(
        f'<div class="card">{html.escape(name)}<b>{value:,}</b>'
        f"{html.escape(text or _share(value, total))}</div>" for name, value, text in cards)
    return _section("summary", f'<div class="cards">{html_cards}</div>')


def _funnel_section(report: dict[str, Any]) -> str:
    stages = report.get("stages", [])
    if not stages:
        return _section("funnel", _note("not available: report.json is missing, so only the "
                                        "totals above (from the folders present) are known"))
    enabled = [s for s in stages if s["enabled"]]
    chart = bar_chart_svg([s["name"] for s in enabled],
                          [("documents in", [s["documents_in"] for s in enabled]),
                           ("documents out", [s["documents_out"] for s in enabled])],
                          horizontal=True, caption="documents in and out of each stage")
    rows = [[s["name"], "yes" if s["enabled"] else "disabled", s["documents_in"],
             s["documents_out"], sum(s.get("removed", {}).values()),
             round(s["bytes_in"] / 1e6, 2), round(s["bytes_out"] / 1e6, 2)] for s in stages]
    return _section("funnel", chart, _table(
        ["stage", "enabled", "docs in", "docs out", "removed", "MB in", "MB out"], rows))


def _removals_section(report: dict[str, Any]) -> str:
    rows = removal_rows(report)
    total = report["documents"]["input"]
    content = []
    if rows:
        content.append(bar_chart_svg([f"{stage} / {reason}" for stage, reason, _ in rows],
                                     [("documents", [count for *_, count in rows])],
                                     horizontal=True, caption="removals by stage and reason"))
        content.append(_table(["stage", "reason", "documents", "share of input"],
                              [[s, r, c, _share(c, total)] for s, r, c in rows]))
    else:
        content.append(_note("no document was removed"))
    quarantined = report["documents"]["quarantined"]
    if quarantined:
        content += ["<h3>Quarantined (unreadable records)</h3>",
                    _table(["reason", "records"], list(quarantined.items()))]
    return _section("removals", *content)


def _quality_section(report: dict[str, Any]) -> str:
    section = report.get("quality")
    if not section:
        return _section("quality", _absent(report))
    if not section.get("enabled"):
        return _section("quality", _note(section.get("note", "quality stage off")))
    edges, counts = section["histogram"]["bin_edges"], section["histogram"]["counts"]
    labels = [f"{low:.2f}" for low in edges[:-1]]
    marker = None
    if section["mode"] == "threshold" and section.get("threshold") is not None:
        marker = (section["threshold"] * len(counts), f"threshold {section['threshold']}")
    chart = bar_chart_svg(labels, [("documents", counts)], marker=marker,
                          caption="quality score histogram")
    rule = (f"keep when P(hq) >= {section['threshold']}" if section["mode"] == "threshold"
            else f"Pareto sampling, alpha {section['pareto_alpha']}")
    return _section("quality", chart, _note(
        f"documents scored by the quality stage, by P(hq) in bins of "
        f"{1 / max(len(counts), 1):.2f} (lower edge shown); {rule}; model {section['model']}"))


def _languages_section(report: dict[str, Any]) -> str:
    section = report.get("languages")
    if not section:
        return _section("languages", _absent(report))
    at_stage, kept = section.get("at_stage", {}), section.get("kept", {})
    languages = list(dict.fromkeys(list(at_stage) + list(kept)))
    if not languages:
        return _section("languages", _note("no documents reached the language stage"))
    shown = languages[:TOP_LANGUAGES]
    series = [("kept at the end", [kept.get(lang, 0) for lang in shown])]
    if at_stage:
        series = [("kept by the language stage", [at_stage.get(lang, {}).get("kept", 0)
                                                  for lang in shown]),
                  ("removed by the language stage", [at_stage.get(lang, {}).get("removed", 0)
                                                     for lang in shown])] + series
    rows = [[lang, at_stage.get(lang, {}).get("kept", 0), at_stage.get(lang, {}).get(
        "removed", 0), kept.get(lang, 0)] for lang in languages]
    note = [] if section.get("enabled", True) else [_note(
        "the language stage was disabled: languages were not identified")]
    more = [_note(f"the chart shows the {TOP_LANGUAGES} most frequent languages of "
                  f"{len(languages)}")] if len(languages) > TOP_LANGUAGES else []
    return _section("languages", *note, bar_chart_svg(
        shown, series, horizontal=True, caption="language mix"), *more, _table(
        ["language", "kept by stage", "removed by stage", "kept at the end"], rows))


def _lengths_section(report: dict[str, Any]) -> str:
    section = report.get("lengths")
    if not section:
        return _section("lengths", _absent(report))
    edges = section["bin_edges"]
    if not edges:
        return _section("lengths", _note("no documents"))
    labels = [length_bin_label(low, high) for low, high in zip(edges, edges[1:], strict=False)]
    chart = bar_chart_svg(labels, [("read (before)", section["before"]),
                                   ("kept (after)", section["after"])],
                          caption="document length distribution before and after")
    return _section("lengths", chart, _note(
        f"documents by length in {section['unit']}, log2 bins, as read (before any stage) and "
        f"as written to kept/ (after every stage)"))


def _near_dedup_section(report: dict[str, Any]) -> str:
    section = report.get("near_dedup")
    if not section or not section.get("enabled"):
        return _section("near-dedup", _note("near dedup was disabled") if section else
                        _absent(report))
    summary = _note(
        f"{section['clusters']:,} clusters holding {section['documents_in_clusters']:,} "
        f"documents; {section['fraction_removed']:.2%} of the stage's input removed; Jaccard "
        f"threshold {section['threshold']}, LSH {section['bands']} bands x {section['rows']} "
        f"rows")
    histogram = section["cluster_size_histogram"]
    content = [summary]
    if histogram:
        content.append(bar_chart_svg(list(histogram), [("clusters", list(histogram.values()))],
                                     height=200, caption="near-duplicate cluster sizes"))
        content.append(_note("clusters by size (documents per cluster, including the one kept)"))
    if section["largest_clusters"]:
        content += ["<h3>Largest clusters</h3>", _table(
            ["cluster", "size", "kept", "members (first 5)"],
            [[c["cluster_id"], c["size"], c["survivor_id"], ", ".join(c["member_ids"][:5])]
             for c in section["largest_clusters"]])]
    return _section("near-dedup", *content)


def _pii_section(report: dict[str, Any]) -> str:
    if "pii" not in report:
        return _section("pii", _note("not available: report.json is missing"))
    pii = report["pii"]
    if not pii:
        return _section("pii", _note("no PII found in kept documents"))
    return _section("pii", bar_chart_svg(list(pii), [("spans", list(pii.values()))],
                                         horizontal=True, caption="PII spans by type"),
                    _note("spans replaced by placeholders (<EMAIL>, <PHONE>, ...) in the kept "
                          "documents; removed documents are redacted too"))


def _shards_section(report: dict[str, Any]) -> str:
    section = report.get("shards")
    if not section or not section.get("enabled"):
        return _section("shards", _note("shards were disabled" if section else
                                        "no shards/manifest.json"))
    labels = {str(k): int(v) for k, v in sorted(section.get("label_counts", {}).items())}
    total = sum(labels.values())
    facts = [["objective", section["objective"].upper()]]
    facts += [[name, f"{value:,}" if isinstance(value, int) else value] for name, value in (
        ("examples", section["examples"]), ("tokens", section["tokens"]),
        ("shard files", section["shards"]), ("max_seq_len", section["max_seq_len"]),
        ("vocabulary", section["vocab_size"]),
        ("tokenizer sha256", section.get("tokenizer_sha256")))]
    facts += [[f"label {label}", f"{count:,} ({_share(count, total)})"]
              for label, count in labels.items()]
    content = [_table(["", ""], facts)]
    if labels:
        names = {"0": "0 (in order / next)", "1": "1 (swapped / random)"}
        content += ["<h3>Label balance</h3>", bar_chart_svg(
            [names.get(label, label) for label in labels], [("examples", list(labels.values()))],
            horizontal=True, caption="label balance")]
    histogram = section.get("length_histogram", {})
    if histogram.get("counts"):
        width = histogram["bin_width"]
        content += ["<h3>Sequence length (tokens of A + B)</h3>", bar_chart_svg(
            [f"{int(low)}-{int(low) + width - 1}" for low in histogram["counts"]],
            [("examples", list(histogram["counts"].values()))], height=220,
            caption="sequence length histogram")]
    if section.get("pairs"):
        content += ["<h3>Pairing</h3>", _table(["count", "value"],
                                               list(section["pairs"].items()))]
    if section.get("note"):
        content.append(_note(section["note"]))
    return _section("shards", *content)


def _examples_section(report: dict[str, Any]) -> str:
    examples = display_examples(report)
    if not examples:
        return _section("examples", _note(
            "no examples in this report; winnow report DIR --reason NAME reads removed/"))
    removed = report["documents"]["removed"]
    blocks = []
    for reason, items in examples.items():
        shown = "".join(
            f"<div><b>{html.escape(item['id'])}</b> <span class=note>({html.escape(item['stage'])})"
            f"{_example_details(item['details'])}</span><pre>{html.escape(item['text'])}</pre>"
            "</div>" for item in items)
        blocks.append(f"<details><summary>{html.escape(reason)} ({removed.get(reason, 0):,} "
                      f"removed, {len(items)} shown)</summary>{shown}</details>")
    return _section("examples", _note("the documents with the smallest ids per reason, "
                                      "first 500 characters, PII redacted"), *blocks)


def _example_details(details: str) -> str:
    """A removal's details (the measured value and bound, the survivor, ...), when it has any."""
    return f" details: <code>{html.escape(details)}</code>" if details else ""


def _config_section(report: dict[str, Any]) -> str:
    content = []
    stages = [s for s in report.get("stages", []) if s["enabled"]]
    if stages:
        content += ["<h3>Timings</h3>", bar_chart_svg(
            [s["name"] for s in stages], [("cpu seconds", [s["seconds"] for s in stages])],
            horizontal=True, caption="worker CPU seconds by stage")]
        wall = report.get("wall_seconds")
        content.append(_note(
            "worker CPU seconds summed over workers"
            + (f"; the run took {wall:,.1f} s of wall time on {report.get('runner', '?')}"
               if wall is not None else "")))
    if "config" not in report:
        content.append(_note("configuration not available: report.json is missing"))
        return _section("config", *content)
    changed = non_default_config(report["config"])
    content.append("<h3>Configuration</h3>")
    if changed:
        content.append(_table(["setting that differs from the default", "value", "default"],
                              [[key, _config_text(value), _config_text(default)]
                               for key, (value, default) in changed.items()]))
    else:
        content.append(_note("every setting has its default value"))
    rows = [[key, _config_text(value)] for key, value in flatten_config(report["config"]).items()]
    content.append(f"<details><summary>all {len(rows)} settings</summary>"
                   f"{_table(['key', 'value'], rows)}</details>")
    return _section("config", *content)


def _config_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) or "[]"
    return str(value).lower() if isinstance(value, bool) else str(value)
