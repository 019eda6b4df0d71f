"""Issue 16, "defaults that fit the run": unset warmup, batch size, learning rate and workers are
derived from max_steps, the preset and the machine (``resolved_config``); a start-up summary;
a compact progress bar; ``--print-config`` without ``--output``."""

import os
import re

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.trainer.helpers import (  # noqa: E402
    TINY_MODEL,
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
    write_config,
)
from winnow.cli import main  # noqa: E402
from winnow.trainer.checkpoints import latest_checkpoint, load_checkpoint  # noqa: E402
from winnow.trainer.config import (  # noqa: E402
    PRESET_TRAINING,
    ConfigError,
    TrainConfig,
    config_from_dict,
    resolved_config,
)
from winnow.trainer.metrics import BAR_FORMAT, progress_postfix  # noqa: E402
from winnow.trainer.model import PRESETS, ModelConfig  # noqa: E402
from winnow.trainer.train import get_lr, pretrain  # noqa: E402

UNSET = ("batch_size", "lr", "warmup_steps", "num_workers")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    """40 examples (vocab 100, sop, max_seq_len 20) in two shards."""
    return small_shards(tmp_path_factory.mktemp("shards"), tokenizer)


def unset_config(**changes) -> dict:
    """tiny_config without the fields that have derived defaults."""
    return {key: value for key, value in tiny_config(**changes).items() if key not in UNSET}


# --- warmup ------------------------------------------------------------------------------------

def test_unset_warmup_is_six_percent_of_max_steps_and_follows_it():
    tiny = TrainConfig(model={"preset": "tiny"})
    assert TrainConfig().warmup_steps is None
    for max_steps, warmup in ((300, 18), (100_000, 6000), (1, 1), (10, 1)):
        config = resolved_config(tiny, max_steps=max_steps, cores=2)
        assert (config.max_steps, config.warmup_steps) == (max_steps, warmup)
    config = resolved_config(tiny, max_steps=300, cores=2)
    assert get_lr(16, config) < config.lr == get_lr(17, config) == 1e-3  # the peak at step 18
    assert resolved_config(TrainConfig(warmup_steps=50), max_steps=300).warmup_steps == 50


def test_an_explicit_warmup_longer_than_the_run_is_refused(tmp_path, shards, capsys):
    with pytest.raises(ConfigError, match=r"warmup_steps: 1000 is longer than the run "
                                          r"\(max_steps 300\)"):
        resolved_config(TrainConfig(warmup_steps=1000), max_steps=300)
    assert resolved_config(TrainConfig(warmup_steps=300), max_steps=300).warmup_steps == 300

    path = write_config(tmp_path / "long.yaml", {"warmup_steps": 1000})
    assert main(["pretrain", "--config", path, "--max-steps", "300", "--print-config"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("winnow pretrain: invalid training config: warmup_steps: 1000 is "
                            "longer than the run (max_steps 300)")
    assert len(error.splitlines()) == 1

    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="warmup_steps: 10 is longer than the run"):
        pretrain(shards, str(run), config_from_dict(tiny_config(warmup_steps=10, max_steps=6)))
    assert not run.exists()


# --- batch size, learning rate, workers --------------------------------------------------------

def test_each_preset_carries_a_batch_size_and_learning_rate_that_a_config_overrides():
    assert set(PRESET_TRAINING) == set(PRESETS)
    lrs = [PRESET_TRAINING[name][1] for name in PRESETS]  # PRESETS: smallest first
    assert lrs == sorted(lrs, reverse=True) and lrs[0] >= 10 * lrs[-1]
    tiny = resolved_config(TrainConfig(model={"preset": "tiny"}), cores=2)
    assert (tiny.batch_size, tiny.lr) == (32, 1e-3)
    base = TrainConfig()  # model.preset base
    assert (resolved_config(base, device_type="cuda").batch_size,
            resolved_config(base, device_type="cuda").lr) == (256, 1e-4)
    assert resolved_config(base, device_type="cpu").batch_size == 32  # CPU: at most 32
    given = resolved_config(TrainConfig(model={"preset": "tiny"}, batch_size=8, lr=0.5,
                                        warmup_steps=2, num_workers=3), cores=2)
    assert (given.batch_size, given.lr, given.warmup_steps, given.num_workers) == (8, 0.5, 2, 3)
    with pytest.raises(ConfigError, match="batch_size 32 is not a multiple of grad_accum"):
        resolved_config(TrainConfig(model={"preset": "tiny"}, grad_accum_steps=3))


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 0), (3, 2), (4, 3), (16, 4)])
def test_unset_num_workers_fits_the_cores(cores, workers):
    assert resolved_config(TrainConfig(), cores=cores).num_workers == workers


def test_unset_workers_share_the_cores_with_the_other_ranks(monkeypatch):
    from winnow.trainer.config import available_cores

    alone = available_cores()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert available_cores() == max(1, alone // 2)


# --- the run records what it resolved; --print-config shows it ---------------------------------

def test_a_run_records_the_resolved_config_and_resumes_with_unset_fields(tmp_path, shards,
                                                                          capsys):
    path = write_config(tmp_path / "unset.yaml", unset_config(max_steps=4, eval_every=0))
    run = str(tmp_path / "run")
    assert main(["pretrain", "--shards", shards, "--output", run, "--config", path,
                 "--preset", "tiny", "--stop-after", "2"]) == 0
    with open(os.path.join(run, "config.yaml")) as handle:
        recorded = yaml.safe_load(handle)
    expected = {"batch_size": 32, "lr": 1e-3, "warmup_steps": 1}
    assert {key: recorded[key] for key in expected} == expected
    assert isinstance(recorded["num_workers"], int)
    assert load_checkpoint(latest_checkpoint(run))["config"] == recorded
    capsys.readouterr()
    assert main(["pretrain", "--output", run, "--resume", "--max-steps", "8",
                 "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {**recorded, "max_steps": 8}
    # --print-config --resume shows what a resume with the given config would train with: the
    # sharding it may change, and it refuses what the resume itself would refuse
    sharded = write_config(tmp_path / "sharded.yaml", {
        **unset_config(max_steps=4, eval_every=0), "optimizer_sharding": "zero1"})
    assert main(["pretrain", "--output", run, "--resume", "--config", sharded, "--preset",
                 "tiny", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {**recorded, "optimizer_sharding": "zero1"}
    warmer = write_config(tmp_path / "warmer.yaml", {**unset_config(max_steps=4, eval_every=0),
                                                     "warmup_steps": 3})
    assert main(["pretrain", "--output", run, "--resume", "--config", warmer, "--preset",
                 "tiny", "--print-config"]) == 2
    assert capsys.readouterr().err.endswith("the given config differs in: warmup_steps\n")
    # The same file (fields unset) resumes: unset means "as the run recorded".
    assert main(["pretrain", "--output", run, "--resume", "--config", path,
                 "--preset", "tiny"]) == 0
    assert load_checkpoint(latest_checkpoint(run))["step"] == 4
    assert main(["pretrain", "--output", run, "--resume", "--config", warmer,
                 "--preset", "tiny", "--max-steps", "6"]) == 2


def test_print_config_needs_no_output_and_applies_preset_and_max_steps(capsys):
    assert main(["pretrain", "--preset", "tiny", "--max-steps", "300", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"] == {"preset": "tiny"}
    assert (printed["max_steps"], printed["warmup_steps"]) == (300, 18)
    assert (printed["batch_size"], printed["lr"]) == (32, 1e-3)
    assert isinstance(printed["num_workers"], int)
    assert config_from_dict(printed) == resolved_config(config_from_dict(printed))

    assert main(["pretrain", "--preset", "tiny", "--shards", "anywhere"]) == 2
    assert "--output RUN is required to train" in capsys.readouterr().err


# --- start-up summary and progress bar ---------------------------------------------------------

def test_the_start_up_summary_comes_first_and_counts_the_run(tmp_path, shards, capsys):
    config = config_from_dict(tiny_config(max_steps=13, eval_every=0, log_every=100))
    pretrain(shards, str(tmp_path / "run"), config)
    err = capsys.readouterr().err
    sizes = {key: value for key, value in TINY_MODEL.items() if key != "preset"}
    model = ModelConfig.preset("tiny", **sizes, vocab_size=100, max_seq_len=20)
    total = model.num_parameters()
    embedding = (100 + 20 + 2) * 64 + 2 * 64  # word, position, token type rows; LayerNorm
    with open(os.path.join(shards, "manifest.json")) as handle:
        tokens = yaml.safe_load(handle)["tokens"]
    lines = err.splitlines()
    assert lines[0] == (f"model: tiny (2 layers, hidden 64), {total:,} parameters: "
                        f"{embedding:,} embedding, {total - embedding:,} non-embedding")
    assert lines[1] == (f"shards: 40 examples (36 train, 4 held out), {tokens:,} tokens, "
                        "sequences of 20")
    assert lines[2].startswith("step: 8 examples = 160 token positions (about ")
    assert lines[2].endswith("; 4.5 steps per epoch, 13 steps = 2.9 epochs")
    assert lines[3].startswith("device: cpu, fp32, 1 process(es), 1 threads, 0 DataLoader")
    assert lines[4] == ("schedule: peak lr 0.001 after 2 warmup steps, linear decay to 0 at "
                        "step 13; this run ends at step 13")
    estimates = [line for line in lines if "estimate: " in line]
    assert len(estimates) == 1
    assert re.fullmatch(r"estimate: [0-9.e-]+ s/step over 10 steps: about \d+ min \d\d s for "
                        r"the 2 steps left", estimates[0].split("\r")[-1].strip()), estimates


def test_the_progress_bar_shows_four_figures_and_leaves_room_for_the_bar():
    from tqdm import tqdm

    entry = {"step": 50_000, "split": "train", "loss": 7.1234, "mlm_loss": 6.4, "pair_loss": 0.7,
             "mlm_accuracy": 0.0812, "sop_accuracy": 0.55, "lr": 1e-4, "grad_norm": 1.2,
             "epoch": 3, "tokens_per_s": 21_345.0, "padded_tokens_per_s": 25_000.0,
             "mfu": 0.3123}
    postfix = progress_postfix(entry)
    assert postfix == "loss 7.12 acc 8.1% 21.3k tok/s mfu 31%"
    assert progress_postfix({**entry, "mfu": None}) == "loss 7.12 acc 8.1% 21.3k tok/s"
    for columns in (80, 120):
        line = tqdm.format_meter(50_000, 100_000, 3600.0, ncols=columns, bar_format=BAR_FORMAT,
                                 postfix=postfix)
        assert len(line) <= columns
        bar = line.split("|")[1]
        assert len(bar) >= columns - 70, line


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_summary_names_bf16_on_cuda(tmp_path, shards, capsys):
    pretrain(shards, str(tmp_path / "run"), config_from_dict(tiny_config(
        max_steps=1, warmup_steps=1, eval_every=0)))
    assert "device: cuda, bf16 autocast" in capsys.readouterr().err
