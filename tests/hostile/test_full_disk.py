"""Issue 14, item 8: a full disk during training must not break resume for good.

The real full disk is a small tmpfs (needs root and a kernel that lets this container mount;
the tests skip cleanly elsewhere); the torn-line and stray-temporary cases also run without
one, on files made the way a full disk or a kill -9 leaves them.
"""

import errno
import glob
import io
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from tests.tiny_tokenizer import train_tokenizer  # noqa: E402
from tests.trainer.helpers import (  # noqa: E402
    read_metrics,
    single_thread,  # noqa: F401 (autouse fixture)
    small_shards,
    tiny_config,
)
from winnow.cli import main  # noqa: E402
from winnow.trainer.checkpoints import latest_checkpoint  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.metrics import MetricsLog  # noqa: E402
from winnow.trainer.train import pretrain  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CONFIG = tiny_config(max_steps=4, eval_every=2, checkpoint_every=1)
"""4 steps, a checkpoint (about 1 MB) after each."""


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("full-disk")
    return small_shards(folder / "shards", train_tokenizer(folder / "spm"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, shards) -> list[dict]:
    """The metrics of the run never interrupted, that every resumed run must reproduce."""
    run = str(tmp_path_factory.mktemp("uninterrupted") / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as single_thread does for the tests (it runs after this)
    try:
        pretrain(shards, run, config_from_dict(CONFIG))
    finally:
        torch.set_num_threads(threads)
    return read_metrics(run)


@pytest.fixture
def small_disk(tmp_path):
    """A function mounting a tmpfs of a given size; unmounted at teardown."""
    mounted = []

    def mount(size: str):
        if sys.platform != "linux" or os.geteuid() != 0:
            pytest.skip("a tmpfs needs Linux and root")
        path = tmp_path / f"disk-{len(mounted)}"
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                 str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        # lazily: a failed test's traceback may still hold a file open there
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def stray_temporaries(run) -> list[str]:
    return glob.glob(os.path.join(run, "**", "*.tmp-*"), recursive=True)


def fill(path) -> None:
    """Write zeros into ``path`` until the disk is full."""
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
        except OSError as error:
            assert error.errno == errno.ENOSPC


def test_a_disk_filled_by_a_checkpoint_leaves_no_temporary_and_resume_continues(
        small_disk, shards, uninterrupted):
    run = str(small_disk("4m") / "run")  # room for three checkpoints, not four
    with pytest.raises(OSError) as error:
        pretrain(shards, run, config_from_dict(CONFIG))
    assert error.value.errno == errno.ENOSPC
    assert os.path.basename(latest_checkpoint(run)) == "step-000003.pt"
    assert stray_temporaries(run) == []  # the half-written step 4 is gone

    for step in (1, 2):  # the user frees room by deleting old checkpoints
        for suffix in ("", ".sha256"):
            os.remove(os.path.join(run, "checkpoints", f"step-{step:06d}.pt{suffix}"))
    assert main(["pretrain", "--output", run, "--resume"]) == 0
    assert read_metrics(run) == uninterrupted


def test_a_metrics_line_torn_by_a_full_disk_is_dropped_on_resume(
        small_disk, shards, uninterrupted, capsys):
    disk = small_disk("8m")
    run = str(disk / "run")
    pretrain(shards, run, config_from_dict(CONFIG), stop_after=2)
    log = MetricsLog(run, 2, 4, enabled=True)  # as the resumed run appends its next entries
    metrics = os.path.join(run, "metrics.jsonl")
    with open(metrics, "a") as handle:  # blank padding (skipped by every reader) so that the
        # file's last page has 40 bytes left, then no free page: the next entry tears there
        handle.write(" " * ((PAGE - 40 - os.path.getsize(metrics) - 1) % PAGE) + "\n")
    fill(disk / "filler")
    with pytest.raises(OSError, match="No space left"):
        log.write({**uninterrupted[3], "tokens_per_s": 1.0, "mfu": None})
    with open(metrics, "rb") as handle:
        assert not handle.read().endswith(b"\n")  # the line really is torn
    os.remove(disk / "filler")
    log.close()
    capsys.readouterr()

    assert main(["pretrain", "--output", run, "--resume"]) == 0
    assert f"warning: {metrics}: dropped 1 torn line(s)" in capsys.readouterr().err
    assert read_metrics(run) == uninterrupted


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path, shards, uninterrupted, capsys):
    run = str(tmp_path / "run")
    pretrain(shards, run, config_from_dict(CONFIG), stop_after=2)
    with open(os.path.join(run, "metrics.jsonl"), "a") as handle:
        handle.write(json.dumps(uninterrupted[3])[:25])  # what a full disk leaves
    capsys.readouterr()
    assert main(["pretrain", "--output", run, "--resume"]) == 0
    assert "dropped 1 torn line(s)" in capsys.readouterr().err
    assert read_metrics(run) == uninterrupted


def test_temporaries_a_killed_run_left_are_removed_on_the_next_start(
        tmp_path, shards, uninterrupted, capsys):
    run = str(tmp_path / "run")
    pretrain(shards, run, config_from_dict(CONFIG), stop_after=2)
    left = [os.path.join(run, "checkpoints", "step-000003.pt.tmp-4242"),
            os.path.join(run, "metrics.jsonl.tmp-4242")]
    for path in left:  # a kill -9 between the write and the rename
        with open(path, "wb") as handle:
            handle.write(b"\0" * 1000)
    capsys.readouterr()
    assert main(["pretrain", "--output", run, "--resume"]) == 0
    assert stray_temporaries(run) == []
    error = capsys.readouterr().err
    assert f"removed 1 temporary file(s) an interrupted run left in {run}: " in error
    assert "step-000003.pt.tmp-4242" in error
    assert read_metrics(run) == uninterrupted


def test_curate_overwrite_removes_the_report_temporaries_a_killed_run_left(tmp_path):
    from tests.pipeline.bad_inputs import GOOD_TEXT
    from winnow.pipeline.config import config_from_dict as curate_config
    from winnow.pipeline.curate import run_curation

    (tmp_path / "in.jsonl").write_text(json.dumps({"text": GOOD_TEXT}) + "\n")
    run = tmp_path / "run"
    run_curation([str(tmp_path / "in.jsonl")], str(run), curate_config({}))
    (run / "report.json.tmp-0123456789abcdef").write_text('{"documents": {"inp')
    run_curation([str(tmp_path / "in.jsonl")], str(run), curate_config({}), overwrite=True)
    assert sorted(path.name for path in run.glob("*.tmp-*")) == []
    assert json.loads((run / "report.json").read_text())["documents"]["input"] == 1


def test_a_curation_file_write_that_fills_the_disk_leaves_no_temporary(tmp_path, monkeypatch):
    from winnow.pipeline import writers

    class FullDisk(io.FileIO):
        def write(self, data):  # half the bytes reach the disk, then it is full
            super().write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers.FileSystems, "create", lambda path: FullDisk(path, "w"))
    with pytest.raises(OSError, match="No space left"):
        writers.write_atomically(str(tmp_path / "report.json"), b"{}" * 100)
    assert os.listdir(tmp_path) == []
