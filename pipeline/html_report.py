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
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from winnow.pipeline.report_text import (
    comparison_rows,
    config_differences,
    display_examples,
    display_kept_examples,
    display_thresholds,
    flatten_config,
    length_bin_label,
    non_default_config,
    removal_rows,
)
from winnow.pipeline.run_folder import RunView
from winnow.pipeline.writers import write_atomically

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")
MARKER = "#d62728"
"""Threshold lines."""
GROWTH, SHRINK = "#2ca02c", "#d62728"
"""Delta bars of a comparison: more in B, fewer in B."""
TOP_LANGUAGES = 12
COMPARISON_UNITS = {"documents out by stage": "documents", "removed by stage": "documents",
                    "removed by reason": "documents", "documents": "records"}
"""The unit of each comparison table's deltas."""
DOCUMENT_TOTALS = ("input", "kept", "removed", "quarantined")
"""The rows of the ``documents`` comparison that are plotted: the others (tokens, seconds)
have units of their own, and are in its table."""

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
.grid{display:flex;flex-wrap:wrap;gap:4px 16px}.measure{width:520px}.measure h3{margin:10px 0 0}
"""

SECTIONS = (
    ("summary", "Summary"), ("funnel", "Funnel by stage"),
    ("removals", "Removals by stage and reason"),
    ("thresholds", "Where the heuristic thresholds cut"), ("sources", "By source"),
    ("quality", "Quality scores"), ("languages", "Language mix"),
    ("lengths", "Document lengths"), ("near-dedup", "Near-duplicate clusters"), ("pii", "PII"),
    ("shards", "Shards"), ("examples", "Examples of removed documents"),
    ("kept", "Examples of kept documents"), ("config", "Configuration and timings"),
)
LOG_SCALE_RATIO = 20
"""A removals chart turns to a log scale when its largest reason is this many times its
smallest: on a linear one the small reasons would be invisible."""


def render_html(view: RunView) -> str:
    """The whole page."""
    report = view.report
    body = [_header(view), _summary_section(report), _funnel_section(report),
            _removals_section(report), _thresholds_section(report), _sources_section(report),
            _quality_section(report), _languages_section(report),
            _lengths_section(report), _near_dedup_section(report), _pii_section(report),
            _shards_section(report), _examples_section(report), _kept_section(report),
            _config_section(report)]
    return _page(f"winnow report: {view.run_dir}", body)


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(view: RunView, path: str, other: RunView | None = None) -> None:
    """Write the page to ``path`` (local or any Beam filesystem), atomically; with ``other``,
    the comparison of ``view`` (A) with ``other`` (B)."""
    page = render_html(view) if other is None else render_comparison_html(view, other)
    write_atomically(path, page.encode("utf-8"))


# --- plots ---------------------------------------------------------------------------------------

def bar_chart_svg(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
                  horizontal: bool = False, width: int = 760, height: int = 240,
                  marker: tuple[float, str] | None = None, caption: str = "",
                  markers: Sequence[tuple[float, str]] = (), value_unit: str = "",
                  label_unit: str = "", log: bool = False, label_every: int = 1) -> str:
    """Bars of one or more series over the same labels, as inline SVG.

    ``series``: ``[(name, values)]``, a legend is drawn when there are several. Vertical (the
    default) draws a histogram with the labels under the bars; ``horizontal`` draws one row per
    label, for long names, with the value at the end of each bar (``height`` then follows the
    rows). ``marker`` (or several, ``markers``): ``(position, text)``, a dashed line at
    ``position`` in bar units (0 is the left edge of the first bar, ``len(labels)`` the right
    edge of the last), e.g. a threshold. ``value_unit`` and ``label_unit`` title the value and
    the label axes. ``log`` (horizontal only): bar lengths by log10(1 + value), for counts of
    which one dwarfs the rest. ``label_every``: a label under every n-th bar only.
    """
    values = [value for _, vals in series for value in vals]
    top = _nice_ceiling(max(values, default=0))
    if top < 2 and all(float(value).is_integer() for value in values):
        top = 2  # counts: axis ticks 0, 1, 2 rather than 0, 0.5, 1
    markers = [marker, *markers] if marker is not None else list(markers)
    legend = _legend(series) if len(series) > 1 else ""
    head = 22 + 12 * max(len(markers) - 1, 0) if legend or markers else 8
    if horizontal:
        body, height = _horizontal_bars(labels, series, width, head, top, log, value_unit)
    else:
        body = _vertical_bars(labels, series, width, height, head, top, markers, value_unit,
                              label_unit, label_every)
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{html.escape(caption)}">'
            f"{legend}{body}</svg>")


def _vertical_bars(labels, series, width, height, head, top, markers, value_unit, label_unit,
                   label_every) -> str:
    count, per_group = max(len(labels), 1), len(series)
    shown = [label for index, label in enumerate(labels) if index % label_every == 0]
    longest = max((len(label) for label in shown), default=1)
    left, right = 56 + (14 if value_unit else 0), 16
    group = (width - left - right) / count
    rotate = longest * 6.5 > group * label_every
    bottom = (min(100, 14 + int(longest * 5.2)) if rotate else 22) + (14 if label_unit else 0)
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
        if index % label_every:
            continue
        cx, ty = left + (index + 0.5) * group, base + 13
        text = html.escape(label)
        parts.append(f'<text x="{cx:.1f}" y="{ty}" text-anchor="end" '
                     f'transform="rotate(-40 {cx:.1f} {ty})">{text}</text>' if rotate else
                     f'<text x="{cx:.1f}" y="{ty}" text-anchor="middle">{text}</text>')
    for number, (position, text) in enumerate(markers):
        x, y = left + position * group, head + 6 - 12 * number
        room = width - right - x > len(text) * 6.5  # else the text goes left of the line
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 10}" y2="{base}" '
                     f'stroke="{MARKER}" stroke-width="2" stroke-dasharray="5,3"/>'
                     f'<text x="{x + 4 if room else x - 4:.1f}" y="{y}" '
                     f'text-anchor="{"start" if room else "end"}" style="fill:{MARKER}">'
                     f"{html.escape(text)}</text>")
    if value_unit:
        middle = (head + base) / 2
        parts.append(f'<text x="12" y="{middle:.1f}" text-anchor="middle" '
                     f'transform="rotate(-90 12 {middle:.1f})">{html.escape(value_unit)}</text>')
    if label_unit:
        parts.append(f'<text x="{(left + width - right) / 2:.1f}" y="{height - 4}" '
                     f'text-anchor="middle">{html.escape(label_unit)}</text>')
    return "".join(parts)


def _horizontal_bars(labels, series, width, head, top, log, value_unit) -> tuple[str, int]:
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
            w = plot_w * (math.log10(1 + value) / math.log10(1 + top) if log else value / top)
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="13" '
                f'fill="{PALETTE[number % len(PALETTE)]}"><title>'
                f"{html.escape(f'{label}: {_number(value)} ({name})')}</title></rect>"
                f'<text x="{left + w + 4:.1f}" y="{y + 11}">{_number(value)}</text>')
    height = head + len(labels) * row + 6
    parts.append(f'<line x1="{left}" x2="{left}" y1="{head}" y2="{height - 6}" '
                 f'stroke="#999"/>')
    if value_unit or log:
        unit = f"{value_unit}{', log scale' if log else ''}".lstrip(", ")
        parts.append(f'<text x="{left}" y="{height + 8}">{html.escape(unit)} &#8594;</text>')
        height += 16
    return "".join(parts), height


def delta_chart_svg(labels: Sequence[str], deltas: Sequence[float], *, value_unit: str,
                    width: int = 760, caption: str = "") -> str:
    """Horizontal bars of signed differences (B - A) from a centre line: growth to the right
    in green, shrinkage to the left in red, the signed value at the end of each bar."""
    longest = max((len(label) for label in labels), default=1)
    left = min(320, 14 + int(longest * 6.6))
    centre, half = left + (width - left) / 2, (width - left) / 2 - 60
    top = _nice_ceiling(max((abs(delta) for delta in deltas), default=0))
    row, head = 20, 8
    parts = []
    for index, (label, delta) in enumerate(zip(labels, deltas, strict=True)):
        y = head + index * row
        w = half * abs(delta) / top
        x = centre if delta >= 0 else centre - w
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{html.escape(label)}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 1):.1f}" height="13" '
            f'fill="{GROWTH if delta >= 0 else SHRINK}"><title>'
            f"{html.escape(f'{label}: {_signed_number(delta)}')}</title></rect>"
            f'<text x="{(x + w + 4) if delta >= 0 else (x - 4):.1f}" y="{y + 13}" '
            f'text-anchor="{"start" if delta >= 0 else "end"}">{_signed_number(delta)}</text>')
    height = head + len(labels) * row + 4
    parts.append(f'<line x1="{centre:.1f}" x2="{centre:.1f}" y1="{head}" y2="{height}" '
                 f'stroke="#999"/><text x="{centre:.1f}" y="{height + 13}" '
                 f'text-anchor="middle">&#8592; fewer in B   {html.escape(value_unit)} (B - A)   '
                 f"more in B &#8594;</text>")
    height += 18
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{html.escape(caption)}">{"".join(parts)}</svg>')


def _signed_number(value: float) -> str:
    return ("+" if value > 0 else "") + _number(value)


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
        if isinstance(value, _Link):
            return f'<{tag}><a href="{value.href}">{html.escape(value.text)}</a></{tag}>'
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


class _Link(NamedTuple):
    """A table cell that links within the page (``href`` an anchor, ``#...``)."""

    href: str
    text: str


def _anchor(name: str) -> str:
    """An id made of ``name``'s letters, digits, ``-`` and ``_`` (reason names are already)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


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


def funnel_rows(report: dict[str, Any]) -> list[tuple[str, int, float]]:
    """(stage, documents out, share of the input records remaining) for the stages that ran:
    the cumulative funnel, each stage's output over the records read."""
    total = report["documents"]["input"]
    return [(s["name"], s["documents_out"], s["documents_out"] / total if total else 0.0)
            for s in report.get("stages", []) if s["enabled"]]


def _funnel_section(report: dict[str, Any]) -> str:
    stages = report.get("stages", [])
    if not stages:
        return _section("funnel", _note("not available: report.json is missing, so only the "
                                        "totals above (from the folders present) are known"))
    funnel = funnel_rows(report)
    chart = bar_chart_svg([name for name, *_ in funnel],
                          [("% of input remaining", [round(100 * share, 2)
                                                     for *_, share in funnel])],
                          horizontal=True, value_unit="% of the input records remaining",
                          caption="cumulative share of the input remaining after each stage")
    remaining = {name: share for name, _, share in funnel}
    rows = [[s["name"], "yes" if s["enabled"] else "disabled", s["documents_in"],
             s["documents_out"], sum(s.get("removed", {}).values()),
             f"{remaining[s['name']]:.1%}" if s["name"] in remaining else "-",
             round(s["bytes_in"] / 1e6, 2), round(s["bytes_out"] / 1e6, 2)] for s in stages]
    return _section("funnel", chart, _note(
        "each bar: the documents left after the stage, as a share of the records read; "
        "stages in pipeline order"), _table(
        ["stage", "enabled", "docs in", "docs out", "removed", "remaining (of input)",
         "MB in", "MB out"], rows))


def _removals_section(report: dict[str, Any]) -> str:
    rows = removal_rows(report)
    total = report["documents"]["input"]
    content = []
    if rows:
        counts = [count for *_, count in rows]
        log = max(counts) >= LOG_SCALE_RATIO * max(min(counts), 1)
        content.append(bar_chart_svg([f"{stage} / {reason}" for stage, reason, _ in rows],
                                     [("documents", counts)], horizontal=True, log=log,
                                     value_unit="documents removed",
                                     caption="removals by stage and reason"))
        if log:
            content.append(_note(f"log scale: the largest reason removed {max(counts):,} "
                                 f"documents, the smallest {min(counts):,}"))
        examples = report.get("examples", {})
        content.append(_table(["stage", "reason", "documents", "share of input", "examples"],
                              [[s, r, c, _share(c, total),
                                _Link(f"#example-{_anchor(r)}", "examples")
                                if r in examples else "winnow report DIR --reason " + r]
                               for s, r, c in rows]))
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
                          value_unit="documents", label_unit="P(hq), lower edge of the bin",
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
        shown, series, horizontal=True, value_unit="documents", caption="language mix"),
        *more, _table(
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
                          value_unit="documents", label_unit="characters (log2 bins)",
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
                                     height=200, value_unit="clusters",
                                     label_unit="documents per cluster",
                                     caption="near-duplicate cluster sizes"))
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
                                         horizontal=True, value_unit="spans redacted",
                                         caption="PII spans by type"),
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
            horizontal=True, value_unit="examples", caption="label balance")]
    histogram = section.get("length_histogram", {})
    if histogram.get("counts"):
        width = histogram["bin_width"]
        content += ["<h3>Sequence length (tokens of A + B)</h3>", bar_chart_svg(
            [f"{int(low)}-{int(low) + width - 1}" for low in histogram["counts"]],
            [("examples", list(histogram["counts"].values()))], height=220,
            value_unit="examples", label_unit="tokens of A + B",
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
        blocks.append(f'<details id="example-{_anchor(reason)}"><summary>'
                      f"{html.escape(reason)} ({removed.get(reason, 0):,} "
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
            horizontal=True, value_unit="CPU seconds", caption="worker CPU seconds by stage")]
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


# --- thresholds, sources, kept documents ---------------------------------------------------------

def _thresholds_section(report: dict[str, Any]) -> str:
    section = report.get("thresholds")
    if section is None:
        return _section("thresholds", _absent(report))
    measures = section["measures"]
    if not measures:
        return _section("thresholds", _note("no stage measured its documents (the heuristics "
                                            "stage was off)"))
    shown = display_thresholds(section)["measures"]
    blocks = [_measure_block(name, measure) for name, measure in shown.items()]
    return _section("thresholds", _note(
        "each measure over every document the heuristics stage saw, kept or removed, with its "
        "bounds as dashed lines (a min rule removes below, a max rule above); under each, the "
        "documents nearest each bound on both sides"), f'<div class="grid">{"".join(blocks)}'
        "</div>")


def _measure_block(name: str, measure: dict[str, Any]) -> str:
    edges, counts = measure["bin_edges"], measure["counts"]
    log2 = measure["scale"] == "log2"
    labels = ([length_bin_label(int(low), int(high)) for low, high in zip(edges, edges[1:],
                                                                            strict=False)]
              if log2 else [f"{low:g}" for low in edges[:-1]])
    markers = [(_bin_position(edges, bound), f"{side} {bound:g}")
               for side, bound in measure["bounds"].items()]
    chart = bar_chart_svg(labels, [("documents", counts)], width=520, height=210,
                          markers=markers, value_unit="documents",
                          label_unit=f"{measure['unit']}{' (log2 bins)' if log2 else ''}",
                          label_every=1 if len(labels) <= 20 else 5,
                          caption=f"distribution of {name}")
    near = "".join(_near_block(side, bound, measure["near"].get(side, {}))
                   for side, bound in measure["bounds"].items())
    return (f'<div class="measure" id="measure-{_anchor(name)}"><h3>{html.escape(name)}</h3>'
            f"{chart}{_note(f'{sum(counts):,} documents measured')}"
            f"<details><summary>documents just below and just above the bounds</summary>{near}"
            "</details></div>")


def _bin_position(edges: Sequence[float], value: float) -> float:
    """Where ``value`` falls on a histogram with ``edges``, in bar units (0: the left edge of
    the first bar), by linear interpolation inside its bin; clamped to the chart."""
    if value <= edges[0]:
        return 0.0
    for index, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
        if value < high:
            return index + (value - low) / (high - low)
    return float(len(edges) - 1)


def _near_block(side: str, bound: float, sides: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for position in ("below", "above"):
        for example in sides.get(position, []):
            rows.append(f"<tr><td>{position}</td><td class=n>{_number(example['value'])}</td>"
                        f"<td>{html.escape(example['outcome'])}</td>"
                        f"<td><b>{html.escape(example['id'])}</b>"
                        f"<pre>{html.escape(example['text'])}</pre></td></tr>")
    if not rows:
        return _note(f"{side} {bound:g}: no document measured")
    return (f"<p>{side} bound {bound:g}:</p><table><tr><th>side</th><th class=n>value</th>"
            f"<th>outcome</th><th>document</th></tr>{''.join(rows)}</table>")


def _sources_section(report: dict[str, Any]) -> str:
    section = report.get("sources")
    if section is None:
        return _section("sources", _absent(report))
    content = []
    for kind, title in (("input_file", "By input file"),
                        ("source_field", "By the records' source field")):
        rows = section.get(kind, {})
        content.append(f"<h3>{title}</h3>")
        if not rows:
            content.append(_note("no record has a source field" if kind == "source_field"
                                 else "no input"))
            continue
        shown = list(rows)[:TOP_LANGUAGES]
        outcomes = ("kept", "removed") + (("quarantined",) if kind == "input_file" else ())
        content.append(bar_chart_svg(
            shown, [(outcome, [_outcome_count(rows[name], outcome) for name in shown])
                    for outcome in outcomes],
            horizontal=True, value_unit="records", caption=f"{title.lower()}"))
        content.append(_table(["source", "records", "kept", "kept %", "removed", "quarantined",
                               "main reasons removed"], [source_row(name, row)
                                                         for name, row in rows.items()]))
    return _section("sources", *content)


def _outcome_count(row: dict[str, Any], outcome: str) -> int:
    return row["kept"] if outcome == "kept" else sum(row[outcome].values())


def source_row(name: str, row: dict[str, Any]) -> list[Any]:
    """A per-source table row: name, records, kept, kept share, removed, quarantined, and the
    three largest removal reasons."""
    records = sum(_outcome_count(row, outcome) for outcome in ("kept", "removed", "quarantined"))
    reasons = sorted(row["removed"].items(), key=lambda item: (-item[1], item[0]))[:3]
    return [name, records, row["kept"], _share(row["kept"], records),
            _outcome_count(row, "removed"), _outcome_count(row, "quarantined"),
            ", ".join(f"{reason} {count:,}" for reason, count in reasons)]


def _kept_section(report: dict[str, Any]) -> str:
    kept = report.get("kept_examples")
    if kept is None:
        return _section("kept", _absent(report))
    if not kept:
        return _section("kept", _note("no document was kept, or examples were off"))
    shown = "".join(f"<div><b>{html.escape(item['id'])}</b><pre>{html.escape(item['text'])}"
                    "</pre></div>" for item in display_kept_examples(report))
    return _section("kept", _note("the kept documents with the smallest ids, first 500 "
                                  "characters, PII redacted"), shown)


# --- comparison ----------------------------------------------------------------------------------

def render_comparison_html(left: RunView, right: RunView) -> str:
    """``winnow report A --compare B --html FILE``: every comparison table of the terminal
    (``comparison_rows``) with its deltas (B - A) as a plot, the two funnels side by side, and
    the config keys that differ."""
    facts = [f"A = {left.run_dir}", f"B = {right.run_dir}"]
    warnings = [f"{tag}: {warning}" for tag, view in (("A", left), ("B", right))
                for warning in view.warnings]
    body = ["<h1>winnow run comparison</h1>",
            f"<p>{'<br>'.join(html.escape(fact) for fact in facts)}</p>",
            "".join(f'<div class="warn">{html.escape(w)}</div>' for w in warnings)]
    funnel_a = {name: share for name, _, share in funnel_rows(left.report)}
    funnel_b = {name: share for name, _, share in funnel_rows(right.report)}
    names = list(dict.fromkeys(list(funnel_a) + list(funnel_b)))
    if names:
        body.append('<section id="compare-funnel"><h2>Funnels</h2>' + bar_chart_svg(
            names, [(f"{tag}: % of input remaining", [round(100 * funnel.get(name, 0.0), 2)
                                                       for name in names])
                    for tag, funnel in (("A", funnel_a), ("B", funnel_b))],
            horizontal=True, value_unit="% of the input records remaining",
            caption="funnels of A and B") + "</section>")
    for title, rows in comparison_rows(left.report, right.report).items():
        plotted = [(label, delta) for label, _, _, delta in rows if delta is not None
                   and (title != "documents" or label in DOCUMENT_TOTALS)]
        if not rows:
            continue
        chart = delta_chart_svg([label for label, _ in plotted], [d for _, d in plotted],
                                value_unit=COMPARISON_UNITS.get(title, "documents"),
                                caption=f"{title}: B - A") if plotted else ""
        body.append(f'<section id="compare-{_anchor(title)}"><h2>{html.escape(title)}</h2>'
                    + chart + _table(["", "A", "B", "B - A"], [
                        [label, a, b, "" if delta is None else _signed_number(delta)]
                        for label, a, b, delta in rows]) + "</section>")
    differences = config_differences(left.report, right.report)
    body.append('<section id="compare-config"><h2>Config differences</h2>' + (
        _table(["key", "A", "B"], differences) if differences else _note("none"))
        + "</section>")
    return _page(f"winnow comparison: {left.run_dir} vs {right.run_dir}", body)
