"""End-to-end curation runs on the DirectRunner: accounting, reasons, determinism, counters."""

import gzip
import json
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from tests.pipeline.bad_inputs import GOOD_TEXT, write_bad_corpus
from tests.pipeline.field_inputs import write_inputs as write_field_inputs
from winnow.filters.normalize import NormalizeConfig, normalize_text
from winnow.pipeline import transforms
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import CurationError, build_pipeline, expand_inputs, run_curation
from winnow.pipeline.report_text import format_report
from winnow.schemas.report import check_accounting

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample"
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def rows(run_dir: Path, folder: str) -> list[dict]:
    return pq.read_table(run_dir / folder).to_pylist()


def output_bytes(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder but report.json (which holds timings)."""
    return {str(path.relative_to(run_dir)): path.read_bytes()
            for path in sorted(run_dir.glob("*/*"))}


def test_every_bad_record_is_accounted_for(tmp_path):
    expected_quarantine, expected_documents = write_bad_corpus(tmp_path / "in")
    report = run_curation([str(tmp_path / "in")], str(tmp_path / "run"), config_from_dict({}))

    documents = report["documents"]
    assert check_accounting(report) == []
    assert documents["quarantined"] == dict(expected_quarantine)
    assert documents["input"] == sum(expected_quarantine.values()) + expected_documents
    # The files agree with the report, record for record.
    kept, removed = rows(tmp_path / "run", "kept"), rows(tmp_path / "run", "removed")
    quarantined = rows(tmp_path / "run", "quarantined")
    assert len(kept) == documents["kept"]
    assert Counter(r["reason"] for r in removed) == Counter(documents["removed"])
    assert Counter(r["reason"] for r in quarantined) == expected_quarantine
    assert len(kept) + len(removed) == expected_documents
    by_id = {r["id"]: r for r in removed}
    assert by_id["empty"]["reason"] == by_id["spaces"]["reason"] == "empty"
    assert by_id["huge"]["reason"] == "too_many_words"
    assert by_id["no-spaces"]["stage"] == "heuristics"
    assert "\x00" not in next(r for r in kept + removed if r["id"] == "nul")["text"]
    assert any(r["id"].endswith("mixed.jsonl:1") for r in kept + removed)


def test_sample_run_reasons_and_report(tmp_path):
    report = run_curation([str(SAMPLE)], str(tmp_path / "run"), config_from_dict({}))
    assert check_accounting(report) == []
    assert report["removed_by_stage"]["exact_dedup"] == {"exact_duplicate": 1}
    removed = {r["id"]: r for r in rows(tmp_path / "run", "removed")}
    assert json.loads(removed["winnow/duplicate-b"]["details"]) == {
        "survivor_id": "winnow/duplicate-a"}
    kept = {r["id"]: r for r in rows(tmp_path / "run", "kept")}
    contact = kept["winnow/contact-page"]
    assert "jane.doe@example.com" not in contact["text"] and "<EMAIL>" in contact["text"]
    assert contact["language"] == "en" and contact["language_score"] > 0.65
    assert "café" in kept["winnow/mojibake"]["text"]
    assert json.loads(removed["winnow/near-duplicate"]["details"]) == {
        "cluster_id": "winnow/duplicate-a", "survivor_id": "winnow/duplicate-a"}
    assert report["near_dedup"]["clusters"] == 1
    assert [s["name"] for s in report["stages"]] == [
        "read", "normalize", "heuristics", "language", "exact_dedup", "quality", "near_dedup",
        "boilerplate", "pii", "shards"]
    funnel = {s["name"]: s for s in report["stages"]}
    assert funnel["pii"]["documents_out"] == report["documents"]["kept"]
    assert report["pii"]["EMAIL"] >= 1
    summary = format_report(report)
    assert "heuristics/too_few_words" in summary and "EMAIL" in summary


def test_removed_text_is_redacted_and_examples_listed(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps(
        {"id": "short", "text": "mail bob@example.org now"}) + "\n", encoding="utf-8")
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                          config_from_dict({}))
    (removed,) = rows(tmp_path / "run", "removed")
    assert removed["reason"] == "too_few_words"
    assert removed["text"] == "mail <EMAIL> now"
    assert report["examples"]["too_few_words"] == [
        {"id": "short", "stage": "heuristics", "text": "mail <EMAIL> now",
         "details": {"words": 3, "min": 50}}]


def test_in_memory_and_multi_processing_runs_write_identical_bytes(tmp_path):
    config = config_from_dict({"output": {"num_shards": 3},
                               "shards": {"examples_per_shard": 400, "group_documents": 10}})
    # The sample's records carry source and license; these add nested, null and conflicting
    # fields, whose type the workers unify in whatever order they meet them.
    write_field_inputs(tmp_path / "fields")
    inputs = [str(SAMPLE), str(tmp_path / "fields")]
    first = run_curation(inputs, str(tmp_path / "a"), config)
    second = run_curation(inputs, str(tmp_path / "b"), config, MULTI_PROCESSING)
    assert output_bytes(tmp_path / "a") == output_bytes(tmp_path / "b")
    files = set(output_bytes(tmp_path / "a"))
    assert len([f for f in files if f.endswith(".parquet")]) == 9
    assert {"shards/manifest.json", "shards/shard-00000.tokens.bin",
            "shards/shard-00000.documents.jsonl", "shards/shard-00000.provenance.npy",
            "tokenizer/tokenizer.model"} <= files
    kept_fields = pq.read_schema(tmp_path / "a" / "kept" / "part-00000-of-00003.parquet").field(
        "fields").type
    assert {"license", "meta", "big"} <= set(kept_fields.names)
    for report in (first, second):
        for stage in report["stages"]:
            stage.pop("seconds")
        report.pop("wall_seconds")
        report.pop("inputs")
    assert first == second


def test_exact_duplicates_and_boilerplate_lines(tmp_path):
    footer = "Copyright the example project authors, all rights reserved worldwide."
    records = [{"id": f"d{i}", "text": f"{GOOD_TEXT} Paragraph number {i}.\n{footer}"}
               for i in range(4)]
    records += [{"id": "c-copy", "text": records[2]["text"]},
                {"id": "a-copy", "text": records[2]["text"]},
                {"id": "only-footer", "text": footer}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = config_from_dict({"heuristics": {"enabled": False},
                               "near_dedup": {"enabled": False},  # d0..d3 are near-duplicates
                               "boilerplate": {"min_documents": 3}})
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"), config)
    removed = {r["id"]: r for r in rows(tmp_path / "run", "removed")}
    kept = {r["id"]: r["text"] for r in rows(tmp_path / "run", "kept")}
    # The smallest id of the three identical texts survives.
    assert {k: json.loads(removed[k]["details"]) for k in ("c-copy", "d2")} == {
        "c-copy": {"survivor_id": "a-copy"}, "d2": {"survivor_id": "a-copy"}}
    # The footer stays only in its owner, the smallest id holding it.
    assert footer in kept["a-copy"]
    assert [k for k, text in kept.items() if footer in text] == ["a-copy"]
    assert kept["d0"].endswith("Paragraph number 0.")
    assert removed["only-footer"]["reason"] == "only_boilerplate"
    assert report["removed_by_stage"]["exact_dedup"] == {"exact_duplicate": 2}
    assert report["removed_by_stage"]["boilerplate"] == {"only_boilerplate": 1}
    boilerplate = next(s for s in report["stages"] if s["name"] == "boilerplate")
    assert (boilerplate["documents_in"], boilerplate["documents_out"]) == (5, 4)


def sample_document(doc_id: str) -> str:
    with gzip.open(SAMPLE / "docs.jsonl.gz", "rt", encoding="utf-8") as lines:
        return next(r["text"] for r in map(json.loads, lines) if r["id"] == doc_id)


def syndicated_copies(text: str, copies: int) -> list[str]:
    """``copies`` versions of ``text``, each with a word inserted into three of its long lines,
    a different three in each copy: every long line is shared by all copies but one."""
    lines = text.split("\n")
    long_lines = [i for i, line in enumerate(lines) if len(line.strip()) >= 30]
    versions = []
    for copy in range(copies):
        edited = lines[:]
        for i in long_lines[copy::4][:3]:
            words = edited[i].split(" ")
            edited[i] = " ".join(words[:3] + ["indeed"] + words[3:])
        versions.append("\n".join(edited))
    return versions


def test_syndicated_copies_are_removed_whole_before_boilerplate_lines(tmp_path):
    """Four lightly edited copies of one article share every long line but their own edits.
    Cutting repeated lines before near dedup (the old order) left three fragments that were
    near-duplicates of nothing; deciding documents first keeps one whole copy."""
    article = sample_document("python-doc/library/fractions.rst.txt")
    copies = syndicated_copies(article, 4)
    footer = "This article was syndicated by the Example News Network; all rights reserved."
    others = ["python-doc/library/gzip.rst.txt", "python-doc/howto/sorting.rst.txt",
              "python-doc/library/timeit.rst.txt"]
    records = [{"id": f"copy-{i}", "text": text} for i, text in enumerate(copies)]
    records += [{"id": f"other-{i}", "text": sample_document(doc_id) + "\n" + footer}
                for i, doc_id in enumerate(others)]
    short = " ".join(GOOD_TEXT.split()[:45])  # 45 words: under heuristics' 50 without footer
    records.append({"id": "short", "text": f"{short}\n{footer}"})
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                          config_from_dict({"shards": {"enabled": False}}))
    kept = {r["id"]: r["text"] for r in rows(tmp_path / "run", "kept")}
    removed = {r["id"]: r for r in rows(tmp_path / "run", "removed")}

    assert sorted(kept) == ["copy-0", "other-0", "other-1", "other-2"]
    assert kept["copy-0"] == normalize_text(copies[0], NormalizeConfig())  # whole
    assert {removed[f"copy-{i}"]["reason"] for i in (1, 2, 3)} == {"near_duplicate"}
    assert [k for k, text in kept.items() if footer in text] == ["other-0"]
    assert removed["short"]["stage"] == "boilerplate"
    assert removed["short"]["reason"] == "too_short_after_boilerplate"
    assert json.loads(removed["short"]["details"]) == {"lines_removed": 1, "words": 45, "min": 50}
    assert check_accounting(report) == []


def test_counters_are_named_by_stage_and_reason(tmp_path):
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"id": "s", "text": "too short"}) + "\nnot json\n", encoding="utf-8")
    pipeline = beam.Pipeline(options=PipelineOptions([]))
    build_pipeline(pipeline, ["in"], [str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                   config_from_dict({}))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == transforms.METRICS_NAMESPACE}
    assert counters["heuristics/removed:too_few_words"] == 1
    assert counters["read/quarantined:malformed_json"] == 1
    assert counters["normalize/kept"] == 1


def test_a_run_folder_is_not_overwritten_by_accident(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": GOOD_TEXT}) + "\n")
    run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"), config_from_dict({}))
    with pytest.raises(CurationError, match="--overwrite"):
        run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"), config_from_dict({}))
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                          config_from_dict({}), overwrite=True)
    assert report["documents"]["input"] == 1


def test_a_users_readme_in_the_output_folder_is_never_replaced(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"text": GOOD_TEXT}) + "\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "README.md").write_text("# My project\n")
    for overwrite in (False, True):
        with pytest.raises(CurationError, match=r"README.md is not a winnow dataset card"):
            run_curation([str(tmp_path / "in.jsonl")], str(run), config_from_dict({}),
                         overwrite=overwrite)
    assert (run / "README.md").read_text() == "# My project\n"
    assert sorted(path.name for path in run.iterdir()) == ["README.md"]
    (run / "README.md").unlink()  # the run's own card is replaced with the run
    run_curation([str(tmp_path / "in.jsonl")], str(run), config_from_dict({}))
    assert run_curation([str(tmp_path / "in.jsonl")], str(run), config_from_dict({}),
                        overwrite=True)["documents"]["input"] == 1


def test_inputs_that_match_nothing_fail_before_the_run(tmp_path):
    with pytest.raises(CurationError, match="matches no files"):
        expand_inputs([str(tmp_path / "nothing-*.jsonl")])
