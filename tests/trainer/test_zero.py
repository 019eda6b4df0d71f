"""ZeRO stage 1 (TrainConfig.optimizer_sharding: zero1) in two gloo processes on the CPU: the
same training as plain DDP, and checkpoints that resume under either setting."""

import os
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.trainer.helpers import (  # noqa: E402
    TIMING,
    read_metrics,
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
    torchrun_pretrain,
    write_config,
)
from winnow.trainer.checkpoints import load_checkpoint, write_text  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.train import setup  # noqa: E402

# 4 steps of 2 ranks x 4 examples, dropout on (reseeded per step and rank), a checkpoint at 2
CONFIG = tiny_config(max_steps=4, eval_every=2, checkpoint_every=2)
SHARDED = "with the AdamW state sharded over them (ZeRO-1)"


def train(run_dir, sharding: str, *arguments: str) -> str:
    """``winnow pretrain`` in two ranks with ``optimizer_sharding: sharding``; its stderr."""
    path = write_config(f"{run_dir}.{sharding}.yaml", {**CONFIG, "optimizer_sharding": sharding})
    result = torchrun_pretrain("--output", str(run_dir), "--config", path, *arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tokenizer):
    """{sharding: run folder} of the same 4-step run, unsharded and under ZeRO-1."""
    folder = tmp_path_factory.mktemp("zero")
    shards = small_shards(folder / "shards", tokenizer)
    runs = {}
    for sharding in ("none", "zero1"):
        runs[sharding] = folder / sharding
        stderr = train(runs[sharding], sharding, "--shards", shards)
        assert (SHARDED in stderr) == (sharding == "zero1")
    return runs


def final_checkpoint(run_dir) -> dict:
    return load_checkpoint(os.path.join(run_dir, "checkpoints", "step-000004.pt"))


def assert_same_training(run_dir, reference) -> None:
    """Equal metrics, final parameters and whole optimizer states (float tolerance), and the
    optimizer state in the same format (groups, settings, parameter numbering)."""
    metrics, expected = read_metrics(run_dir, drop=TIMING), read_metrics(reference, drop=TIMING)
    assert [(e["step"], e["split"]) for e in metrics] == [
        (1, "train"), (2, "train"), (2, "eval"), (3, "train"), (4, "train"), (4, "eval")]
    for mine, theirs in zip(metrics, expected, strict=True):
        assert mine == {key: pytest.approx(value, rel=1e-6) if isinstance(value, float)
                        else value for key, value in theirs.items()}
    mine, theirs = final_checkpoint(run_dir), final_checkpoint(reference)
    torch.testing.assert_close(mine["model"], theirs["model"])
    assert mine["optimizer"]["param_groups"] == theirs["optimizer"]["param_groups"]
    torch.testing.assert_close(mine["optimizer"]["state"], theirs["optimizer"]["state"])
    numbered = [index for group in mine["optimizer"]["param_groups"] for index in group["params"]]
    assert sorted(mine["optimizer"]["state"]) == numbered == list(range(len(numbered)))


def test_zero1_trains_like_unsharded_ddp_and_checkpoints_the_whole_state(runs):
    assert_same_training(runs["zero1"], runs["none"])


@pytest.mark.parametrize("written, resumed", [("zero1", "none"), ("none", "zero1")])
def test_a_checkpoint_resumes_under_the_other_setting(tmp_path, runs, written, resumed):
    """Step 2's checkpoint of one setting, resumed under the other, ends as the uninterrupted
    run of the first setting (exact resume: data, masks, dropout and the whole AdamW state)."""
    run = tmp_path / "run"
    shutil.copytree(runs[written], run)
    for name in ("step-000004.pt", "step-000004.pt.sha256"):
        os.remove(run / "checkpoints" / name)
    write_text(str(run / "checkpoints" / "latest"), "step-000002.pt\n")
    stderr = train(run, resumed, "--resume")
    assert (SHARDED in stderr) == (resumed == "zero1")
    assert f"optimizer_sharding: {resumed}" in (run / "config.yaml").read_text()
    assert_same_training(run, runs[written])


def test_zero1_in_one_process_is_plain_adamw_with_a_note(tmp_path, tokenizer, capsys):
    shards = small_shards(tmp_path / "shards", tokenizer)
    trainer = setup(shards, str(tmp_path / "run"),
                    config_from_dict({**CONFIG, "optimizer_sharding": "zero1"}))
    assert type(trainer.optimizer) is torch.optim.AdamW
    assert "optimizer_sharding zero1 has no effect in one process" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_zero1_state_loaded_on_cuda_steps_with_fused_adamw(tmp_path):
    """ZeroRedundancyOptimizer.load_state_dict puts AdamW's "step" on the CPU; fused AdamW reads
    it on the GPU. One NCCL rank, the wrapper forced (world_size=2 to build_optimizer)."""
    from winnow.trainer.train import build_optimizer, load_optimizer_state, optimizer_state

    torch.distributed.init_process_group("nccl", init_method=f"file://{tmp_path}/store",
                                         rank=0, world_size=1)
    try:
        device = torch.device("cuda", 0)
        model = torch.nn.Linear(8, 8).to(device)
        config = config_from_dict({**CONFIG, "optimizer_sharding": "zero1"})

        def step(optimizer):
            model(torch.ones(2, 8, device=device)).sum().backward()
            optimizer.step()
            optimizer.zero_grad()

        written = build_optimizer(model, config, device, world_size=2)
        step(written)
        resumed = build_optimizer(model, config, device, world_size=2)
        load_optimizer_state(resumed, optimizer_state(written, rank=0))
        assert {state["step"].device.type for state in resumed.optim.state.values()} == {"cuda"}
        step(resumed)
        assert [float(state["step"]) for state in resumed.optim.state.values()] == [2.0, 2.0]
    finally:
        torch.distributed.destroy_process_group()
