"""The launcher's watch over local worker processes (pipeline.local_workers), without Beam:
Beam's report of a dead worker is a ``run_worker`` thread raising, which these tests imitate."""

import threading

import pytest

from winnow.pipeline.local_workers import (
    BEAM_WORKER_THREAD,
    WorkerDied,
    describe_exit,
    run_watching_workers,
)


@pytest.mark.parametrize(("exit_code", "words"), [
    (137, "died with signal 9 (SIGKILL; often the kernel's out-of-memory killer)"),
    (-9, "died with signal 9 (SIGKILL; often the kernel's out-of-memory killer)"),
    (139, "died with signal 11 (SIGSEGV; a crash in native code)"),
    (143, "died with signal 15 (SIGTERM)"),
    (1, "exited with code 1"),
])
def test_exit_codes_in_words(exit_code, words):
    # Beam starts workers in a shell, which reports a signal N as 128 + N; Python as -N.
    assert describe_exit(exit_code) == words


def beam_reports_worker_exit(message: str) -> None:
    def worker_thread():
        raise RuntimeError(message)

    thread = threading.Thread(target=worker_thread, name=BEAM_WORKER_THREAD)
    thread.start()
    thread.join()


def test_a_dead_worker_stops_a_run_that_would_wait_forever():
    release = threading.Event()

    def hanging_run():
        beam_reports_worker_exit("Worker subprocess exited with return code 137")
        release.wait()  # the runner waiting for the dead worker's answer

    try:
        with pytest.raises(WorkerDied, match=r"^a Beam worker process died with signal 9 "):
            run_watching_workers(hanging_run)
    finally:
        release.set()


def test_a_failed_run_raises_its_own_error_and_other_thread_errors_still_show(monkeypatch):
    shown = []
    monkeypatch.setattr(threading, "excepthook", shown.append)

    def failing_run():
        beam_reports_worker_exit("not a worker exit")
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        run_watching_workers(failing_run)
    assert [str(args.exc_value) for args in shown] == ["not a worker exit"]
    assert threading.excepthook == shown.append  # the run's hook is gone
