"""What live progress costs a local curate run, and proof that it changes no output.

    python bench/progress_overhead.py ../shared/corpora/python-doc.jsonl.gz --repeats 3
    python bench/progress_overhead.py ../shared/corpora/python-doc.jsonl.gz --repeats 3 \
        --workers 2

Runs the same curation with progress off and on (a line every 30 s, as in a log), alternating
(off, on, on, off, off, ...) so that a change in the machine's load, and whatever a run leaves
behind in this process for the next one, falls on both alike, and prints
each run's wall and CPU seconds (this process and its reaped children: the worker processes)
with the median of each arm, and the CPU seconds the progress code itself took in this
process (all of it with --workers 0; with workers, their recorders' writes are not in it).
Every run's kept/ and shards/ files must be byte-identical to the first run's, or it stops.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from winnow.pipeline.config import load_config
from winnow.pipeline.curate import run_curation
from winnow.pipeline.progress import ProgressDisplay, ProgressSettings, StageRecorder

PROGRESS_CPU = [0.0]
"""CPU seconds the progress code's own work took in this process (its threads' thread_time):
with --workers 0 everything runs here, so this is all of it."""


def counted(method):
    def timed(*args, **kwargs):
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            PROGRESS_CPU[0] += time.thread_time() - started
    return timed


StageRecorder._write = counted(StageRecorder._write)
ProgressDisplay._sample = counted(ProgressDisplay._sample)
ProgressDisplay._print = counted(ProgressDisplay._print)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def output_digest(run: Path) -> str:
    """sha256 over the names and bytes of every file in kept/ and shards/."""
    digest = hashlib.sha256()
    for path in sorted([*run.glob("kept/*"), *run.glob("shards/*")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def timed_run(inputs: list[str], beam_args: list[str], progress: ProgressSettings | None,
              config_path: str | None) -> tuple[float, float, str]:
    output = Path(tempfile.mkdtemp(prefix="winnow-bench-progress-"))
    try:
        wall, cpu, PROGRESS_CPU[0] = time.monotonic(), cpu_seconds(), 0.0
        run_curation(inputs, str(output / "run"), load_config(config_path), beam_args,
                     progress=progress)
        wall, cpu = time.monotonic() - wall, cpu_seconds() - cpu
        return wall, cpu, output_digest(output / "run")
    finally:
        shutil.rmtree(output, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each arm")
    parser.add_argument("--workers", type=int, default=0,
                        help="multi_processing workers; 0 (default) runs in process")
    parser.add_argument("--config", default=None)
    args = parser.parse_args()
    beam_args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
                 if args.workers else [])

    arms = {"off": None, "on": ProgressSettings(enabled=True, interval=30.0)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    first_digest = None
    for repeat in range(args.repeats):
        order = list(arms.items()) if repeat % 2 == 0 else list(arms.items())[::-1]
        for name, progress in order:
            wall, cpu, digest = timed_run(args.inputs, beam_args, progress, args.config)
            first_digest = first_digest or digest
            if digest != first_digest:
                raise SystemExit(f"progress {name}, run {repeat + 1}: outputs differ")
            times[name].append((wall, cpu))
            print(f"run {repeat + 1} progress {name:<3}  wall {wall:7.2f} s  cpu {cpu:7.2f} s"
                  f"  (progress code in this process: {PROGRESS_CPU[0]:.3f} s)", flush=True)
    for name, runs in times.items():
        print(f"median progress {name:<3}  wall {statistics.median(w for w, _ in runs):7.2f} s"
              f"  cpu {statistics.median(c for _, c in runs):7.2f} s")
    print(f"outputs (kept/, shards/) identical in all {2 * args.repeats} runs: "
          f"{first_digest[:16]}")


if __name__ == "__main__":
    main()
