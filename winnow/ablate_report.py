"""The figures of a ``winnow ablate`` folder: results.json, a Markdown table (results.md, also
printed) and a self-contained HTML page (report.html: inline SVG, no script, nothing fetched).

``collect_results`` reads what the steps left in the folder, so it works on a finished, a
running and a stopped ablation alike; an arm without figures yet shows as pending.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from winnow.ablate import SAME_DATA_FILE, evaluation_file, write_json, write_text
from winnow.pipeline.html_report import CSS

RESULTS_FORMAT = 1
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac", "#1f3a5f", "#8c564b")
"""Tableau's ten and two more: an ablation with --per-stage has nine or more arms, each its own
colour (the curation report's six-colour palette would repeat)."""


# --- collecting ----------------------------------------------------------------------------------

def collect_results(ablation) -> dict[str, Any]:
    """Every arm's figures (``winnow.ablate.Ablation``), in plan order, and the baseline's."""
    plan = ablation.plan
    arms = [arm_results(ablation, arm) for arm in plan.arms]
    baseline = read_json(ablation.folder / "baseline" / "finetune" / "results.json")
    return {"format": RESULTS_FORMAT, "plan": {**plan.shared(), "arms": [
                {"name": arm.name, "description": arm.description} for arm in plan.arms]},
            "arms": arms, "baseline": task_figures(baseline)}


def arm_results(ablation, arm) -> dict[str, Any]:
    plan, folder = ablation.plan, ablation.arm_folder(arm)
    curation = read_json(folder / "curation.json")
    twin = read_json(folder / SAME_DATA_FILE)
    trained = folder.parent / twin["arm"] if twin else folder  # where its model's figures are
    evaluations = []
    for step in plan.eval_steps:
        figures = read_json(evaluation_file(trained, step))
        if figures is not None:
            evaluations.append({"step": step, "tokens": step * plan.tokens_per_step,
                                **{key: figures.get(key) for key in EVAL_KEYS}})
    final = evaluations[-1] if evaluations and evaluations[-1]["step"] == plan.steps else None
    task = task_figures(read_json(trained / "finetune" / "results.json"))
    failed = read_json(folder / "failed.json")
    done = final is not None and (plan.task is None or task is not None)
    examples = (curation or {}).get("examples", 0)
    return {
        "name": arm.name, "description": arm.description,
        "status": "failed" if failed else "done" if done else "pending",
        "error": failed["error"] if failed else None,
        "curation": curation,
        "same_training_data_as": twin["arm"] if twin else None,
        "epochs": (plan.steps * plan.batch_size / examples) if examples else None,
        "evaluations": evaluations,
        "final": final,
        "task": task,
    }


EVAL_KEYS = ("mlm_loss", "mlm_accuracy", "mlm_bits_per_byte", "pair_loss", "sop_accuracy",
             "nsp_accuracy")


def task_figures(results: dict[str, Any] | None) -> dict[str, Any] | None:
    """The test (else validation) summary of a finished ``winnow finetune`` results.json."""
    if not results or not results.get("complete"):
        return None
    split = "test" if results["summary"].get("test") else "validation"
    return {"split": split, "seeds": len(results["seeds"]), **results["summary"][split]}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# --- the table -----------------------------------------------------------------------------------

HEADERS = ("arm", "kept docs", "kept tokens", "curation s", "epochs", "held-out MLM loss",
           "bits/byte", "MLM acc", "pair acc", "task acc", "task macro-F1")


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = [arm_row(arm) for arm in results["arms"]]
    if results["baseline"] is not None:
        rows.append(["untrained (baseline)", "", "", "", "", "", "", "", "",
                     mean_std(results["baseline"]["accuracy"]),
                     mean_std(results["baseline"]["macro_f1"])])
    return rows


def arm_row(arm: dict[str, Any]) -> list[str]:
    curation, final, task = arm["curation"] or {}, arm["final"] or {}, arm["task"]
    name = arm["name"] + ("" if arm["status"] == "done" else f" ({arm['status']})")
    if arm["same_training_data_as"]:
        name += f" (= {arm['same_training_data_as']})"
    pair = final.get("sop_accuracy", final.get("nsp_accuracy"))
    return [name, count(curation.get("kept")), count(curation.get("tokens")),
            number(curation.get("seconds"), 0), number(arm["epochs"], 2),
            number(final.get("mlm_loss"), 3), number(final.get("mlm_bits_per_byte"), 3),
            number(final.get("mlm_accuracy"), 3), number(pair, 3),
            mean_std(task["accuracy"]) if task else "", mean_std(task["macro_f1"]) if task else ""]


def format_table(results: dict[str, Any]) -> str:
    """A Markdown table: one row per arm, then the untrained baseline."""
    plan = results["plan"]
    lines = [f"{budget(plan)}; held-out figures at the last step; task: test mean ± std over "
             "seeds; (= X): the same training data as arm X, whose model stands for it", "",
             "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


def budget(plan: dict[str, Any]) -> str:
    tokens = plan["steps"] * plan["batch_size"] * plan["max_seq_len"]
    return (f"{plan['preset']} preset, {plan['steps']:,} steps x {plan['batch_size']} x "
            f"{plan['max_seq_len']} = {tokens:,} tokens per arm")


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def mean_std(summary: dict[str, float]) -> str:
    return f"{summary['mean']:.4f} ± {summary['std']:.4f}"


# --- the files -----------------------------------------------------------------------------------

def write_reports(results: dict[str, Any], folder: Path) -> None:
    write_json(folder / "results.json", results)
    write_text(folder / "results.md", format_table(results) + "\n")
    write_text(folder / "report.html", render_html(results))


def render_html(results: dict[str, Any]) -> str:
    plan = results["plan"]
    title = "winnow ablate: does this curation pay off?"
    facts = (f"Inputs: {', '.join(plan['inputs'])}. Model: {budget(plan)}, the same seed. "
             f"Held-out text: {', '.join(plan['eval_text'])} (first "
             f"{plan['eval_max_examples']:,} examples).")
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(facts)}</p>",
            "<h2>Arms</h2>", html_table(results), "<h2>Held-out masked-LM loss</h2>",
            loss_chart(results)]
    if plan["task"] is not None:
        task = plan["task"]
        about = (f"Fine-tuned on {', '.join(task['train'])}, tested on "
                 f"{', '.join(task['test'])}, {task['seeds']} seeds: dots are the mean, "
                 "whiskers one standard deviation each way.")
        body += ["<h2>Task</h2>", f"<p>{html.escape(about)}</p>",
                 task_chart(results, "accuracy"), task_chart(results, "macro_f1")]
    body.append("<h2>Arm configs</h2>" + "".join(
        f"<p><b>{html.escape(arm['name'])}</b>: {html.escape(arm['description'])}</p>"
        for arm in plan["arms"]))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}td.n{{white-space:nowrap}}"
            "</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def html_table(results: dict[str, Any]) -> str:
    head = "".join(f"<th{' class=n' if i else ''}>{html.escape(h)}</th>"
                   for i, h in enumerate(HEADERS))
    rows = "".join("<tr>" + "".join(f"<td{' class=n' if i else ''}>{html.escape(cell)}</td>"
                                    for i, cell in enumerate(row)) + "</tr>"
                   for row in table_rows(results))
    return f"<table><tr>{head}</tr>{rows}</table>"


def loss_chart(results: dict[str, Any]) -> str:
    series = [(arm["name"], [(point["tokens"], point["mlm_loss"])
                             for point in arm["evaluations"]]) for arm in results["arms"]]
    return line_chart_svg(series, "tokens trained", "held-out MLM loss (nats per masked token)")


def task_chart(results: dict[str, Any], score: str) -> str:
    """``score`` (accuracy or macro_f1) of each arm and of the untrained baseline."""
    bars = [(arm["name"], arm["task"][score]) for arm in results["arms"] if arm["task"]]
    if results["baseline"] is not None:
        bars.append(("untrained", results["baseline"][score]))
    return error_bar_svg(bars, SCORE_LABELS[score])


SCORE_LABELS = {"accuracy": "task accuracy", "macro_f1": "task macro-F1"}


# --- plots ---------------------------------------------------------------------------------------

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 300, 64, 150, 12, 44


def line_chart_svg(series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
                   x_label: str, y_label: str) -> str:
    """One line with dots per series, the names in a legend at the right."""
    points = [point for _, line in series for point in line]
    if not points:
        return "<p class=note>No evaluation yet.</p>"
    x_high = max(x for x, _ in points)
    y_low, y_high = axis_range([y for _, y in points])
    place = plot_frame(0, x_high, y_low, y_high)
    parts = axes(place, 0, x_high, y_low, y_high, x_label, y_label)
    for index, (name, line) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        coords = [place(x, y) for x, y in line]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{path}"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
                  for x, y in coords]
        legend_y = TOP + 14 + 16 * index
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{legend_y - 9}" width="10" '
                     f'height="10" fill="{colour}"/><text x="{WIDTH - RIGHT + 26}" '
                     f'y="{legend_y}">{html.escape(name)}</text>')
    return svg(parts, y_label)


def error_bar_svg(bars: Sequence[tuple[str, dict[str, float]]], y_label: str) -> str:
    """A dot per name at its mean and a whisker of one standard deviation each way. Dots, not
    bars: the axis is cut to the values' range (arms often differ in the second decimal), and
    a bar from a cut axis would exaggerate the differences."""
    if not bars:
        return "<p class=note>No fine-tuning result yet.</p>"
    y_low, y_high = axis_range([s["mean"] - s["std"] for _, s in bars]
                               + [s["mean"] + s["std"] for _, s in bars])
    place = plot_frame(0, len(bars), y_low, y_high)
    parts = axes(place, None, None, y_low, y_high, "", y_label)
    for index, (name, summary) in enumerate(bars):
        colour = PALETTE[index % len(PALETTE)]
        x, y = place(index + 0.5, summary["mean"])
        _, high = place(0, summary["mean"] + summary["std"])
        _, low = place(0, summary["mean"] - summary["std"])
        _, bottom = place(0, y_low)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{high:.1f}" y2="{low:.1f}" '
                     f'stroke="{colour}" stroke-width="2"/><circle cx="{x:.1f}" cy="{y:.1f}" '
                     f'r="5" fill="{colour}"/><text x="{x + 8:.1f}" y="{y + 4:.1f}">'
                     f'{summary["mean"]:.3f}</text><text x="{x:.1f}" y="{bottom + 14:.1f}" '
                     f'text-anchor="end" transform="rotate(-35 {x:.1f} {bottom + 14:.1f})">'
                     f'{html.escape(name)}</text>')
    return svg(parts, y_label, extra_bottom=max(len(name) for name, _ in bars) * 4)


def axis_range(values: Sequence[float]) -> tuple[float, float]:
    """A y range around the values with a margin; never a zero-height one."""
    low, high = min(values), max(values)
    margin = (high - low) * 0.1 or abs(high) * 0.05 or 1.0
    return low - margin, high + margin


def plot_frame(x_low: float, x_high: float, y_low: float, y_high: float):
    """(x, y) in data units -> SVG pixels inside the plot area."""
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0

    def place(x: float, y: float) -> tuple[float, float]:
        return (LEFT + (x - x_low) / x_span * width,
                TOP + (1 - (y - y_low) / y_span) * height)
    return place


def axes(place, x_low, x_high, y_low, y_high, x_label: str, y_label: str) -> list[str]:
    """Frame, five y ticks, and x ticks when the x axis is numeric."""
    left, bottom = place(x_low or 0, y_low)
    right, top = place(x_high if x_high is not None else 0, y_high)
    right = WIDTH - RIGHT
    parts = [f'<line x1="{left}" x2="{left}" y1="{TOP}" y2="{bottom}" stroke="#999"/>',
             f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#999"/>',
             f'<text x="14" y="{(TOP + bottom) / 2:.0f}" text-anchor="middle" '
             f'transform="rotate(-90 14 {(TOP + bottom) / 2:.0f})">{html.escape(y_label)}</text>']
    for tick in range(5):
        value = y_low + (y_high - y_low) * tick / 4
        _, y = place(0, value)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{value:.3g}</text><line x1="{left}" x2="{right}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" stroke="#eee"/>')
    if x_high is not None:
        for tick in range(5):
            value = x_low + (x_high - x_low) * tick / 4
            x, _ = place(value, y_low)
            parts.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">'
                         f'{short_count(value)}</text>')
        parts.append(f'<text x="{(left + right) / 2:.0f}" y="{HEIGHT - 6}" '
                     f'text-anchor="middle">{html.escape(x_label)}</text>')
    return parts


def short_count(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}" if math.isfinite(value) else ""


def svg(parts: list[str], label: str, extra_bottom: int = 0) -> str:
    """The plot's SVG; ``extra_bottom`` pixels more below it, for slanted names."""
    height = HEIGHT + extra_bottom
    return (f'<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{html.escape(label)}">' + "".join(parts) + "</svg>")
