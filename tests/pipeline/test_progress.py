"""Live progress of local curate runs, quiet start-up, and the Dataflow job's address.

The end-to-end tests run ``winnow curate`` in a subprocess with stderr a pipe (as in a log),
on a small sample with shards off, in process and with two worker processes."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from winnow.pipeline.progress import (
    ProgressView,
    Sample,
    StageCounts,
    clock,
    dataflow_job_lines,
)
from winnow.pipeline.quiet_logs import BeamNoiseFilter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample" / "extra.jsonl"
PLANTED = Path(__file__).parent / "planted_warning"  # its sitecustomize.py logs the warning
PLANTED_WARNING = "planted warning from the normalize stage"
WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
BEAM_NOISE = ("semi_persistent_directory", "Discarding unparseable args", "severity: WARN")


def curate(tmp_path: Path, *flags: str) -> tuple[str, dict]:
    """stderr of a curate run on the sample with shards off, and its report."""
    config = tmp_path / "config.yaml"
    config.write_text("shards:\n  enabled: false\n")
    run = tmp_path / "run"
    environment = {**os.environ, "WINNOW_TEST_PLANTED_WARNING": PLANTED_WARNING,
                   "PYTHONPATH": os.pathsep.join([str(PLANTED), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "winnow", "curate", str(SAMPLE), "--output", str(run),
         "--config", str(config), *flags],
        capture_output=True, text=True, env=environment, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return done.stderr, json.loads((run / "report.json").read_text())


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("progress: ")]


def funnel(line: str) -> dict[str, int]:
    """{stage: documents in} from a progress line's "name N docs M MB" parts."""
    stages = {}
    for part in line.split(" | ")[1:]:
        name, documents, unit = part.split()[:3]
        assert unit == "docs", line
        stages[name] = int(documents.replace(",", ""))
    return stages


def assert_progress_matches(stderr: str, report: dict) -> None:
    lines = progress_lines(stderr)
    assert lines[-1].startswith("progress: finished in "), stderr
    expected = {stage["name"]: stage["documents_in"] for stage in report["stages"]
                if stage["enabled"] and stage["documents_in"]}
    assert funnel(lines[-1]) == expected
    # --progress-every 0: a line every second before the last one; the run takes longer
    assert len(lines) > 1


def test_a_run_in_process_prints_progress_lines_that_match_the_report(tmp_path):
    stderr, report = curate(tmp_path, "--progress-every", "0")
    assert_progress_matches(stderr, report)
    assert PLANTED_WARNING in stderr  # a real warning still shows


def test_a_run_with_worker_processes_shows_progress_and_real_warnings_without_noise(tmp_path):
    stderr, report = curate(tmp_path, "--progress-every", "0", *WORKERS)
    assert_progress_matches(stderr, report)
    assert f"worker: {PLANTED_WARNING}" in stderr
    for noise in BEAM_NOISE:
        assert noise not in stderr


def test_verbose_shows_beam_noise_and_no_progress_shows_none(tmp_path):
    stderr, _ = curate(tmp_path, "--verbose", "--no-progress", *WORKERS)
    assert "semi_persistent_directory" in stderr
    assert not progress_lines(stderr)


@pytest.mark.parametrize("verbose", [False, True])
def test_beams_import_warning_without_the_gcp_extra_shows_only_with_verbose(tmp_path, verbose):
    # Without the gcp extra, importing Beam logs "apitools not found, and bigquery client
    # libraries are not available ...": once per command, before any pipeline exists.
    environment = {**os.environ, "WINNOW_TEST_NO_APITOOLS": "1",
                   "PYTHONPATH": os.pathsep.join([str(PLANTED), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "winnow", "curate", str(SAMPLE), "--output", str(tmp_path / "run"),
         "--dry_run=True", *(["--verbose"] if verbose else [])],
        capture_output=True, text=True, env=environment, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "dry run: built the job graph" in done.stdout
    assert ("apitools not found" in done.stderr) == verbose, done.stderr


def record(name: str, message: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, "x.py", 1, message, args, None)


def test_beam_noise_is_dropped_and_worker_records_become_their_message():
    noise = BeamNoiseFilter()
    assert not noise.filter(record("root", "apitools not found, and bigquery client ..."))
    dump = ('severity: WARN timestamp {   seconds: 1   nanos: 2 } message: "Discarding '
            'unparseable args: [\\\'--direct_runner_use_stacked_bundle\\\']" log_location: '
            '"apache_beam/options/pipeline_options.py:570" thread: "MainThread" ')
    service = "apache_beam.runners.portability.local_job_service"
    assert not noise.filter(record(service, "Worker: %s", dump))
    real = record(service, "Worker: %s", 'severity: WARN message: "disk \\"tmp\\" is full"')
    assert noise.filter(real)
    assert real.getMessage() == 'worker: disk "tmp" is full'
    assert noise.filter(record("apache_beam.io", "a real warning"))


def view_of(stages: list[str], **sizes) -> ProgressView:
    return ProgressView(stages, sizes.get("files", 1), sizes.get("stored", 1000), started=0.0)


def test_reading_is_estimated_from_the_stored_bytes_read():
    view = view_of(["read", "normalize"], stored=1000)
    view.update(Sample(2.0, {"read": StageCounts(10, 10, 500)}, 0, 100))
    view.update(Sample(10.0, {"read": StageCounts(50, 50, 2500)}, 0, 500))
    assert view.line() == ("progress: 10 s, running read | read 50 docs 0.0 MB "
                           "(50%, about 8 s left)")


def test_a_stage_is_estimated_once_the_stage_before_it_has_finished():
    view = view_of(["read", "normalize", "heuristics"])
    counts = {"read": StageCounts(100, 90, 10_000_000), "normalize": StageCounts(30, 30, 0),
              "heuristics": StageCounts(20, 10, 0)}
    view.update(Sample(10.0, {"read": StageCounts(100, 90, 10_000_000)}, 1, 1000))
    view.update(Sample(16.0, counts, 1, 1000))
    view.update(Sample(20.0, counts, 1, 1000))
    line = view.line()
    # normalize took in 30 of the 90 documents read: a third in 4 s; heuristics' input is
    # still coming (normalize has not finished), so it has no estimate
    assert "normalize 30 docs 0.0 MB (33%, about 8 s left)" in line
    assert "heuristics 20 docs 0.0 MB |" in line + " |"
    assert "read 100 docs 10.0 MB |" in line


def test_the_compact_line_shows_the_stages_running_now():
    view = view_of(["read", "normalize", "heuristics"])
    view.update(Sample(1.0, {"read": StageCounts(5, 5, 0)}, 1, 1000))
    view.update(Sample(2.0, {"read": StageCounts(5, 5, 0), "normalize": StageCounts(5, 5, 0),
                             "heuristics": StageCounts(2, 1, 0)}, 1, 1000))
    assert view.line(compact=True) == ("progress: 2 s, running normalize > heuristics | "
                                       "normalize 5 docs 0.0 MB | heuristics 2 docs 0.0 MB (40%)")


@pytest.mark.parametrize(("seconds", "text"), [(4.4, "4 s"), (185, "3:05"), (3723, "1:02:03")])
def test_clock(seconds, text):
    assert clock(seconds) == text


def test_a_dataflow_job_prints_its_console_page_and_counters_command():
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(["--project=acme", "--region=europe-west4"])
    result = SimpleNamespace(job_id=lambda: "2026-11-30_01_02_03-123")
    assert dataflow_job_lines(result, options) == [
        "Dataflow job 2026-11-30_01_02_03-123: https://console.cloud.google.com/dataflow/jobs/"
        "europe-west4/2026-11-30_01_02_03-123?project=acme",
        "counters: gcloud dataflow metrics list 2026-11-30_01_02_03-123 --project=acme "
        "--region=europe-west4 --source=user",
    ]
    assert dataflow_job_lines(SimpleNamespace(), options) == []  # a local run's result


def test_the_last_line_says_whether_the_run_finished():
    view = view_of(["read"])
    view.update(Sample(3.0, {"read": StageCounts(7, 7, 0)}, 1, 1000))
    assert view.line(finished=True) == "progress: finished in 3 s | read 7 docs 0.0 MB"
    assert view.line(finished=True, completed=False).startswith("progress: stopped after 3 s")


def test_a_worker_writes_its_live_and_finished_partials_and_the_launcher_sums_workers(
        tmp_path, monkeypatch):
    from winnow.pipeline import progress
    from winnow.pipeline.transforms import BundleStats

    folder = tmp_path / "counts"
    folder.mkdir()
    monkeypatch.setenv(progress.PROGRESS_DIR_ENV, str(folder))
    bundle = BundleStats()
    bundle.stage("heuristics").documents_in = 3
    list(bundle.flush())  # a bundle ended: written at once
    bundle.stage("heuristics").documents_in = 2  # the next bundle, still running
    bundle.stage("heuristics").bytes_in = 40
    progress.recorder().file_read(1000)
    with progress.recorder()._lock:
        progress.recorder()._write()
    # a second worker process's file
    (folder / "99999.json").write_text(json.dumps(
        {"stages": {"heuristics": [5, 4, 60], "read": [9, 9, 90]}, "files": [1, 500]}))
    sample = progress.read_counts(str(folder), at=1.0)
    assert sample.stages == {"heuristics": StageCounts(10, 4, 100),
                             "read": StageCounts(9, 9, 90)}
    assert (sample.files_read, sample.stored_bytes_read) == (2, 1500)
    progress._recorders.pop(str(folder))
    shutil.rmtree(folder)  # ends the recorder's thread


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_status_line_redrawn_in_place_and_a_last_line_of_its_own(tmp_path):
    from winnow.pipeline.progress import ProgressDisplay

    (tmp_path / "1.json").write_text(json.dumps(
        {"stages": {"read": [4, 4, 0]}, "files": [0, 10]}))
    terminal = Terminal()
    view = ProgressView(["read"], total_files=1, total_stored_bytes=40, started=time.monotonic())
    display = ProgressDisplay(str(tmp_path), view, {}, terminal, interval=30)
    display.start()
    display._sample()
    display._print(display.view.line(compact=True))
    display.finish(completed=True)
    status, last = terminal.getvalue().split("\r\x1b[K")[1:]
    assert status.endswith(" s, running read | read 4 docs 0.0 MB (25%)")
    assert last.startswith("progress: finished in ") and last.endswith(" | read 4 docs 0.0 MB\n")


def test_run_pipeline_prints_where_to_watch_a_dataflow_job(capsys):
    from apache_beam.options.pipeline_options import PipelineOptions

    from winnow.pipeline.curate import run_pipeline

    waited = []
    result = SimpleNamespace(job_id=lambda: "job-1", wait_until_finish=lambda: waited.append(1))
    options = PipelineOptions(["--project=acme", "--region=us-east1"])
    run_pipeline(SimpleNamespace(run=lambda: result, options=options), watch_workers=False)
    assert waited == [1]
    assert ("https://console.cloud.google.com/dataflow/jobs/us-east1/job-1?project=acme"
            in capsys.readouterr().err)


def test_a_log_record_erases_the_status_line_before_it_is_written(tmp_path):
    from winnow.pipeline.progress import CLEAR_LINE, ProgressDisplay

    terminal, handler = Terminal(), logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(handler)
    try:
        display = ProgressDisplay(str(tmp_path), view_of(["read"]), {}, terminal, interval=30)
        display.start()
        display._print("progress: 1 s, starting")
        logging.getLogger("winnow.test").warning("a real warning")
        display.finish(completed=True)
    finally:
        logging.getLogger().removeHandler(handler)
    assert terminal.getvalue().startswith(f"{CLEAR_LINE}progress: 1 s, starting{CLEAR_LINE}")
    assert handler.stream.getvalue() == "a real warning\n"
    logging.getLogger("winnow.test").warning("after the run")
    assert terminal.getvalue().endswith("\n")  # nothing erased once the run is over


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="Linux /proc only")
def test_reading_progress_counts_how_far_into_the_open_input_files(tmp_path):
    from winnow.pipeline.progress import local_input_sizes, open_input_offsets

    (tmp_path / "in.jsonl.gz").write_bytes(bytes(1000))
    (tmp_path / "other").write_bytes(bytes(1000))
    inputs = local_input_sizes([str(tmp_path / "in.jsonl.gz")])
    assert list(inputs.values()) == [1000]
    with open(tmp_path / "in.jsonl.gz", "rb", buffering=0) as read, \
            open(tmp_path / "other", "rb", buffering=0) as not_an_input:
        read.read(300)
        not_an_input.read(500)
        assert open_input_offsets(inputs, [os.getpid()]) == 300
