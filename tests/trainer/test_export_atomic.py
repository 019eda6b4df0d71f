"""Issue 14, item 9: ``winnow export`` writes beside the target and renames it into place, and
refuses a non-empty target without --overwrite."""

import errno
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("safetensors")

from tests.trainer.helpers import (  # noqa: E402
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
)
from winnow.cli import main  # noqa: E402
from winnow.trainer import export as export_module  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.train import export, pretrain  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer) -> str:
    folder = tmp_path_factory.mktemp("export")
    shards = small_shards(folder / "shards", tokenizer)
    pretrain(shards, str(folder / "run"), config_from_dict(tiny_config(
        max_steps=1, warmup_steps=1, eval_every=0)))
    return str(folder / "run")


def folder_bytes(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_a_non_empty_target_is_refused_without_overwrite(tmp_path, run, capsys):
    target = tmp_path / "hf"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert main(["export", run, "--output", str(target)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"winnow export: {target} is not empty; pass --overwrite to replace it"
    assert os.listdir(target) == ["notes.txt"]

    assert main(["export", run, "--output", f"{target}/", "--overwrite"]) == 0
    assert "notes.txt" not in os.listdir(target)
    assert {"config.json", "model.safetensors", "spiece.model"} <= set(os.listdir(target))
    assert sorted(os.listdir(tmp_path)) == ["hf"]  # nothing left beside it

    (tmp_path / "empty").mkdir()  # an empty folder is no one's export
    assert main(["export", run, "--output", str(tmp_path / "empty")]) == 0
    (tmp_path / "file").write_text("x")
    assert main(["export", run, "--output", str(tmp_path / "file"), "--overwrite"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_an_export_that_fails_midway_leaves_the_old_export_whole(tmp_path, run, monkeypatch):
    target = tmp_path / "hf"
    export(run, str(target))
    before = folder_bytes(target)

    def full_disk(state, path):  # the weights file is half written when the disk fills
        with open(path, "wb") as handle:
            handle.write(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(export_module, "_save_safetensors", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export(run, str(target), overwrite=True)
    assert folder_bytes(target) == before
    assert sorted(os.listdir(tmp_path)) == ["hf"]  # the temporary folder is gone


def test_a_killed_exports_temporary_folder_is_removed_by_the_next_export(tmp_path, run):
    target = tmp_path / "hf"
    (tmp_path / "hf.tmp-99999").mkdir()  # what a kill -9 during an export leaves
    (tmp_path / "hf.tmp-99999" / "model.safetensors").write_bytes(b"\0" * 10)
    (tmp_path / "other.tmp-1").write_text("not ours")
    export(run, str(target))
    assert sorted(os.listdir(tmp_path)) == ["hf", "other.tmp-1"]
