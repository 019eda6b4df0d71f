"""A Beam worker process killed during a local multi-process run (``kill -9``, as the kernel's
out-of-memory killer does) ends the run at once with a one-line error, publishes nothing and
leaves no worker running. Before, the launcher waited for the dead worker forever."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from winnow.pipeline.local_workers import watching_possible, worker_processes

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "sample"
RUN_ENDS_WITHIN_SECONDS = 60
"""A bound, not a speed figure: the launcher waited 284 s and more before the fix."""

pytestmark = pytest.mark.skipif(not watching_possible(),
                                reason="needs /proc/PID/task/TID/children (Linux)")


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def started_workers(launcher: subprocess.Popen, count: int) -> set[int]:
    """The launcher's ``count`` worker processes, once each runs more than one thread (it has
    imported Beam and started its gRPC client): polled in /proc, bounded by the run itself."""
    while launcher.poll() is None:
        workers = worker_processes(launcher.pid)[0]
        if len(workers) == count and all(_threads(pid) > 1 for pid in workers):
            return workers
        try:
            launcher.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError(f"the run ended (exit {launcher.returncode}) before its workers started")


def _threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("Threads:")))


def stop(pids: set[int]) -> None:
    for pid in sorted(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def test_a_killed_worker_ends_the_run_with_one_clear_line(tmp_path):
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "winnow", "curate", str(SAMPLE), "--output", str(run_dir),
         "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        workers = started_workers(launcher, 2)
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        _, stderr = launcher.communicate(timeout=RUN_ENDS_WITHIN_SECONDS)
    finally:
        if launcher.poll() is None:  # still hanging: stop what this test started
            stop(workers | worker_processes(launcher.pid)[1] | {launcher.pid})
            launcher.wait()
    assert launcher.returncode == 2, stderr
    assert stderr.splitlines()[-1] == (
        f"winnow curate: a Beam worker process (pid {killed}) died with signal 9 (SIGKILL; "
        "often the kernel's out-of-memory killer): the run was stopped and nothing was "
        "published (no report.json was written)")
    assert "Traceback" not in stderr
    assert not (run_dir / "report.json").exists()
    assert [pid for pid in workers if running(pid)] == []
