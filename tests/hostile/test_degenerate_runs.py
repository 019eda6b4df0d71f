"""Runs at the edges of the config and of the data: every filtering stage off (the raw arm of
an ablation), and runs that keep nothing to pair. Both must end as complete runs."""

import dataclasses
import json

import pytest

from tests.pipeline.bad_inputs import GOOD_TEXT, write_bad_corpus
from tests.pipeline.test_curate import rows
from winnow.cli import main
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.stage_list import STAGES
from winnow.schemas.report import check_accounting
from winnow.schemas.shard_format import MANIFEST_FILE, ShardManifest
from winnow.schemas.shard_reader import ShardReader, read_manifest, shard_stats
from winnow.schemas.shard_verify import verify_shards

NO_FILTERING = {stage.name: {"enabled": False} for stage in STAGES}
"""Only reading, sentences, the tokenizer, pairs and shards."""


def test_a_run_with_every_filtering_stage_off_keeps_every_readable_document(tmp_path):
    quarantined, documents = write_bad_corpus(tmp_path / "in")
    report = run_curation([str(tmp_path / "in")], str(tmp_path / "run"),
                          config_from_dict(NO_FILTERING))
    assert check_accounting(report) == []
    assert report["documents"]["kept"] == documents
    assert report["documents"]["removed"] == {}
    assert report["documents"]["quarantined"] == dict(quarantined)
    assert len(rows(tmp_path / "run", "kept")) == documents
    assert rows(tmp_path / "run", "removed") == []
    assert [stage["name"] for stage in report["stages"] if stage["enabled"]] == [
        "read", "shards"]
    shards = tmp_path / "run" / "shards"
    assert verify_shards(shards) == []
    assert report["shards"]["examples"] == len(ShardReader(shards)) > 0


def empty_run(tmp_path, texts, config=None):
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"id": f"d{n}", "text": text}) + "\n" for n, text in enumerate(texts)))
    report = run_curation([str(tmp_path / "in.jsonl")], str(tmp_path / "run"),
                          config_from_dict(config or {}))
    return report, tmp_path / "run" / "shards"


def test_a_run_that_keeps_nothing_writes_an_empty_complete_shard_set(tmp_path, capsys):
    report, shards = empty_run(tmp_path, ["far too short", ""])
    assert report["documents"]["kept"] == 0 and check_accounting(report) == []
    assert sorted(path.name for path in shards.iterdir()) == [MANIFEST_FILE]
    manifest = read_manifest(shards)
    assert manifest == ShardManifest.without_tokenizer(objective="sop", max_seq_len=128)
    assert (manifest.examples, manifest.shards, manifest.tokenizer_file) == (0, (), None)
    assert report["shards"]["examples"] == 0 and "no examples" in report["shards"]["note"]
    assert verify_shards(shards) == []
    assert len(ShardReader(shards)) == 0
    assert shard_stats(shards)["examples"] == 0

    assert main(["shards", "verify", str(shards)]) == 0
    assert capsys.readouterr().out == f"{shards}: ok (an empty shard set: no examples)\n"
    assert main(["shards", "stats", str(shards), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label_balance"] == 0.0
    assert main(["shards", "stats", str(shards)]) == 0
    assert "  examples     0\n" in capsys.readouterr().out
    assert main(["shards", "show", str(shards)]) == 0
    assert capsys.readouterr().out == ""


def test_the_trainer_refuses_an_empty_shard_set_in_one_line(tmp_path, capsys):
    _, shards = empty_run(tmp_path, ["far too short"])
    capsys.readouterr()
    assert main(["pretrain", "--shards", str(shards), "--output", str(tmp_path / "train"),
                 "--preset", "tiny"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no examples in the shards" in err, err


def test_kept_documents_without_pairs_give_an_empty_set_with_its_tokenizer(tmp_path):
    # One sentence each: kept, tokenized, but nothing to pair.
    one_sentence = GOOD_TEXT.split(". ")[0] + "."
    report, shards = empty_run(tmp_path, [one_sentence, one_sentence.upper()],
                               NO_FILTERING)
    assert report["documents"]["kept"] == 2 and report["shards"]["examples"] == 0
    assert sorted(path.name for path in shards.iterdir()) == [MANIFEST_FILE, "tokenizer.model"]
    manifest = read_manifest(shards)
    assert manifest.tokenizer_file == "tokenizer.model" and manifest.vocab_size > 0
    assert verify_shards(shards) == []


@pytest.mark.parametrize("change", [{"vocab_size": 5}, {"special_tokens": {"[PAD]": 0}},
                                    {"tokenizer_sha256": "0" * 64}])
def test_an_empty_set_without_a_tokenizer_has_nothing_a_tokenizer_would_give(change):
    empty = ShardManifest.without_tokenizer(objective="nsp", max_seq_len=64)
    assert ShardManifest.from_json(empty.to_json()) == empty
    (problem,) = dataclasses.replace(empty, **change).problems()
    assert f"{next(iter(change))}: must be" in problem and "tokenizer_file is null" in problem
