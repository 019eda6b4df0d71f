"""Local multi-process runs: a Beam worker process that dies stops the run with a clear error.

With ``--direct_running_mode=multi_processing``, Beam 2.77's FnApiRunner starts each SDK worker as
``/bin/sh -c "python -m apache_beam.runners.worker.sdk_worker_main"`` from a thread named
``run_worker``. That thread waits on the shell and, when it exits non-zero, raises
``RuntimeError('Worker subprocess exited with return code N')`` (the shell's code: 128 + the
signal when the worker was killed), and nothing else notices: the runner went on waiting for the
dead worker's answers (still waiting 284 s after a ``kill -9``, and after an out-of-memory kill).

So the launcher runs the pipeline on a helper thread and waits itself, watching two things:
Beam's report of a worker exit (through ``threading.excepthook``, installed for the run only),
and, every ``POLL_SECONDS``, the worker processes below the launcher in ``/proc`` (to name the
one that died and to stop the others). On a death it raises ``WorkerDied``; unless the run
completed, it kills the workers still running (after a death, a failure or a Ctrl-C), so
nothing is left behind. The helper thread, stuck in the runner after a death, is a daemon and
ends with the process. Linux only (``/proc``); elsewhere the run is not watched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import grpc

WORKER_MODULE = "apache_beam.runners.worker.sdk_worker_main"
"""The module every Beam SDK worker process runs (``python -m``)."""
BEAM_WORKER_THREAD = "run_worker"
"""Name of the launcher thread that starts and waits on one worker process (Beam's
``SubprocessSdkWorkerHandler``)."""
BEAM_WORKER_EXIT = re.compile(r"Worker subprocess exited with return code (-?\d+)")
POLL_SECONDS = 0.1
"""How often the launcher lists its worker processes while it waits for the run."""
STOP_SECONDS = 10.0
"""At most this long to wait for Beam's threads to see their (killed) workers exit."""
SHELL_SIGNAL_BASE = 128
"""A POSIX shell exits with 128 + N when its command was killed by signal N."""
SIGNAL_CAUSES = {signal.SIGKILL: "often the kernel's out-of-memory killer",
                 signal.SIGSEGV: "a crash in native code"}


class WorkerDied(RuntimeError):
    """A Beam worker process died during a local run; the message says which and how."""


def watching_possible() -> bool:
    """Whether this system lists a process's children in /proc (Linux with the usual
    CONFIG_PROC_CHILDREN)."""
    return any(Path("/proc/self/task").glob("*/children"))


def run_watching_workers(run: Callable[[], object]) -> None:
    """Call ``run`` (which blocks until a local multi-process run ends) on a helper thread and
    wait for it. Raises ``WorkerDied`` as soon as a Beam worker process dies, after killing the
    remaining ones; re-raises what ``run`` raised otherwise."""
    watch = _RunWatch()
    runner = threading.Thread(target=watch.run, args=(run,), name="winnow-run", daemon=True)
    seen_workers: set[int] = set()
    with watch.installed():
        try:
            runner.start()
            while not watch.ended.wait(POLL_SECONDS):
                seen_workers |= worker_processes(os.getpid())[0]
            if watch.completed:  # a worker lost as Beam stopped them all changes nothing
                return
            if watch.failures and not watch.exit_codes:
                _join_beam_worker_threads()  # a dead worker may be why the run failed
            if watch.exit_codes:
                dead = sorted(seen_workers - watch.alive_at_death)
                raise WorkerDied(death_message(dead, watch.exit_codes[0]))
            if watch.failures:
                raise watch.failures[0]
        finally:
            if not watch.completed:  # a dead worker, a failure or the user's Ctrl-C
                _stop_workers(os.getpid())


class _RunWatch:
    """What the helper thread running the pipeline and Beam's threads report to the launcher.

    A dead worker also breaks its gRPC streams, and Beam's stream threads then print tracebacks
    (thread exceptions, and data-plane errors logged with one) around the time of the death,
    before or after it. Those are held: dropped when a worker died (the one-line error says
    what happened), shown at the end otherwise."""

    STREAM_LOGGERS = ("apache_beam.runners.worker.data_plane",
                      "apache_beam.runners.portability.fn_api_runner.worker_handlers")

    def __init__(self):
        self.ended = threading.Event()
        self.completed = False
        self.failures: list[BaseException] = []
        self.exit_codes: list[int] = []  # of dead workers, as Beam's run_worker threads say
        self.alive_at_death: set[int] = set()  # worker pids when the first death was reported
        self._held_thread_errors: list = []
        self._held_records: list[logging.LogRecord] = []
        self._previous_hook = threading.excepthook

    def run(self, run: Callable[[], object]) -> None:
        try:
            run()
            self.completed = True
        except BaseException as error:  # handed to the waiting thread, which raises it
            self.failures.append(error)
        finally:
            self.ended.set()

    @contextlib.contextmanager
    def installed(self):
        """Receive thread exceptions and Beam's stream logs for the run, then show what was
        held if no worker died."""
        threading.excepthook = self._thread_exception
        for name in self.STREAM_LOGGERS:
            logging.getLogger(name).addFilter(self)
        try:
            yield self
        finally:
            threading.excepthook = self._previous_hook
            for name in self.STREAM_LOGGERS:
                logging.getLogger(name).removeFilter(self)
            if not self.exit_codes:
                for args in self._held_thread_errors:
                    self._previous_hook(args)
                for record in self._held_records:
                    logging.getLogger(record.name).handle(record)

    def _thread_exception(self, args) -> None:
        code = beam_worker_exit_code(args)
        if code is not None:
            if not self.exit_codes:  # before the run's end stops the other workers
                self.alive_at_death = worker_processes(os.getpid())[0]
            self.exit_codes.append(code)
            self.ended.set()
        elif self.exit_codes or _broken_stream(args.exc_value):
            self._held_thread_errors.append(args)
        else:
            self._previous_hook(args)

    def filter(self, record: logging.LogRecord) -> bool:
        """A logging filter: hold Beam's records of a broken worker stream."""
        if record.exc_info and _broken_stream(record.exc_info[1]):
            self._held_records.append(record)
            return False
        return True


def _broken_stream(error: BaseException | None) -> bool:
    """Whether ``error`` or an exception it arose from is a gRPC error (a worker's stream)."""
    while error is not None:
        if isinstance(error, grpc.RpcError):
            return True
        error = error.__cause__ or error.__context__
    return False


def beam_worker_exit_code(args) -> int | None:
    """The exit code in Beam's report of a worker process that exited non-zero, from a
    ``threading.excepthook`` call; None for any other thread exception."""
    if args.thread is None or args.thread.name != BEAM_WORKER_THREAD:
        return None
    match = BEAM_WORKER_EXIT.fullmatch(str(args.exc_value))
    return int(match.group(1)) if isinstance(args.exc_value, RuntimeError) and match else None


def death_message(dead_pids: list[int], exit_code: int) -> str:
    """One line: which worker process died and how, with the likely cause."""
    who = "a Beam worker process"
    if dead_pids:
        who += f" (pid {', '.join(map(str, dead_pids))})"
    return f"{who} {describe_exit(exit_code)}"


def describe_exit(exit_code: int) -> str:
    """A worker's exit code in words, with the likely cause of a deadly signal."""
    number = exit_signal(exit_code)
    if number is None:
        return f"exited with code {exit_code}"
    try:
        killed_by = signal.Signals(number)
    except ValueError:
        return f"died with signal {number}"
    cause = SIGNAL_CAUSES.get(killed_by)
    return f"died with signal {number} ({killed_by.name}{'; ' + cause if cause else ''})"


def exit_signal(exit_code: int) -> int | None:
    """The signal that killed the worker: Python reports -N, the shell Beam starts it in 128 + N."""
    if exit_code < 0:
        return -exit_code
    if exit_code > SHELL_SIGNAL_BASE:
        return exit_code - SHELL_SIGNAL_BASE
    return None


def worker_processes(launcher_pid: int) -> tuple[set[int], set[int]]:
    """(worker pids, shell pids): the Beam SDK worker processes below ``launcher_pid`` and the
    shells Beam started them in (its children whose command runs the worker module)."""
    workers, shells = set(), set()
    for child in _children(launcher_pid):
        arguments = _command_line(child)
        if WORKER_MODULE in arguments:
            workers.add(child)
        elif any(WORKER_MODULE in argument for argument in arguments):
            shells.add(child)
            workers |= {grandchild for grandchild in _children(child)
                        if WORKER_MODULE in _command_line(grandchild)}
    return workers, shells


def _children(pid: int) -> set[int]:
    children = set()
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children.update(int(child) for child in listing.read_text().split())
        except OSError:  # the thread or process ended while we read
            continue
    return children


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode("utf-8", "replace").split("\0")


def _stop_workers(launcher_pid: int) -> None:
    """Kill the worker processes (and their shells) still running below the launcher, then let
    Beam's threads see them exit, so the process can end and nothing is left running."""
    workers, shells = worker_processes(launcher_pid)
    for pid in sorted(workers | shells):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    _join_beam_worker_threads()


def _join_beam_worker_threads() -> None:
    for thread in threading.enumerate():
        if thread.name == BEAM_WORKER_THREAD:
            thread.join(STOP_SECONDS)
