"""Live progress of a local curation run, and where to watch a Dataflow job.

Beam's metrics reach the launcher only when a local run ends (with worker processes too), so
progress takes a side channel that works in process and across ``multi_processing`` workers:

    worker process (or the launcher itself, in process)         launcher
    every BundleStats (the report's own per-stage partials)      ProgressDisplay thread:
      -> StageRecorder, one per process and run:                   every second, sum the files,
         every second, and when a bundle ends, its counts  --->    draw a status line (tty) or
         replace RUN_FOLDER/<pid>.json (atomic rename)             print a line every N s (log)

The counts are the very StageStats the report is built from (documents and bytes into each
stage, documents out), so the last line matches the report. The folder reaches the workers
through the environment (``PROGRESS_DIR_ENV``): Beam starts worker processes with the
launcher's environment, and DoFns need no new argument. Counting costs nothing per document
beyond what the report already counts: a thread reads the live partials once a second.

Estimates: reading goes by stored bytes (input files finished, plus the kernel's file offset of
the inputs open in the launcher and its workers, ``/proc/PID/fdinfo``); a later stage by its
documents in against the documents out of the stage before it, once that one has finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from winnow.pipeline.filesystem import stored_size, stored_sizes

PROGRESS_DIR_ENV = "WINNOW_PROGRESS_DIR"
"""The run-private folder the workers write their counts into; unset: no progress counted."""
WRITE_SECONDS = 1.0
"""A worker replaces its counts file at most this often (and when a bundle ends)."""
TICK_SECONDS = 1.0
"""How often the launcher reads the counts (and redraws the status line on a terminal)."""
READ = "read"
CLEAR_LINE = "\r\x1b[K"
"""Back to the start of the terminal's line and erase it (ANSI)."""


# --- worker side -----------------------------------------------------------------------------

@dataclasses.dataclass
class StageCounts:
    """What the display shows of one stage; sums over workers and bundles."""

    documents_in: int = 0
    documents_out: int = 0
    bytes_in: int = 0

    def add(self, other) -> None:  # other: StageCounts or schemas.report.StageStats
        self.documents_in += other.documents_in
        self.documents_out += other.documents_out
        self.bytes_in += other.bytes_in


class StageRecorder:
    """One per process and run: the live per-stage partials of every ``BundleStats`` of this
    process plus the partials of the bundles that ended, written to ``<folder>/<pid>.json``.
    File shape: ``{"stages": {name: [documents_in, documents_out, bytes_in]},
    "files": [input files read, their stored bytes]}``."""

    def __init__(self, folder: str):
        self._path = Path(folder, f"{os.getpid()}.json")
        self._lock = threading.Lock()
        self._live = weakref.WeakSet()  # BundleStats objects, each with .partials()
        self._ended: dict[str, StageCounts] = {}
        self._files = [0, 0]
        self._written: str | None = None
        threading.Thread(target=self._write_every_second, name="winnow-progress",
                         daemon=True).start()

    def watch(self, bundle_stats) -> None:
        with self._lock:
            self._live.add(bundle_stats)

    def bundle_ended(self, partials: dict) -> None:
        """Count the partials a bundle hands on (``BundleStats.flush``) and write at once, so
        the file holds every finished bundle when the run ends."""
        with self._lock:
            for name, stats in partials.items():
                self._ended.setdefault(name, StageCounts()).add(stats)
            self._write()

    def file_read(self, stored_bytes: int) -> None:
        with self._lock:
            self._files[0] += 1
            self._files[1] += stored_bytes

    def _write_every_second(self) -> None:
        while self._path.parent.is_dir():  # the launcher removes it when the run ends
            time.sleep(WRITE_SECONDS)
            with self._lock:
                self._write()

    def _write(self) -> None:
        stages = {name: dataclasses.replace(counts) for name, counts in self._ended.items()}
        for bundle_stats in list(self._live):
            for name, stats in bundle_stats.partials().items():
                stages.setdefault(name, StageCounts()).add(stats)
        text = json.dumps({"stages": {name: dataclasses.astuple(counts)
                                      for name, counts in stages.items()},
                           "files": self._files})
        if text == self._written:
            return
        partial = self._path.with_name(f".{self._path.name}.tmp")
        try:
            partial.write_text(text)
            os.replace(partial, self._path)
        except OSError:  # the launcher removed the folder: the run is over
            return
        self._written = text


_recorders: dict[str, StageRecorder] = {}
_recorders_lock = threading.Lock()


def recorder() -> StageRecorder | None:
    """This process's recorder for the run under way, when the launcher shows progress."""
    folder = os.environ.get(PROGRESS_DIR_ENV)
    if not folder:
        return None
    with _recorders_lock:
        if folder not in _recorders:
            _recorders[folder] = StageRecorder(folder)
        return _recorders[folder]


# --- launcher side ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProgressSettings:
    """How ``winnow curate`` shows a local run's progress (on stderr)."""

    enabled: bool = True
    interval: float = 30.0
    """Seconds between lines when stderr is not a terminal (a log); a terminal gets a status
    line redrawn every second."""


@dataclasses.dataclass
class Sample:
    """The counts summed over every worker at one moment."""

    at: float
    stages: dict[str, StageCounts]
    files_read: int = 0
    stored_bytes_read: int = 0
    """Of the files read whole, plus how far into the open ones."""


def read_counts(folder: str, at: float) -> Sample:
    sample = Sample(at, {})
    for path in Path(folder).glob("*.json"):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):  # replaced or removed as we read; next tick
            continue
        for name, values in counts["stages"].items():
            sample.stages.setdefault(name, StageCounts()).add(StageCounts(*values))
        sample.files_read += counts["files"][0]
        sample.stored_bytes_read += counts["files"][1]
    return sample


def open_input_offsets(inputs: dict[str, int], pids: list[int]) -> int:
    """Bytes read so far of the input files open in ``pids``: the kernel's offset of each
    descriptor that names one of ``inputs`` (real path -> size). Linux; 0 elsewhere."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for descriptor in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(descriptor.path) in inputs:
                        total += _offset(pid, descriptor.name)
    return total


def _offset(pid: int, descriptor: str) -> int:
    for line in Path(f"/proc/{pid}/fdinfo/{descriptor}").read_text().splitlines():
        if line.startswith("pos:"):
            return int(line.split()[1])
    return 0


def local_input_sizes(paths: list[str]) -> dict[str, int]:
    """Real path -> size of the local inputs (others cannot be followed by file offset)."""
    sizes = {}
    for path in paths:
        if "://" not in path and (size := stored_size(path)):
            sizes[os.path.realpath(path)] = size
    return sizes


def stored_total(paths: list[str], local_sizes: dict[str, int]) -> int:
    """Bytes of all inputs as stored: ``local_sizes`` (``local_input_sizes``) and those on
    gs:// (or another Beam filesystem), whose reading counts whole files (no offsets)."""
    remote = [path for path in paths if "://" in path]
    return sum(local_sizes.values()) + (sum(stored_sizes(remote).values()) if remote else 0)


class ProgressView:
    """Turns successive samples into lines: what runs now, counts, and estimates."""

    def __init__(self, stages: list[str], total_files: int, total_stored_bytes: int,
                 started: float):
        self.stages = stages
        self.total_files = total_files
        self.total_stored_bytes = total_stored_bytes
        self.started = started
        self._first_seen: dict[str, float] = {}
        self._previous: Sample | None = None
        self._running: list[str] = []

    def update(self, sample: Sample) -> None:
        for name, counts in sample.stages.items():
            if counts.documents_in or name == READ and sample.files_read:
                self._first_seen.setdefault(name, sample.at)
        before = self._previous.stages if self._previous else {}
        moved = [name for name in self.stages if name in sample.stages and
                 sample.stages[name].documents_in and sample.stages[name] != before.get(name)]
        if moved:
            self._running = moved
        self._previous = sample

    def line(self, finished: bool = False, compact: bool = False, completed: bool = True) -> str:
        """Elapsed time, the stages running now, and each stage's documents and MB in (with
        an estimate where one can be made); ``compact``: only reading (until it ends) and
        the stages running now, for a status line."""
        sample = self._previous or Sample(self.started, {})
        elapsed = clock(sample.at - self.started)
        shown = [name for name in self.stages if name in sample.stages and
                 (sample.stages[name].documents_in or name == READ)]
        if compact:
            shown = [name for name in shown if name in self._running or
                     name == READ and not self._finished(READ, sample)]
        parts = [f"{name} {self._stage_text(name, sample, estimate=not finished)}"
                 for name in shown]
        if finished:
            head = f"progress: {'finished in' if completed else 'stopped after'} {elapsed}"
        elif self._running:
            head = f"progress: {elapsed}, running {' > '.join(self._running)}"
        else:
            head = f"progress: {elapsed}, starting"
        return " | ".join([head, *parts])

    def _stage_text(self, name: str, sample: Sample, estimate: bool) -> str:
        counts = sample.stages[name]
        text = f"{counts.documents_in:,} docs {counts.bytes_in / 1e6:.1f} MB"
        guess = self._estimate(name, sample) if estimate else None
        return f"{text} ({guess})" if guess else text

    def _estimate(self, name: str, sample: Sample) -> str | None:
        """"62%, about 40 s left" where the share done can be known, else None."""
        done_share = self._done_share(name, sample)
        if done_share is None or not 0 < done_share < 1:
            return None
        spent = sample.at - self._first_seen.get(name, sample.at)
        left = spent * (1 - done_share) / done_share
        return f"{done_share:.0%}, about {clock(left)} left" if spent > 0 else f"{done_share:.0%}"

    def _done_share(self, name: str, sample: Sample) -> float | None:
        if name == READ:
            if self._finished(READ, sample) or not self.total_stored_bytes:
                return None
            return sample.stored_bytes_read / self.total_stored_bytes
        before = self.stages[self.stages.index(name) - 1]
        if not self._finished(before, sample):
            return None
        expected = sample.stages.get(before, StageCounts()).documents_out
        return sample.stages[name].documents_in / expected if expected else None

    def reading_finished(self, sample: Sample) -> bool:
        return self._finished(READ, sample)

    def _finished(self, name: str, sample: Sample) -> bool:
        """Every document this stage will see has come in: reading has read every file; a
        stage has taken in all that the finished stage before it let out."""
        if name == READ:
            return sample.files_read >= self.total_files
        before = self.stages[self.stages.index(name) - 1]
        return (self._finished(before, sample) and
                sample.stages.get(name, StageCounts()).documents_in
                >= sample.stages.get(before, StageCounts()).documents_out)


def clock(seconds: float) -> str:
    """12 s, 3:05, 1:02:03."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressDisplay:
    """The launcher's thread: reads the workers' counts every ``TICK_SECONDS`` and shows them
    on ``stream``, a status line redrawn in place on a terminal, else a line every
    ``interval`` seconds; one last line when the run ends."""

    def __init__(self, folder: str, view: ProgressView, input_sizes: dict[str, int],
                 stream: IO[str], interval: float):
        self.folder = folder
        self.view = view
        self.input_sizes = input_sizes
        self.stream = stream
        self.terminal = stream.isatty()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._show, name="winnow-progress-display",
                                        daemon=True)

    def start(self) -> None:
        if self.terminal:  # a log record starts on a clean line, not after the status line
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._clear_status_line)
        self._thread.start()

    def finish(self, completed: bool) -> None:
        """Stop the thread and print the last counts, as a line of its own."""
        self._stop.set()
        self._thread.join()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._clear_status_line)
        self._sample()
        self._print(self.view.line(finished=True, completed=completed), final=True)

    def _clear_status_line(self, record: logging.LogRecord) -> bool:
        """A logging filter with one effect: the status line is erased (the next tick draws
        it again below the record)."""
        self.stream.write(CLEAR_LINE)
        return True

    def _show(self) -> None:
        last_line = time.monotonic()
        while not self._stop.wait(TICK_SECONDS):
            self._sample()
            if self.terminal or time.monotonic() - last_line >= self.interval:
                last_line = time.monotonic()
                self._print(self.view.line(compact=self.terminal))

    def _sample(self) -> None:
        sample = read_counts(self.folder, time.monotonic())
        if self.input_sizes and not self.view.reading_finished(sample):
            from winnow.pipeline.local_workers import worker_processes

            pids = [os.getpid(), *worker_processes(os.getpid())[0]]
            sample.stored_bytes_read += open_input_offsets(self.input_sizes, pids)
        self.view.update(sample)

    def _print(self, line: str, final: bool = False) -> None:
        if not self.terminal:
            print(line, file=self.stream, flush=True)
            return
        width = shutil.get_terminal_size().columns - 1
        self.stream.write(f"{CLEAR_LINE}{line}\n" if final else f"{CLEAR_LINE}{line[:width]}")
        self.stream.flush()


@contextlib.contextmanager
def local_progress(settings: ProgressSettings | None, stages: list[str], paths: list[str],
                   stream: IO[str] | None = None) -> Iterator[None]:
    """Show the progress of the local run inside the block (nothing when ``settings`` is None
    or disabled): a run-private folder for the workers' counts, named to them through the
    environment, and the display thread; both go when the block ends."""
    if settings is None or not settings.enabled:
        yield
        return
    folder = tempfile.mkdtemp(prefix="winnow-progress-")
    started = time.monotonic()
    input_sizes = local_input_sizes(paths)
    view = ProgressView(stages, len(paths), stored_total(paths, input_sizes), started)
    display = ProgressDisplay(folder, view, input_sizes, stream or sys.stderr, settings.interval)
    previous = os.environ.get(PROGRESS_DIR_ENV)
    os.environ[PROGRESS_DIR_ENV] = folder
    display.start()
    completed = False
    try:
        yield
        completed = True
    finally:
        _restore_env(previous)
        display.finish(completed)
        shutil.rmtree(folder, ignore_errors=True)
        with _recorders_lock:
            _recorders.pop(folder, None)


def _restore_env(previous: str | None) -> None:
    if previous is None:
        os.environ.pop(PROGRESS_DIR_ENV, None)
    else:
        os.environ[PROGRESS_DIR_ENV] = previous


# --- Dataflow --------------------------------------------------------------------------------

def dataflow_job_lines(result: Any, options) -> list[str]:
    """Where to watch a submitted Dataflow job: its console page and the command that lists
    its counters (winnow's are the ``winnow`` namespace's, ``--source=user``). Empty for a
    result without a job id (any other runner)."""
    job_id = getattr(result, "job_id", None)
    if not callable(job_id):
        return []
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    cloud = options.view_as(GoogleCloudOptions)
    return [
        f"Dataflow job {job_id()}: https://console.cloud.google.com/dataflow/jobs/"
        f"{cloud.region}/{job_id()}?project={cloud.project}",
        f"counters: gcloud dataflow metrics list {job_id()} --project={cloud.project} "
        f"--region={cloud.region} --source=user",
    ]
