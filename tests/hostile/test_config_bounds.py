"""Issue 14, item 10: config fields have real bounds, reported at config-load time, all at once,
before anything runs (``max_seq_len: 1000000`` used to pass curation and fail in pretraining
allocating the position table)."""

import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.tiny_tokenizer import train_tokenizer  # noqa: E402
from tests.trainer.helpers import (  # noqa: E402
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
    write_config,
)
from winnow.cli import main  # noqa: E402
from winnow.filters.pairs import PairsConfig  # noqa: E402
from winnow.schemas.shard_format import MANIFEST_FILE, _manifest_checksum  # noqa: E402
from winnow.trainer.config import ConfigError, load_config  # noqa: E402


def test_training_config_bounds_are_all_reported_at_load_time(tmp_path):
    path = write_config(tmp_path / "big.yaml", {
        "batch_size": 1_000_000, "lr": 5.0, "eps": float("inf"),
        "model": {"preset": "tiny", "max_seq_len": 1_000_000, "num_layers": 100_000,
                  "hidden_size": 1 << 20, "num_heads": 1}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.problems == [f"{path}: {problem}" for problem in (
        "model: max_seq_len must be in [1, 8192], got 1000000",
        "model: num_layers must be in [1, 256], got 100000",
        "model: hidden_size must be in [1, 16384], got 1048576",
        "eps: must be a finite number, got inf",
        "batch_size: must be at most 65536, got 1000000",
        "lr: must be in (0, 1], got 5.0")]


def test_pretrain_refuses_an_unbounded_config_before_anything_runs(tmp_path, capsys):
    path = write_config(tmp_path / "big.yaml", tiny_config(batch_size=1_000_000))
    run = tmp_path / "run"
    assert main(["pretrain", "--shards", str(tmp_path), "--output", str(run),
                 "--config", path]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"winnow pretrain: invalid training config: {path}: batch_size: must be "
                     "at most 65536, got 1000000")
    assert not run.exists()


def test_curation_refuses_a_sequence_length_the_trainer_cannot_take():
    assert PairsConfig(max_seq_len=8192).errors() == []
    (problem,) = PairsConfig(max_seq_len=1_000_000).errors()
    assert problem.startswith("max_seq_len must be an integer in [5, 8192]")
    from winnow.pipeline.config import ConfigError as CurateConfigError
    from winnow.pipeline.config import config_from_dict

    with pytest.raises(CurateConfigError,
                       match=r"pairs.max_seq_len must be an integer in \[5, 8192\]"):
        config_from_dict({"pairs": {"max_seq_len": 1_000_000}})


def test_shards_whose_manifest_exceeds_the_bound_are_refused_before_training(tmp_path, capsys):
    # A folder an older curation wrote with max_seq_len 1000000 (a valid manifest then).
    shards = small_shards(tmp_path / "shards", train_tokenizer(tmp_path / "spm"))
    manifest_path = os.path.join(shards, MANIFEST_FILE)
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest["max_seq_len"] = 1_000_000
    manifest["manifest_sha256"] = _manifest_checksum(manifest)
    with open(manifest_path, "w") as handle:
        handle.write(json.dumps(manifest, indent=2, ensure_ascii=True) + "\n")

    config = write_config(tmp_path / "config.yaml", tiny_config(max_steps=1))
    run = tmp_path / "run"
    assert main(["pretrain", "--shards", shards, "--output", str(run), "--config", config]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "failed verification" in error and "max_seq_len: must be in [5, 8192]" in error
    assert not (run / "checkpoints").exists()
