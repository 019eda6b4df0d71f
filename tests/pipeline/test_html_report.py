"""``winnow report DIR --html FILE``: a self-contained page with every section and its plots,
that headless Chromium renders, and that never shows planted PII."""

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pipeline.report_runs import assert_no_planted_pii
from winnow.cli import main
from winnow.pipeline.html_report import SECTIONS, bar_chart_svg, render_html
from winnow.pipeline.report_text import format_report
from winnow.pipeline.run_folder import load_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--disable-extensions", "--mute-audio"]
BAR_BLUE = (0x4C, 0x78, 0xA8)  # PALETTE[0]
BAR_ORANGE = (0xF5, 0x85, 0x18)  # PALETTE[1]


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


def test_headless_chromium_renders_the_plots(page, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian package chromium); .ci/run installs it")
    Image = pytest.importorskip("PIL.Image", reason="pillow (an apache-beam dependency)")
    url = page.resolve().as_uri()
    dom = run_chromium("--dump-dom", url, tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for anchor, title in SECTIONS:
        assert f'<section id="{anchor}"><h2>{title}</h2>' in dom.stdout
    assert dom.stdout.count("<svg") >= 8 and dom.stdout.count("<rect") > 50
    assert "Uncaught" not in dom.stderr and "ERR_" not in dom.stderr

    screenshot = tmp_path / "report.png"
    shot = run_chromium(f"--screenshot={screenshot}", "--window-size=1280,4000", url,
                        tmp_path=tmp_path)
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1280, 4000)
    colors = image.getcolors(maxcolors=1 << 20)
    counts = {color: count for count, color in colors}
    assert len(counts) > 100  # text, bars, lines: not a blank page
    # Bars drawn in both series colours, in quantity (not just a legend square).
    assert counts.get(BAR_BLUE, 0) > 20_000 and counts.get(BAR_ORANGE, 0) > 5_000


def test_an_older_report_without_the_new_sections_still_renders(pii_on, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(pii_on, old)
    report = json.loads((old / "report.json").read_text())
    for key in ("languages", "lengths"):
        del report[key]
    (old / "report.json").write_text(json.dumps(report))
    view = load_run(str(old))
    assert view.warnings == ["not in this report (made by an older winnow): languages, lengths"]
    html = render_html(view)
    assert html.count("not in this report (written by an older winnow)") == 2
    assert "language mix" not in format_report(view.report, view)
