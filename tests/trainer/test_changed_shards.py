"""Issue 14, item 7: a resumed run refuses shards other than those its checkpoint recorded."""

import os
import shutil

import pytest

pytest.importorskip("torch")

from tests.trainer.helpers import (  # noqa: E402
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
)
from winnow.cli import main  # noqa: E402
from winnow.schemas.shard_reader import read_manifest  # noqa: E402
from winnow.trainer.checkpoints import latest_checkpoint, load_checkpoint  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.train import pretrain  # noqa: E402


def stopped_run(tmp_path, tokenizer) -> tuple[str, str]:
    """(shards, run): a run of 4 steps stopped after 2, with its checkpoint."""
    shards = small_shards(tmp_path / "shards", tokenizer)
    run = str(tmp_path / "run")
    pretrain(shards, run, config_from_dict(tiny_config(max_steps=4, eval_every=0)), stop_after=2)
    return shards, run


def test_resume_refuses_re_curated_shards_unless_allowed(tmp_path, tokenizer, capsys):
    shards, run = stopped_run(tmp_path, tokenizer)
    # The same folder written again from other text: same tokenizer, vocabulary and length.
    shutil.rmtree(shards)
    small_shards(tmp_path / "shards", tokenizer, seed=1)
    capsys.readouterr()

    assert main(["pretrain", "--output", run, "--resume"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith(f"winnow pretrain: the shards in {shards} are not those the "
                            f"checkpoint of {run} was trained on (manifest_sha256 ")
    assert error.endswith("pass --allow-changed-shards to continue on them")
    assert os.path.basename(latest_checkpoint(run)) == "step-000002.pt"

    assert main(["pretrain", "--output", run, "--resume", "--allow-changed-shards"]) == 0
    assert "continuing on them (--allow-changed-shards)" in capsys.readouterr().err
    checkpoint = load_checkpoint(latest_checkpoint(run))
    assert checkpoint["step"] == 4  # and it records the shards it continued on
    assert checkpoint["manifest"]["manifest_sha256"] == (
        read_manifest(shards).to_obj()["manifest_sha256"])


def test_resume_with_other_shards_refuses_other_data_and_accepts_a_moved_copy(
        tmp_path, tokenizer, capsys):
    shards, run = stopped_run(tmp_path, tokenizer)
    other = small_shards(tmp_path / "other", tokenizer, seed=2)
    assert main(["pretrain", "--output", run, "--resume", "--shards", other]) == 2
    assert "--allow-changed-shards" in capsys.readouterr().err

    moved = str(tmp_path / "moved")
    shutil.copytree(shards, moved)  # the same bytes in another place: the same data
    assert main(["pretrain", "--output", run, "--resume", "--shards", moved]) == 0
    assert "warning" not in capsys.readouterr().err
    assert load_checkpoint(latest_checkpoint(run))["step"] == 4


def test_help_documents_the_override(capsys):
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    assert "--allow-changed-shards" in capsys.readouterr().out
