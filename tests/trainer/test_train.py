import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.tiny_tokenizer import train_tokenizer  # noqa: E402
from tests.trainer.helpers import (  # noqa: E402
    REPO,
    TIMING,
    TINY_MODEL,
    read_metrics,
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    text_examples,
    tiny_config,
    torchrun_pretrain,
    write_config,
    write_shards,
)
from winnow.cli import main  # noqa: E402
from winnow.trainer.checkpoints import PretrainError, latest_checkpoint, load_checkpoint  # noqa: E402
from winnow.trainer.config import ConfigError, TrainConfig, config_from_dict, load_config  # noqa: E402
from winnow.trainer.data import MaskingConfig  # noqa: E402
from winnow.trainer.train import export, get_lr, pretrain, setup, train_step  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    """40 examples (vocab 100, sop, max_seq_len 20) in two shards."""
    return small_shards(tmp_path_factory.mktemp("shards"), tokenizer)


# --- config and schedule -----------------------------------------------------------------------

def test_config_names_only_what_it_changes_and_lists_every_problem(tmp_path):
    path = write_config(tmp_path / "ok.yaml", {"model": {"preset": "tiny", "share_layers": "all"},
                                               "lr": 1, "betas": [0.9, 0.98],
                                               "masking": {"whole_word": True}})
    config = load_config(path)
    assert config.model == {"preset": "tiny", "share_layers": "all"}
    assert (config.lr, config.betas, config.masking.whole_word) == (1.0, (0.9, 0.98), True)
    assert config.batch_size == TrainConfig().batch_size
    assert load_config(path, preset="mini").model["preset"] == "mini"

    bad = write_config(tmp_path / "bad.yaml", {
        "batch_size": 0, "learning_rate": 1e-3, "schedule": "step", "precision": "fp16",
        "lr": "high", "masking": {"mlm_probability": 2.0, "colour": 1},
        "model": {"preset": "huge", "hidden_size": 100}})
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    problems = error.value.problems
    expected = ["learning_rate: unknown key", "lr: expected float, got 'high'",
                "masking.colour: unknown key", "masking.mlm_probability: must be in (0, 1]",
                "batch_size: must be at least 1", "schedule: expected linear or cosine",
                "precision: expected auto, bf16 or fp32", "model.preset: expected one of"]
    for fragment in expected:
        assert any(fragment in problem for problem in problems), (fragment, problems)
    assert all(problem.startswith(f"{bad}: ") for problem in problems)
    with pytest.raises(ConfigError, match="hidden_size 100 is not a multiple of num_heads"):
        config_from_dict({"model": {"preset": "tiny", "hidden_size": 100, "num_heads": 3}})


def test_get_lr_warms_up_then_decays_to_the_floor():
    linear = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert get_lr(0, linear) == pytest.approx(0.1)
    assert get_lr(9, linear) == pytest.approx(1.0)
    assert get_lr(10, linear) == pytest.approx(1.0)
    assert get_lr(60, linear) == pytest.approx(0.55)
    assert get_lr(110, linear) == pytest.approx(0.1)
    assert get_lr(500, linear) == pytest.approx(0.1)
    cosine = TrainConfig(lr=1.0, warmup_steps=0, max_steps=100, schedule="cosine")
    assert get_lr(0, cosine) == pytest.approx(1.0)
    assert get_lr(50, cosine) == pytest.approx(0.5)
    assert get_lr(100, cosine) == pytest.approx(0.0, abs=1e-12)


# --- training ----------------------------------------------------------------------------------

def test_tiny_model_overfits_a_small_shard_set(tmp_path, tokenizer):
    shards = tmp_path / "shards"
    write_shards(shards, text_examples(tokenizer, 8, 24, seed=3), tokenizer, max_seq_len=24)
    config = config_from_dict(tiny_config(
        model={**TINY_MODEL, "dropout": 0.0, "attention_dropout": 0.0}, batch_size=64,
        max_steps=120, lr=1e-2, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1,
        weight_decay=0.0, log_every=10, eval_every=0, eval_examples=0))
    # The folder holding shards/ is accepted for the shard folder itself.
    assert pretrain(str(tmp_path), str(tmp_path / "run"), config) == 120
    metrics = read_metrics(tmp_path / "run")
    assert [entry["step"] for entry in metrics] == list(range(10, 121, 10))
    assert metrics[0]["mlm_accuracy"] < 0.6
    assert sum(entry["mlm_accuracy"] for entry in metrics[-3:]) / 3 > 0.9
    assert metrics[-1]["sop_accuracy"] == 1.0
    assert metrics[-1]["loss"] == pytest.approx(metrics[-1]["mlm_loss"]
                                                + metrics[-1]["pair_loss"])


def test_stop_and_resume_give_the_losses_of_an_uninterrupted_run(tmp_path, shards):
    config = tiny_config(grad_accum_steps=2)  # dropout 0.1 is on: it is reseeded per step
    assert pretrain(shards, str(tmp_path / "whole"), config_from_dict(config)) == 6

    path = write_config(tmp_path / "config.yaml", config)
    run = str(tmp_path / "parts")
    assert main(["pretrain", "--shards", shards, "--output", run, "--config", path,
                 "--stop-after", "3"]) == 0
    assert os.path.basename(latest_checkpoint(run)) == "step-000003.pt"
    assert [entry["step"] for entry in read_metrics(run)] == [1, 2, 3, 3]  # 3: train + eval
    assert main(["pretrain", "--output", run, "--resume"]) == 0

    whole, parts = read_metrics(tmp_path / "whole"), read_metrics(run)
    assert [(e["step"], e["split"]) for e in whole] == [
        (1, "train"), (2, "train"), (3, "train"), (3, "eval"), (4, "train"), (5, "train"),
        (6, "train"), (6, "eval")]
    assert parts == whole  # exactly: losses, accuracies, lr, grad norms
    assert whole[0]["lr"] == pytest.approx(5e-4)  # warmup: lr * 1 / 2
    raw = read_metrics(run, drop=())[0]
    assert raw["mfu"] is None and raw["tokens_per_s"] < raw["padded_tokens_per_s"]
    checkpoint = load_checkpoint(latest_checkpoint(run))  # torch.load(weights_only=True)
    assert checkpoint["step"] == 6 and checkpoint["examples_seen"] == 48
    assert checkpoint["manifest"]["vocab_size"] == 100
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [
        "latest", "step-000003.pt", "step-000003.pt.sha256", "step-000006.pt",
        "step-000006.pt.sha256"]
    # Resuming a finished run does nothing; a new run into a used folder is refused.
    assert pretrain(None, run, resume=True) == 6
    with pytest.raises(PretrainError, match="already holds a run"):
        pretrain(shards, run, config_from_dict(config))


def test_unpadded_steps_match_padded_ones_on_fixed_batches(tmp_path, shards):
    """The data path's batches (short examples, padding to 20): with dropout off, the unpadded
    model's losses, gradient norm and evaluation equal the padded one's, accuracies exactly."""
    from winnow.trainer.train import validate

    model = {**TINY_MODEL, "dropout": 0.0, "attention_dropout": 0.0}
    results = []
    for unpad in (False, True):
        config = config_from_dict(tiny_config(model=model, unpad=unpad))
        trainer = setup(shards, str(tmp_path / f"unpad-{unpad}"), config)
        assert trainer.raw_model.unpad is unpad
        batch = trainer.train_data.batch(range(8))
        assert not batch["attention_mask"].all()  # the batch holds padding
        sums, grad_norm = train_step(trainer, batch)
        results.append((sums, float(grad_norm), validate(trainer)))
    (padded, padded_norm, padded_eval), (unpadded, unpadded_norm, unpadded_eval) = results
    assert float(unpadded.mlm_loss_sum) == pytest.approx(float(padded.mlm_loss_sum), rel=1e-5)
    assert float(unpadded.pair_loss_sum) == pytest.approx(float(padded.pair_loss_sum), rel=1e-5)
    assert (float(unpadded.mlm_correct), float(unpadded.pair_correct)) == (
        float(padded.mlm_correct), float(padded.pair_correct))
    assert unpadded_norm == pytest.approx(padded_norm, rel=1e-4)
    for key, value in padded_eval.items():
        exact = key.endswith("accuracy") or key in ("step", "split")
        assert unpadded_eval[key] == (value if exact else pytest.approx(value, rel=1e-5)), key


def test_metrics_sums_are_the_model_losses_and_equal_the_summed_cross_entropies(
        tmp_path, shards):
    """output_sums reuses the model's mean losses (times their counts) instead of computing the
    cross-entropies again; on a fixed batch its sums and their gradients are those of the
    cross-entropies summed over the logits (what it computed before)."""
    import torch.nn.functional as F

    from winnow.trainer.metrics import output_sums

    trainer = setup(shards, str(tmp_path / "run"), config_from_dict(tiny_config()))
    batch = trainer.train_data.batch(range(8))
    out = trainer.raw_model(**batch)
    sums = output_sums(out, batch["pair_labels"])
    expected = (F.cross_entropy(out.mlm_logits.float(), out.mlm_targets, reduction="sum"),
                F.cross_entropy(out.pair_logits.float(), batch["pair_labels"], reduction="sum"))
    for found, wanted in zip((sums.mlm_loss_sum, sums.pair_loss_sum), expected, strict=True):
        assert float(found.detach()) == pytest.approx(float(wanted.detach()), rel=1e-6)
    parameters = list(trainer.raw_model.parameters())
    torch.testing.assert_close(  # the gradients the train step takes from the sums
        torch.autograd.grad(sums.mlm_loss_sum + sums.pair_loss_sum, parameters,
                            retain_graph=True),
        torch.autograd.grad(expected[0] + expected[1], parameters))
    out.mlm_loss, out.pair_loss = torch.tensor(2.0), torch.tensor(0.5)  # not the logits' ones
    sums = output_sums(out, batch["pair_labels"])
    assert (float(sums.mlm_loss_sum), float(sums.pair_loss_sum)) == (
        2.0 * len(out.mlm_targets), 0.5 * 8)


def test_mfu_counts_the_tokens_the_model_computes_on(tmp_path, shards, monkeypatch):
    from winnow.trainer import train
    from winnow.trainer.metrics import Sums

    monkeypatch.setattr(train, "peak_flops", lambda device: 1e12)
    window = Sums(masked=10, examples=8, tokens=90, padded_tokens=160)
    for unpad, computed in ((True, 90), (False, 160)):
        trainer = setup(shards, str(tmp_path / f"unpad-{unpad}"),
                        config_from_dict(tiny_config(unpad=unpad)))
        trainer.step = 1
        entry = train._train_entry(trainer, window, torch.tensor(1.0), seconds=2.0)
        flops = trainer.model_config.flops_per_token(20, 0.15)
        assert (entry["tokens_per_s"], entry["padded_tokens_per_s"]) == (45.0, 80.0)
        assert entry["mfu"] == pytest.approx(computed / 2.0 * flops / 1e12)


def test_two_processes_with_gloo_match_one_process(tmp_path, shards):
    config = tiny_config(model={**TINY_MODEL, "dropout": 0.0, "attention_dropout": 0.0},
                         max_steps=4, eval_every=2)
    pretrain(shards, str(tmp_path / "single"), config_from_dict(config))
    # Two ranks of 4 examples each, each in 2 micro-batches of 2.
    path = write_config(tmp_path / "ddp.yaml", {**config, "grad_accum_steps": 2})
    result = torchrun_pretrain("--shards", shards, "--output", str(tmp_path / "ddp"),
                               "--config", path)
    assert result.returncode == 0, result.stderr[-3000:]
    single = read_metrics(tmp_path / "single", drop=TIMING + ("lr",))
    ddp = read_metrics(tmp_path / "ddp", drop=TIMING + ("lr",))
    assert [(e["step"], e["split"]) for e in ddp] == [(e["step"], e["split"]) for e in single]
    assert len(ddp) == 6
    for one, two in zip(single, ddp, strict=True):
        for key, value in one.items():
            if isinstance(value, float):
                assert two[key] == pytest.approx(value, abs=1e-5), (one["step"], key)


# --- refusals ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, shards):
    run = str(tmp_path_factory.mktemp("finished") / "run")
    pretrain(shards, run, config_from_dict(tiny_config(max_steps=1, warmup_steps=1, eval_every=0)))
    return run


@pytest.mark.parametrize("change, field", [
    ("vocab_size", "vocab_size 120 != 100"),
    ("objective", "objective 'nsp' != 'sop'"),
    ("max_seq_len", "max_seq_len 24 != 20"),
    ("tokenizer", "tokenizer_sha256"),
])
def test_resume_refuses_shards_that_do_not_match_the_checkpoint(
        tmp_path, tokenizer, finished_run, capsys, change, field):
    other = tokenizer
    if change == "vocab_size":
        other = train_tokenizer(tmp_path / "spm", vocab_size=120)
    elif change == "tokenizer":
        other = train_tokenizer(tmp_path / "spm", seed=1)
        assert other != tokenizer
    write_shards(tmp_path / "other", text_examples(other, 12, 20), other,
                 objective="nsp" if change == "objective" else "sop",
                 max_seq_len=24 if change == "max_seq_len" else 20)
    code = main(["pretrain", "--shards", str(tmp_path / "other"), "--output", finished_run,
                 "--resume", "--max-steps", "2"])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert len(error.splitlines()) == 1
    assert error.startswith("winnow pretrain: the shards in ")
    assert "do not match the checkpoint" in error and field in error


def test_resume_refuses_a_different_config(shards, finished_run):
    same = config_from_dict(tiny_config(max_steps=1, warmup_steps=1, eval_every=0))
    with pytest.raises(PretrainError, match="differs in: lr, masking"):
        pretrain(shards, finished_run, dataclasses.replace(
            same, lr=0.5, masking=MaskingConfig(whole_word=True)), resume=True)
    assert pretrain(shards, finished_run, same, resume=True) == 1  # already there


def test_a_corrupted_shard_byte_and_config_mismatches_are_refused(tmp_path, shards, capsys):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(shards, corrupt)
    with open(corrupt / "shard-00001.tokens.bin", "r+b") as handle:
        handle.seek(3)
        byte = handle.read(1)
        handle.seek(3)
        handle.write(bytes([byte[0] ^ 1]))
    code = main(["pretrain", "--shards", str(corrupt), "--output", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1
    assert "failed verification" in error
    assert "shard-00001.tokens.bin: sha256" in error
    assert not os.path.exists(tmp_path / "run" / "checkpoints")

    mismatched = config_from_dict(tiny_config(model={**TINY_MODEL, "vocab_size": 90}))
    with pytest.raises(PretrainError, match=r"model.vocab_size 90 != 100 \(config != manifest"):
        pretrain(shards, str(tmp_path / "run"), mismatched)

    assert main(["pretrain", "--output", str(tmp_path / "empty"), "--resume"]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    bad_config = write_config(tmp_path / "bad.yaml", {"batch_size": "many"})
    assert main(["pretrain", "--shards", shards, "--output", str(tmp_path / "run"),
                 "--config", bad_config]) == 2
    assert "batch_size: expected int, got 'many'" in capsys.readouterr().err


# --- cli and export ----------------------------------------------------------------------------

def test_cli_documents_every_option_and_imports_torch_lazily_and_never_beam(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    text = capsys.readouterr().out
    for option in ("--shards", "--output", "--config", "--preset", "--max-steps",
                   "--stop-after", "--resume"):
        assert option in text
    assert main(["pretrain", "--output", "unused", "--preset", "tiny", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "preset: tiny" in printed and "mlm_probability: 0.15" in printed
    parser_only = ("import sys; from winnow.cli import build_parser; build_parser(); "
                   "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', "
                   "'apache_beam')]; assert not heavy, heavy")
    trainer_only = ("import sys, winnow.trainer.train, winnow.trainer.data; "
                    "bad = [m for m in sys.modules if m.startswith(('apache_beam', "
                    "'winnow.pipeline'))]; assert not bad, bad")
    for script in (parser_only, trainer_only):
        subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True)


def test_export_writes_the_latest_checkpoint_with_the_run_tokenizer(tmp_path, finished_run):
    pytest.importorskip("safetensors")
    written = export(finished_run, str(tmp_path / "hf"))
    assert {"config.json", "model.safetensors", "spiece.model"} <= set(os.listdir(written))
    with open(os.path.join(written, "config.json")) as handle:
        assert json.load(handle)["vocab_size"] == 100
    with pytest.raises(PretrainError, match="no checkpoint"):
        export(str(tmp_path / "nothing"), str(tmp_path / "hf2"))


# --- GPU ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_step_with_fused_adamw_on_cuda(tmp_path, shards):
    trainer = setup(shards, str(tmp_path / "run"), config_from_dict(tiny_config()))
    assert trainer.device.type == "cuda"
    assert trainer.optimizer.defaults["fused"]
    batch = trainer.train_data.batch(range(8))
    before = trainer.raw_model.pooler.weight.detach().clone()
    sums, grad_norm = train_step(trainer, batch)
    assert math.isfinite(float(grad_norm)) and float(sums.mlm_loss_sum) > 0
    assert not torch.equal(before, trainer.raw_model.pooler.weight.detach())
    with trainer.autocast:
        out = trainer.model(**{k: v.cuda() for k, v in batch.items()})
    assert out.pair_logits.dtype == torch.bfloat16
