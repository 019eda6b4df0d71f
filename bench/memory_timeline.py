"""Where the memory of the default local run goes: PSS over time against the fused stage running.

    python bench/memory_timeline.py INPUT --output RUN [--interval 0.2] [--census-at REGEX] \
        [--tracemalloc] [--top 25] [--json PATH] [-- extra winnow curate arguments]

Runs ``winnow curate INPUT --output RUN --overwrite`` in this process (Beam's FnApiRunner,
``in_memory``: every fused stage runs here, one at a time), while a thread reads
``/proc/self/smaps_rollup`` every ``--interval`` seconds. ``FnApiRunner._execute_bundle`` is
wrapped (here only, not in winnow) to log, for each bundle: its stage, start and end, the PSS
at both ends and the highest seen while it ran; the bytes held in the runner's buffers (the
encoded PCollections waiting for their consuming stage, and GroupByKey tables), with the
largest of them when they changed by 10 MB; the runner's state (committed side inputs); and
glibc's heap (``mallinfo2``: in use and free). ``--census-at REGEX``: before each stage whose
name matches, the live Python objects by type. ``--tracemalloc``: a snapshot at the highest
bundle-end PSS (traced from the first bundle on; slows the run 3-10x), its top lines.

Native memory (what the census does not see: Beam's Cython output streams, SentencePiece,
protobuf arenas) is best seen with heaptrack (Debian's ``heaptrack``), whose peak lists what
was alive at the peak: ``heaptrack -o OUT python -m winnow curate INPUT --output RUN`` then
``heaptrack_print -f OUT.zst --print-peaks 1 --peak-limit 25``.

The inputs: ``bench/scaling.py --keep-dir DIR --sizes 40`` builds them (DIR/input/40mb), or
any folder ``winnow curate`` reads.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import sys
import threading
import time

MB = 1e6


def pss_bytes() -> int:
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


class Sampler(threading.Thread):
    """PSS every ``interval`` seconds; ``window_peak`` is the highest since the last reset."""

    def __init__(self, interval: float):
        super().__init__(daemon=True)
        self.interval, self.done = interval, threading.Event()
        self.samples: list[tuple[float, int, str]] = []
        self.window_peak, self.stage = 0, "start"
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            pss = pss_bytes()
            self.window_peak = max(self.window_peak, pss)
            self.samples.append((time.monotonic() - self.started, pss, self.stage))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def heap_mb() -> tuple[float, float]:
    """(in use, free) MB of glibc's heap (``mallinfo2``: the main arena and mmapped chunks;
    Python's small objects live in its own arenas, counted as in use)."""
    try:
        info = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return 0.0, 0.0
    info.restype = _MallInfo2
    got = info()
    return (got.uordblks + got.hblkhd) / MB, got.fordblks / MB


def census(top: int) -> None:
    """The Python objects alive now, by type: count and summed ``sys.getsizeof`` (containers
    without their items; strings, bytes and numbers, which the collector does not track,
    found through the tracked objects that refer to them, each once)."""
    import gc
    from collections import Counter

    gc.collect()
    sizes, counts, seen = Counter(), Counter(), set()
    tracked = gc.get_objects()
    for obj in tracked:
        seen.add(id(obj))
    for obj in tracked:
        name = type(obj).__qualname__
        sizes[name] += sys.getsizeof(obj)
        counts[name] += 1
        for item in gc.get_referents(obj):
            if id(item) not in seen and not gc.is_tracked(item):
                seen.add(id(item))
                sizes[type(item).__qualname__] += sys.getsizeof(item)
                counts[type(item).__qualname__] += 1
    used, free = heap_mb()
    print(f"{'':18}census: heap in use {used:,.0f} MB, free in heap {free:,.0f} MB; Python "
          f"objects {sum(sizes.values()) / MB:,.0f} MB", file=sys.stderr)
    for name, size in sizes.most_common(top):
        print(f"{'':20}{size / MB:8.1f} MB {counts[name]:>10,}  {name}", file=sys.stderr)


def state_bytes(context) -> int:
    """Bytes of the runner's state (side inputs committed for the stages that read them)."""
    state = context.worker_handler_manager.state_servicer._state
    state = getattr(state, "_underlying", state)
    return sum(len(item) for values in list(state.values()) for item in values)


def held_buffers(context) -> dict[int, tuple[str, object]]:
    """The runner's buffers: the PCollections waiting for their consuming stage (the pending
    queues: encoded elements, or a GroupByKey's table of decoded values), by id, with the
    name of the consuming transform."""
    buffers = {id(b): ("(being written)", b) for b in context.pcoll_buffers.values()}
    for queue in (context.queues.watermark_pending_inputs, context.queues.time_pending_inputs):
        for _, data_input in list(queue._q):
            buffers.update((id(b), (name, b)) for name, b in data_input.data.items())
    return buffers


def buffer_bytes(context) -> int:
    return sum(_one_buffer_bytes(buffer) for _, buffer in held_buffers(context).values())


def largest_buffers(context, count: int = 6) -> list[tuple[float, str]]:
    sizes = [(_one_buffer_bytes(buffer) / MB, name)
             for name, buffer in held_buffers(context).values()]
    return sorted(sizes, reverse=True)[:count]


def _one_buffer_bytes(buffer) -> int:
    total = sum(len(item) for item in getattr(buffer, "_inputs", None) or [])
    grouped = getattr(buffer, "_grouped_output", None) or []
    total += sum(len(item) for part in grouped for item in part)
    for key, values in list((getattr(buffer, "_table", None) or {}).items()):
        total += len(key) + sum(_value_size(v) for v in values)
    return total


def _value_size(value) -> int:
    if isinstance(value, (bytes, str)):
        return sys.getsizeof(value)
    if isinstance(value, tuple):
        return sys.getsizeof(value) + sum(_value_size(v) for v in value)
    fields = getattr(value, "__dict__", {}).values()
    return sys.getsizeof(value) + sum(sys.getsizeof(v) for v in fields)


def patch_runner(sampler: Sampler, log: list[dict], snapshot, census_at: str | None,
                 top: int) -> None:
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    original = fn_runner.FnApiRunner._execute_bundle

    def execute_bundle(self, context, bundle_context_manager, bundle_input):
        name = bundle_context_manager.stage.name
        if census_at and re.search(census_at, name):
            print(f"{'':18}before {name[:100]}", file=sys.stderr)
            census(top)
        sampler.stage, sampler.window_peak = name, pss_bytes()
        entry = {"stage": name, "start_s": time.monotonic() - sampler.started,
                 "pss_start_mb": sampler.window_peak / MB,
                 "buffers_start_mb": buffer_bytes(context) / MB}
        try:
            return original(self, context, bundle_context_manager, bundle_input)
        finally:
            pss = pss_bytes()
            used, free = heap_mb()
            entry["state_mb"] = state_bytes(context) / MB
            entry.update(end_s=time.monotonic() - sampler.started, pss_end_mb=pss / MB,
                         heap_used_mb=used, heap_free_mb=free,
                         pss_peak_mb=max(sampler.window_peak, pss) / MB,
                         buffers_end_mb=buffer_bytes(context) / MB)
            if abs(entry["buffers_end_mb"] - entry["buffers_start_mb"]) > 10:
                entry["largest_buffers"] = largest_buffers(context)
                for size, consumer in entry["largest_buffers"]:
                    print(f"{'':18}held {size:7.1f} MB for {consumer[:100]}", file=sys.stderr)
            log.append(entry)
            print(f"{entry['start_s']:7.1f}-{entry['end_s']:7.1f} s  "
                  f"PSS {entry['pss_start_mb']:6.0f}"
                  f" -> peak {entry['pss_peak_mb']:6.0f} -> {entry['pss_end_mb']:6.0f} MB  "
                  f"buffers {entry['buffers_start_mb']:6.0f} -> {entry['buffers_end_mb']:6.0f} MB"
                  f"  state {entry['state_mb']:4.0f}  heap {used:5.0f} + free {free:4.0f} MB"
                  f"  {name[:110]}", file=sys.stderr, flush=True)
            if snapshot is not None:
                snapshot(entry)

    fn_runner.FnApiRunner._execute_bundle = execute_bundle


def tracemalloc_snapshotter(top: int):
    import tracemalloc

    best = {"pss": 0, "snapshot": None, "stage": None}

    def snapshot(entry: dict) -> None:
        if not tracemalloc.is_tracing():  # from the first bundle's end: the imports are done
            tracemalloc.start(8)
        if entry["pss_end_mb"] > best["pss"]:
            best.update(pss=entry["pss_end_mb"], snapshot=tracemalloc.take_snapshot(),
                        stage=entry["stage"])

    def report() -> None:
        if best["snapshot"] is None:
            return
        print(f"\ntracemalloc at the largest bundle-end PSS ({best['pss']:.0f} MB, after "
              f"{best['stage'][:100]}):")
        stats = best["snapshot"].statistics("traceback")
        print(f"  traced total {sum(s.size for s in stats) / MB:,.0f} MB")
        for stat in stats[:top]:
            frames = [f"{_short(frame.filename)}:{frame.lineno}" for frame in stat.traceback[-3:]]
            print(f"  {stat.size / MB:8.1f} MB {stat.count:>9,}  {' <- '.join(reversed(frames))}")

    return snapshot, report


def _short(filename: str) -> str:
    return filename.split("site-packages/")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("--output", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--census-at", default=None,
                        help="regex of stage names: before each, list the live Python objects")
    parser.add_argument("--json", default=None)
    args, extra = parser.parse_known_args()
    extra = [arg for arg in extra if arg != "--"]

    sampler, log = Sampler(args.interval), []
    snapshot, report = tracemalloc_snapshotter(args.top) if args.tracemalloc else (None, None)
    patch_runner(sampler, log, snapshot, args.census_at, args.top)
    sampler.start()
    from winnow.cli import main as winnow_main

    started = time.monotonic()
    code = winnow_main(["curate", args.input, "--output", args.output, "--overwrite"] + extra)
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    peak = max(sampler.samples, key=lambda sample: sample[1], default=(0, 0, ""))
    print(f"\nexit {code}, wall {wall:.0f} s, peak PSS {peak[1] / MB:,.0f} MB at "
          f"{peak[0]:.1f} s in {peak[2][:120]}")
    print("\nstages by their peak PSS:")
    for entry in sorted(log, key=lambda e: -e["pss_peak_mb"])[:12]:
        print(f"  {entry['pss_peak_mb']:6.0f} MB  (start {entry['pss_start_mb']:5.0f}, buffers "
              f"{entry['buffers_start_mb']:5.0f} MB, {entry['end_s'] - entry['start_s']:5.1f} s)  "
              f"{entry['stage'][:120]}")
    if report is not None:
        report()
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"wall_seconds": wall, "peak_pss_mb": peak[1] / MB, "stages": log,
                       "samples": sampler.samples}, handle)


if __name__ == "__main__":
    main()
