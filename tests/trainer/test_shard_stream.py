"""Pretraining on shards read through the shard cache (schemas/shard_cache.py): from gs:// in
the Cloud Storage emulator, or from a local folder with --shard-cache. The data order depends on
(seed, epoch, position) only, so such a run, stopped and resumed or not, logs exactly what a run
on the local folder logs."""

import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.trainer.helpers import (  # noqa: E402
    TIMING,
    read_metrics,
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
    write_config,
)
from winnow.cli import main  # noqa: E402
from winnow.trainer.checkpoints import latest_checkpoint, load_checkpoint  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.train import pretrain  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = tiny_config(grad_accum_steps=2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    """40 examples in two shards (25 + 15)."""
    return small_shards(tmp_path_factory.mktemp("shards"), tokenizer)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, shards):
    """The metrics of an uninterrupted run on the local folder, read in place (one thread, as
    the tests' runs: a module fixture runs before the autouse ``single_thread``)."""
    run = str(tmp_path_factory.mktemp("local") / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert pretrain(shards, run, config_from_dict(CONFIG)) == 6
    finally:
        torch.set_num_threads(threads)
    return read_metrics(run)


def cached_files(cache_root):
    (folder,) = [os.path.join(cache_root, name) for name in os.listdir(cache_root)
                 if not name.startswith(".")]
    return folder, sorted(name for name in os.listdir(folder) if not name.startswith("."))


def test_a_run_from_gs_stopped_and_resumed_logs_what_the_local_run_logs(
        tmp_path, shards, local_run, gcs):
    url = gcs.upload(shards, "stream/run/shards")
    config = write_config(tmp_path / "config.yaml", CONFIG)
    run, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    assert main(["pretrain", "--shards", gcs.url("stream/run"), "--output", run, "--config",
                 config, "--stop-after", "3", "--shard-cache", cache]) == 0
    checkpoint = load_checkpoint(latest_checkpoint(run))
    assert checkpoint["manifest"]["shards_dir"] == url  # the URL, not a local path
    # --resume takes the recorded URL; the cache already holds every file
    assert main(["pretrain", "--output", run, "--resume", "--shard-cache", cache]) == 0
    assert read_metrics(run) == local_run  # exactly: losses, accuracies, lr, grad norms
    folder, names = cached_files(cache)
    assert names == ["manifest.json", "shard-00000.index.npy", "shard-00000.tokens.bin",
                     "shard-00001.index.npy", "shard-00001.tokens.bin", "tokenizer.model"]
    assert os.listdir(os.path.join(folder, ".partial")) == []


def test_a_local_folder_through_the_cache_with_workers_logs_what_the_local_run_logs(
        tmp_path, shards, local_run):
    config = write_config(tmp_path / "config.yaml", {**CONFIG, "num_workers": 1})
    run, cache = str(tmp_path / "run"), str(tmp_path / "cache")
    assert main(["pretrain", "--shards", shards, "--output", run, "--config", config,
                 "--shard-cache", cache, "--shard-cache-limit", "1M"]) == 0
    assert read_metrics(run) == local_run
    assert cached_files(cache)[1][1:3] == ["shard-00000.index.npy", "shard-00000.tokens.bin"]


def test_a_corrupt_or_missing_remote_file_stops_the_run_naming_it(
        tmp_path, shards, gcs, capsys):
    broken = shutil.copytree(shards, tmp_path / "broken")
    with open(broken / "shard-00001.tokens.bin", "r+b") as handle:
        handle.write(b"\xff\xff")
    url = gcs.upload(broken, "stream/broken")
    config = write_config(tmp_path / "config.yaml", CONFIG)
    assert main(["pretrain", "--shards", url, "--output", str(tmp_path / "run"), "--config",
                 config, "--shard-cache", str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("winnow pretrain: gs://winnow-test/stream/broken/shard-00001."
                            "tokens.bin: sha256 ")
    assert "does not match the manifest's" in error

    gcs.client().bucket("winnow-test").blob("stream/broken/shard-00000.index.npy").delete()
    assert main(["pretrain", "--shards", url, "--output", str(tmp_path / "run2"), "--config",
                 config, "--shard-cache", str(tmp_path / "cache2")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "winnow pretrain: gs://winnow-test/stream/broken/shard-00000.index.npy: missing (the "
        "manifest lists it)")


def test_a_cache_limit_that_is_not_a_size_is_one_line(tmp_path, shards, capsys):
    assert main(["pretrain", "--shards", shards, "--output", str(tmp_path / "run"),
                 "--shard-cache-limit", "lots"]) == 2
    assert capsys.readouterr().err.strip() == (
        "winnow pretrain: --shard-cache-limit: 'lots' is not a size (e.g. 500M, 20G, 1.5T)")


def test_a_cache_limit_below_the_training_files_is_refused_before_training(
        tmp_path, shards, capsys):
    assert main(["pretrain", "--shards", shards, "--output", str(tmp_path / "run"),
                 "--shard-cache", str(tmp_path / "cache"), "--shard-cache-limit", "1K"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("winnow pretrain: the shard cache limit (1,024 bytes) is below the ")
    assert error.endswith("(tokens.bin and index.npy of every shard); raise --shard-cache-limit, "
                          "or train with shuffle: shards (the cache then holds two windows of "
                          "shards)")
    assert not os.path.exists(tmp_path / "run" / "metrics.jsonl")


def test_two_ranks_share_one_cache_and_match_one_process(tmp_path, shards, gcs):
    config = tiny_config(model={**CONFIG["model"], "dropout": 0.0, "attention_dropout": 0.0},
                         max_steps=2, eval_every=2, grad_accum_steps=2)
    pretrain(shards, str(tmp_path / "single"), config_from_dict(config))
    url = gcs.upload(shards, "stream/ddp/shards")
    path = write_config(tmp_path / "ddp.yaml", config)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "winnow", "pretrain", "--shards", url, "--output", str(tmp_path / "ddp"),
         "--config", path, "--shard-cache", str(tmp_path / "cache")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    single = read_metrics(tmp_path / "single", drop=TIMING + ("lr",))
    ddp = read_metrics(tmp_path / "ddp", drop=TIMING + ("lr",))
    assert [(e["step"], e["split"]) for e in ddp] == [(e["step"], e["split"]) for e in single]
    for one, two in zip(single, ddp, strict=True):
        for key, value in one.items():
            if isinstance(value, float):
                assert two[key] == pytest.approx(value, abs=1e-5), (one["step"], key)
    assert len(cached_files(tmp_path / "cache")[1]) == 6
