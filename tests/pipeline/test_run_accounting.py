"""Nothing goes missing without a reason: kept documents that give no training example, files
an input folder names but that cannot be read, runs that keep nothing."""

import json
import os

from tests.hostile.test_degenerate_runs import NO_FILTERING
from tests.pipeline.bad_inputs import GOOD_TEXT
from tests.pipeline.test_curate import rows
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.dataset_card import CARD_FILE
from winnow.pipeline.report_text import format_report
from winnow.pipeline.run_folder import load_run
from winnow.schemas.report import check_accounting

SHORT_SENTENCES = " ".join(f"The {animal} sat on the mat and looked at the door."
                           for animal in ("cat", "dog", "fox", "owl", "hen", "cow", "bee"))
LONG_SENTENCE = GOOD_TEXT.split(". ")[0]  # 31 words: over 29 tokens (max_seq_len 32)


def write_jsonl(path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"id": f"d{n}", "text": text}) + "\n"
                            for n, text in enumerate(texts)))


def test_kept_documents_without_a_training_example_are_counted_by_reason(tmp_path):
    texts = [SHORT_SENTENCES,  # pairs
             "A single sentence that has nothing to be paired with.",  # one_sentence
             " \n\t ",  # no_tokens: no sentence at all
             f"{LONG_SENTENCE}. {LONG_SENTENCE.upper()}."]  # long_sentences
    write_jsonl(tmp_path / "in.jsonl", texts)
    config = {**NO_FILTERING, "pairs": {"max_seq_len": 32, "short_seq_prob": 0.0}}
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                          config_from_dict(config))
    assert check_accounting(report) == [] and report["documents"]["kept"] == 4
    shards = next(stage for stage in report["stages"] if stage["name"] == "shards")
    assert (shards["documents_in"], shards["documents_out"]) == (4, 1)
    without = {"long_sentences": 1, "no_tokens": 1, "one_sentence": 1}
    assert report["shards"]["without_example"] == without
    assert shards["documents_in"] - shards["documents_out"] == sum(without.values())
    assert ("kept documents without a training example (still in kept/): 3 (long_sentences 1, "
            "no_tokens 1, one_sentence 1)") in format_report(report)
    assert "`one_sentence` 1" in (tmp_path / "run" / CARD_FILE).read_text()


def test_a_dangling_symlink_in_an_input_folder_is_quarantined(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [GOOD_TEXT])
    os.symlink(tmp_path / "gone.jsonl", folder / "b.jsonl")
    report = run_curation([str(folder)], str(tmp_path / "run"),
                          config_from_dict({"shards": {"enabled": False}}))
    assert check_accounting(report) == []
    assert report["documents"]["quarantined"] == {"unreadable_file": 1}
    (record,) = rows(tmp_path / "run", "quarantined")
    assert record["input_file"] == str(folder / "b.jsonl")
    assert f"a symbolic link to {tmp_path / 'gone.jsonl'}, which does not exist" in record[
        "detail"]


def test_a_run_that_keeps_nothing_says_so_without_a_missing_outputs_warning(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", ["far too short", "also short"])
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                          config_from_dict({}))
    assert report["documents"]["kept"] == 0
    view = load_run(str(tmp_path / "run"))
    assert view.finished and view.missing == [] and view.warnings == []
    text = format_report(view.report, view)
    assert "nothing was kept: every record was removed or quarantined" in text
    assert "no examples: the run kept no document; the shard set is empty" in text
