"""The heuristics stage end to end: every removal carries the rule's measured value and bound as
JSON in removed/, report.json's examples carry them, and ``winnow report`` shows them."""

import html
import json

import pyarrow.parquet as pq
import pytest

from tests.filters.test_heuristics import ENGLISH
from winnow.cli import main
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.html_report import render_html
from winnow.pipeline.run_folder import load_run

DOCS = [
    {"id": "a-short", "text": "Only five words are here."},
    # Prose looping three times on one line: 706 of its 1,068 word characters are in repeated
    # 5-grams (datatrove's count), though the fast scan crosses the 15% bound much earlier.
    {"id": "b-looping", "text": " ".join(ENGLISH.split() * 3)},
    {"id": "c-hashtags", "text": ENGLISH + " #tag" * 20},
    {"id": "d-prose", "text": ENGLISH},
]
EXPECTED_DETAILS = {
    "a-short": ("too_few_words", {"words": 5, "min": 50}),
    "b-looping": ("duplicated_5gram", {"duplicated_5gram_char_fraction": 0.661, "max": 0.15}),
    "c-hashtags": ("too_many_symbols", {"symbol_word_ratio": 0.2041, "max": 0.1, "symbol": "#"}),
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("heuristics-stage")
    corpus = folder / "in.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS), encoding="utf-8")
    config = config_from_dict({"language": {"enabled": False}, "near_dedup": {"enabled": False},
                               "shards": {"enabled": False}})
    run_curation([str(corpus)], str(folder / "run"), config)
    return folder / "run"


def test_removed_rows_carry_the_measured_value_and_bound(run_dir):
    removed = pq.read_table(run_dir / "removed").to_pylist()
    assert {row["id"]: (row["stage"], row["reason"], json.loads(row["details"]))
            for row in removed} == {
        doc_id: ("heuristics", reason, details)
        for doc_id, (reason, details) in EXPECTED_DETAILS.items()}
    assert [row["id"] for row in pq.read_table(run_dir / "kept").to_pylist()] == ["d-prose"]


def test_report_examples_carry_the_details(run_dir):
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert {reason: [(example["id"], example["details"]) for example in examples]
            for reason, examples in report["examples"].items()} == {
        reason: [(doc_id, details)] for doc_id, (reason, details) in EXPECTED_DETAILS.items()}


def test_terminal_and_html_reports_show_the_details(run_dir, capsys):
    assert main(["report", str(run_dir), "--reason", "too_few_words"]) == 0
    assert 'details: {"min": 50, "words": 5}' in capsys.readouterr().out
    page = render_html(load_run(str(run_dir)))
    for _, details in EXPECTED_DETAILS.values():
        shown = html.escape(json.dumps(details, sort_keys=True, ensure_ascii=False))
        assert f"details: <code>{shown}</code>" in page


def test_report_thresholds_measure_every_document_and_show_the_nearest(run_dir):
    """Each measure's histogram counts all four documents, the kept one too; the nearest
    documents on each side of a bound carry their value and what the stage did with them."""
    measures = json.loads((run_dir / "report.json").read_text())["thresholds"]["measures"]
    words = measures["words"]
    assert sum(words["counts"]) == 4 and words["bin_edges"][0] == 4  # a-short: 5 words
    assert words["counts"][0] == 1
    near = words["near"]["min"]
    assert [(e["id"], e["value"], e["outcome"]) for e in near["below"]] == [
        ("a-short", 5, "removed: too_few_words")]
    assert [e["id"] for e in near["above"]] == ["d-prose", "c-hashtags", "b-looping"]
    five = measures["duplicated_5gram_char_fraction"]
    assert sum(five["counts"]) == 4 and five["counts"][0] == 2  # a-short, d-prose: none
    above = five["near"]["max"]["above"]
    assert [(e["id"], e["value"]) for e in above] == [("b-looping", 0.661)]
    assert five["counts"][int(0.661 / 0.02)] == 1


def test_stage_gives_verdict_and_measures_from_one_pass_of_the_rules(monkeypatch):
    """``apply_and_measure`` (what ``ApplyStageFn`` calls) equals ``apply`` and the measures,
    and splits each document into words once: the rules run once, not once per hook."""
    import winnow.filters.heuristics as heuristics
    from winnow.filters.heuristics import HeuristicsConfig, heuristic_measures
    from winnow.pipeline.stages import HeuristicsStage
    from winnow.schemas.records import Document

    stage = HeuristicsStage(HeuristicsConfig())
    docs = [Document(id=doc["id"], text=doc["text"], source="in.jsonl") for doc in DOCS]
    expected = [(stage.apply(doc), heuristic_measures(doc.text, stage.config)) for doc in docs]
    passes = []
    monkeypatch.setattr(heuristics, "content_words",
                        lambda tokens, split=heuristics.content_words: passes.append(1) or
                        split(tokens))
    assert [stage.apply_and_measure(doc) for doc in docs] == expected
    assert len(passes) == len(docs)
