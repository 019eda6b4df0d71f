"""Issue 17: ``winnow export`` writes a model card (README.md) beside the weights."""

import json
import os

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from tests.trainer.helpers import (  # noqa: E402
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
)
from winnow.cli import main  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.train import pretrain  # noqa: E402

STEPS = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer) -> str:
    folder = tmp_path_factory.mktemp("card")
    shards = small_shards(folder / "shards", tokenizer, count=40)
    pretrain(shards, str(folder / "run"), config_from_dict(tiny_config(
        max_steps=STEPS, warmup_steps=1, eval_every=2, batch_size=8, lr=5e-4)))
    return str(folder / "run")


def last_lines(run_dir) -> dict[str, dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
        return {entry["split"]: entry for entry in map(json.loads, handle)}


def test_the_export_has_a_model_card_and_still_loads(tmp_path, run):
    target = tmp_path / "hf"
    assert main(["export", run, "--output", str(target)]) == 0
    card = (target / "README.md").read_text()
    front, body = card.split("\n---\n", 1)
    assert front == "---\nlibrary_name: transformers\ntags: [winnow, bert, fill-mask, " \
                    "pretraining, sop]"
    assert f"for {STEPS} steps, on 40 examples" in body
    assert "| examples | 40 |" in body and "| objective | sop |" in body
    assert "| max_seq_len | 20 |" in body
    assert f"| steps | {STEPS} of max_steps {STEPS} |" in body
    assert "| preset | tiny |" in body and "| batch size | 8 |" in body
    assert "| learning rate | 0.0005 |" in body
    lines = last_lines(run)
    assert lines["train"]["step"] == STEPS and lines["eval"]["step"] == STEPS
    assert "|  | train | eval |" in body
    assert f"| mlm_loss | {lines['train']['mlm_loss']:.4g} | {lines['eval']['mlm_loss']:.4g} |" \
           in body
    assert "AutoModelForPreTraining.from_pretrained" in body
    assert "inherit the licences" in body
    model = transformers.AutoModelForPreTraining.from_pretrained(str(target))
    assert type(model).__name__ == "BertForPreTraining"


def test_a_run_without_metrics_says_so(tmp_path, run):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    os.remove(copy / "metrics.jsonl")
    assert main(["export", str(copy), "--output", str(tmp_path / "hf")]) == 0
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "The run's metrics.jsonl has no entry up to this step." in card
