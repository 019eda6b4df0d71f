"""Issue 14, items 8 and 10: corrupted and malicious checkpoints, and a ``latest`` pointer that
leads out of the run folder, are refused in one line (exit 2), and nothing outside runs."""

import os
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.tiny_tokenizer import train_tokenizer  # noqa: E402
from tests.trainer.helpers import (  # noqa: E402
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
)
from winnow.cli import main  # noqa: E402
from winnow.schemas.shard_format import sha256_file  # noqa: E402
from winnow.trainer.checkpoints import latest_checkpoint, load_checkpoint  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.train import pretrain  # noqa: E402


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> str:
    """A run of 3 steps with a checkpoint at every step."""
    folder = tmp_path_factory.mktemp("hostile")
    tokenizer = train_tokenizer(folder / "spm")
    shards = small_shards(folder / "shards", tokenizer)
    run = str(folder / "run")
    pretrain(shards, run, config_from_dict(tiny_config(max_steps=3, eval_every=0,
                                                       checkpoint_every=1)))
    return run


@pytest.fixture
def run(tmp_path, finished) -> str:
    """A copy of the finished run that a test may damage."""
    return str(shutil.copytree(finished, tmp_path / "run"))


def checkpoint(run, step: int) -> str:
    return os.path.join(run, "checkpoints", f"step-{step:06d}.pt")


def flip_a_byte(path: str) -> None:
    """A bit flip deep in the tensor data: torch.load alone does not notice it."""
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 1]))


def point_latest_at(run, name: str) -> None:
    with open(os.path.join(run, "checkpoints", "latest"), "w") as handle:
        handle.write(name + "\n")


def refusal(capsys, command: list[str]) -> str:
    """The one stderr line of a command that exits 2."""
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def test_a_corrupted_latest_checkpoint_is_refused_naming_the_newest_valid_one(
        run, tmp_path, capsys):
    flip_a_byte(checkpoint(run, 3))
    flip_a_byte(checkpoint(run, 2))
    resume = ["pretrain", "--output", run, "--resume", "--max-steps", "4"]
    latest = os.path.join(run, "checkpoints", "latest")
    assert refusal(capsys, resume) == (
        f"winnow pretrain: {latest} names step-000003.pt, which is corrupted (its sha256 "
        f"differs from the one in step-000003.pt.sha256); refused; the newest valid checkpoint "
        f"is step-000001.pt: to continue from it, write step-000001.pt into {latest}")
    export_error = refusal(capsys, ["export", run, "--output", str(tmp_path / "hf")])
    assert f"{latest} names step-000003.pt, which is corrupted" in export_error
    assert not os.path.exists(tmp_path / "hf")

    point_latest_at(run, "step-000001.pt")  # the advice, followed
    assert main(resume) == 0
    assert load_checkpoint(latest_checkpoint(run))["step"] == 4


def test_with_no_valid_checkpoint_left_the_refusal_says_so(run, capsys):
    for step in (1, 2, 3):
        flip_a_byte(checkpoint(run, step))
    error = refusal(capsys, ["pretrain", "--output", run, "--resume", "--max-steps", "4"])
    assert error.endswith("is corrupted (its sha256 differs from the one in "
                          "step-000003.pt.sha256); refused; no older checkpoint passes its "
                          "checksum")


class RunsCode:
    """Unpickling this calls os.system: what a malicious checkpoint holds."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_checkpoint_is_refused_in_one_line_and_runs_nothing(run, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    path = checkpoint(run, 4)
    torch.save({"format": 1, "step": 4, "model": RunsCode(str(marker))}, path)
    with open(path + ".sha256", "w") as handle:  # whoever planted it can write that too
        handle.write(f"{sha256_file(path)}  step-000004.pt\n")
    point_latest_at(run, "step-000004.pt")
    for command in (["pretrain", "--output", run, "--resume"],
                    ["export", run, "--output", str(tmp_path / "hf")]):
        error = refusal(capsys, command)
        assert error.endswith(f"{path}: refused: it holds objects other than tensors and plain "
                              "data, so it is not a winnow checkpoint (loading it could run "
                              "code)")
        assert "weights_only" not in error
    assert not marker.exists()


@pytest.mark.parametrize("escape", ["relative", "absolute", "symlink"])
def test_a_latest_pointer_never_leads_out_of_the_run_folder(run, tmp_path, capsys, escape):
    outside = tmp_path / "outside.pt"
    shutil.copyfile(checkpoint(run, 3), outside)  # a loadable checkpoint, outside the run
    if os.path.exists(checkpoint(run, 3) + ".sha256"):
        shutil.copyfile(checkpoint(run, 3) + ".sha256", str(outside) + ".sha256")
    name = {"relative": "../../outside.pt", "absolute": str(outside),
            "symlink": "step-000009.pt"}[escape]
    if escape == "symlink":
        os.symlink(outside, checkpoint(run, 9))
    point_latest_at(run, name)
    for command in (["pretrain", "--output", run, "--resume", "--max-steps", "4"],
                    ["export", run, "--output", str(tmp_path / "hf")]):
        error = refusal(capsys, command)
        assert error.endswith(f"names {name!r}, which is not a checkpoint file inside "
                              f"{os.path.join(run, 'checkpoints')} (expected a name like "
                              "step-000123.pt); refused")
    assert not os.path.exists(tmp_path / "hf")
