"""End-to-end time and peak memory of ``winnow curate`` as the input grows.

    python bench/scaling.py [--sizes 10,40,160,640] [--workers 2] [--mode in_memory] \
        [--config FILE] [--machine-gb 24] \
        [--corpora ../shared/corpora/{linux-doc,python-doc,perl-doc}.jsonl.gz] \
        [--interval 0.5] [--keep-dir DIR] [--json PATH]

Inputs (built first, not timed): a seeded stream of documents from the English corpora, cut at
each size (MB of text), so each size's stream starts with the smaller one's. Each corpus
document, taken in a seeded order, is emitted once per pass: as is on the first pass, and on
later passes (needed past the corpora's ~45 MB) with a fresh id and 25% of its words substituted,
inserted or deleted (``near_dup_data.edit_words``, with the document's own words), which puts it
far below any near-duplicate threshold (word 5-gram Jaccard ~0.1). After each emitted document,
with probability 0.1 an exact copy (fresh id), and with probability 0.2 a light edit (1-3% of
the words, fresh id), so that exact and near dedup have the same share of work at every size
(about a fifth of the documents). Written as ``.jsonl.gz`` files of about 10 MB of text each (2
at least), so that both workers read.

Each size runs ``winnow curate`` (every stage, default config unless ``--config``) as a
subprocess under ``/usr/bin/time -v``, DirectRunner multi_processing with ``--workers``, while
this script polls /proc every ``--interval`` seconds over the whole process tree (the CLI and
the runner's worker processes): the peak of the summed RSS (shared pages counted once per
process, so an upper bound) and of the summed PSS (shared pages split between the processes
sharing them: the honest total), and the largest single process (``time -v``'s "Maximum
resident set size" is that too). Growth per 4x of input = (y2 / y1) ** (log 4 / log(x2 / x1))
between consecutive sizes, and 4 ** slope of the least-squares fit of log y on log x overall
(1.0 would be constant, 4.0 linear). Memory per MB of input = peak PSS sum / MB of text; the
ceiling on a machine of ``--machine-gb`` (24 by default) is where the peak PSS reaches its
memory: extrapolated linearly from the two largest sizes (the marginal cost of a MB), and
along the fitted power law. ``--mode in_memory`` measures the default local run (one process,
no Beam flags) instead of multi_processing.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from near_dup_data import edit_words  # bench/ is the script's folder

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

CORPORA = os.path.join(ROOT, "..", "shared", "corpora")
DEFAULT_CORPORA = [os.path.join(CORPORA, f"{name}.jsonl.gz")
                   for name in ("linux-doc", "python-doc", "perl-doc")]
FILE_MB = 10
EXACT_COPY, LIGHT_EDIT, HEAVY_EDIT_RATE = 0.1, 0.2, 0.25
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- inputs --------------------------------------------------------------------------------------

def read_corpora(paths: list[str], seed: int) -> list[tuple[str, str]]:
    """(id, text) of every non-empty record, in a seeded order."""
    records = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("text"):
                    records.append((str(record["id"]), record["text"]))
    random.Random(seed).shuffle(records)
    return records


def stream(records: list[tuple[str, str]], seed: int):
    """Endless (id, text, kind): the originals, then heavily edited passes; copies and light
    edits after some of them."""
    rng = random.Random(seed)
    for cycle in range(10 ** 9):
        for doc_id, text in records:
            words = text.split()
            if cycle:
                doc_id = f"{doc_id}~p{cycle}"
                text = edit_words(text, HEAVY_EDIT_RATE, words, rng)
            yield doc_id, text, "original" if not cycle else "rewritten"
            if rng.random() < EXACT_COPY:
                yield f"{doc_id}~copy", text, "exact_copy"
            if rng.random() < LIGHT_EDIT:
                yield f"{doc_id}~edit", edit_words(text, rng.uniform(0.01, 0.03), words,
                                                   rng), "light_edit"


def build_input(records, size_mb: float, folder: str, seed: int) -> dict:
    """Write ``size_mb`` MB of text from the stream into ``folder``; return its counts."""
    os.makedirs(folder, exist_ok=True)
    files = max(2, math.ceil(size_mb / FILE_MB))
    handles = [gzip.open(os.path.join(folder, f"part-{i:03d}.jsonl.gz"), "wt",
                         encoding="utf-8", compresslevel=1) for i in range(files)]
    counts, written, budget = {}, 0, size_mb * 1e6
    try:
        for index, (doc_id, text, kind) in enumerate(stream(records, seed)):
            if written >= budget:
                break
            handles[index % files].write(json.dumps({"id": doc_id, "text": text}) + "\n")
            written += len(text.encode("utf-8"))
            counts[kind] = counts.get(kind, 0) + 1
    finally:
        for handle in handles:
            handle.close()
    return {"megabytes": written / 1e6, "documents": sum(counts.values()), "kinds": counts,
            "files": files}


# -- memory polling ------------------------------------------------------------------------------

def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                # the command name may hold spaces and parentheses: split after the last ")"
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(name))
    return tree


def descendants(root: int) -> list[int]:
    tree, found, todo = children_map(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) bytes of one process; zeros when it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            rss = int(handle.read().split()[1]) * PAGE
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            pss = next((int(line.split()[1]) * 1024 for line in handle
                        if line.startswith("Pss:")), 0)
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


class TreePoller(threading.Thread):
    """Peak summed RSS and PSS, largest process and most processes of a process tree."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = {"rss_sum": 0, "pss_sum": 0, "largest_rss": 0, "processes": 0}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            sizes = [memory_of(pid) for pid in descendants(self.pid)]
            sample = {"rss_sum": sum(r for r, _ in sizes), "pss_sum": sum(p for _, p in sizes),
                      "largest_rss": max((r for r, _ in sizes), default=0),
                      "processes": sum(r > 0 for r, _ in sizes)}
            self.peak = {key: max(self.peak[key], sample[key]) for key in self.peak}


# -- one run -------------------------------------------------------------------------------------

def parse_time_v(path: str) -> dict:
    with open(path) as handle:
        text = handle.read()

    def field(label: str) -> str | None:
        match = re.search(rf"{re.escape(label)}: (.+)", text)
        return match.group(1).strip() if match else None

    return {"max_rss_kb": int(field("Maximum resident set size (kbytes)") or 0),
            "user_seconds": float(field("User time (seconds)") or 0),
            "system_seconds": float(field("System time (seconds)") or 0),
            "exit_status": int(field("Exit status") or 0)}


def run_curate(input_dir: str, output_dir: str, workers: int, config: str | None,
               interval: float, log_path: str, mode: str = "multi_processing") -> dict:
    winnow = os.path.join(os.path.dirname(sys.executable), "winnow")
    command = [winnow, "curate", input_dir, "--output", output_dir, "--overwrite"]
    if mode == "multi_processing":
        command += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    command += ["--config", config] if config else []
    time_path = log_path + ".time"
    with open(log_path, "w") as log:
        started = time.monotonic()
        process = subprocess.Popen(["/usr/bin/time", "-v", "-o", time_path] + command,
                                   stdout=log, stderr=subprocess.STDOUT)
        poller = TreePoller(process.pid, interval)
        poller.start()
        code = process.wait()
        wall = time.monotonic() - started
        poller.done.set()
        poller.join()
    if code:
        with open(log_path) as log:
            sys.exit(f"winnow curate failed (exit {code}); log {log_path}:\n"
                     + "".join(log.readlines()[-30:]))
    with open(os.path.join(output_dir, "report.json")) as handle:
        report = json.load(handle)
    return {"wall_seconds": wall, "time_v": parse_time_v(time_path), "poll": poller.peak,
            "documents": report["documents"],
            "removed_by_stage": {stage: sum(reasons.values())
                                 for stage, reasons in report["removed_by_stage"].items()}}


# -- growth and report ---------------------------------------------------------------------------

def per_4x(x1: float, y1: float, x2: float, y2: float) -> float:
    return (y2 / y1) ** (math.log(4) / math.log(x2 / x1)) if y1 and x2 != x1 else float("nan")


def fitted_per_4x(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2 or min(ys) <= 0:
        return float("nan")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    slope = (sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
             / sum((a - mx) ** 2 for a in lx))
    return 4 ** slope


def growth(rows: list[dict]) -> dict:
    metrics = {"wall_seconds": lambda r: r["wall_seconds"],
               "cpu_seconds": lambda r: r["cpu_seconds"],
               "peak_pss_sum_mb": lambda r: r["peak_pss_sum_mb"],
               "peak_rss_sum_mb": lambda r: r["peak_rss_sum_mb"],
               "largest_process_mb": lambda r: r["largest_process_mb"]}
    xs = [row["megabytes"] for row in rows]
    result = {}
    for name, get in metrics.items():
        ys = [get(row) for row in rows]
        steps = [per_4x(xs[i], ys[i], xs[i + 1], ys[i + 1]) for i in range(len(rows) - 1)]
        result[name] = {"steps": steps, "fitted": fitted_per_4x(xs, ys)}
    return result


def ceiling_mb(rows: list[dict], machine_mb: float) -> dict:
    """MB of input at which the peak PSS sum reaches ``machine_mb``: linearly from the two
    largest sizes, and along the power law fitted over all sizes."""
    if len(rows) < 2:
        return {"linear": float("nan"), "power_law": float("nan")}
    xs = [row["megabytes"] for row in rows]
    ys = [row["peak_pss_sum_mb"] for row in rows]
    per_mb = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    linear = xs[-1] + (machine_mb - ys[-1]) / per_mb if per_mb > 0 else float("inf")
    slope = math.log(fitted_per_4x(xs, ys)) / math.log(4)
    power = xs[-1] * (machine_mb / ys[-1]) ** (1 / slope) if slope > 0 else float("inf")
    return {"linear": linear, "power_law": power, "marginal_mb_per_input_mb": per_mb}


def summarize(size: float, built: dict, run: dict, workers: int) -> dict:
    time_v = run["time_v"]
    cpu = time_v["user_seconds"] + time_v["system_seconds"]
    return {"size_mb": size, "megabytes": built["megabytes"], "documents": built["documents"],
            "input_kinds": built["kinds"], "files": built["files"],
            "wall_seconds": run["wall_seconds"], "cpu_seconds": cpu,
            "mb_per_s": built["megabytes"] / run["wall_seconds"],
            "mb_per_s_per_core": built["megabytes"] / run["wall_seconds"] / workers,
            "peak_rss_sum_mb": run["poll"]["rss_sum"] / 1e6,
            "peak_pss_sum_mb": run["poll"]["pss_sum"] / 1e6,
            "largest_process_mb": max(run["poll"]["largest_rss"] / 1e6,
                                      time_v["max_rss_kb"] / 1e3),
            "processes": run["poll"]["processes"], "kept": run["documents"]["kept"],
            "removed_by_stage": run["removed_by_stage"]}


def print_report(args, rows: list[dict], growth_figures: dict) -> None:
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, {versions()}")
    print(f"winnow curate, every stage ({args.config or 'default config'}), DirectRunner "
          f"{args.mode}, {args.workers} worker(s); memory polled every {args.interval} s")
    print()
    print(f"{'MB':>7} {'docs':>8} {'wall s':>8} {'cpu s':>8} {'MB/s':>6} {'PSS sum MB':>10} "
          f"{'PSS/MB':>6} {'RSS sum MB':>10} {'largest MB':>10} {'procs':>5} {'kept':>8}  "
          "removed by stage")
    for row in rows:
        removed = ", ".join(f"{k} {v:,}" for k, v in row["removed_by_stage"].items())
        print(f"{row['megabytes']:>7.1f} {row['documents']:>8,} {row['wall_seconds']:>8.1f} "
              f"{row['cpu_seconds']:>8.1f} {row['mb_per_s']:>6.3f} {row['peak_pss_sum_mb']:>10.0f} "
              f"{row['peak_pss_sum_mb'] / row['megabytes']:>6.1f} "
              f"{row['peak_rss_sum_mb']:>10.0f} {row['largest_process_mb']:>10.0f} "
              f"{row['processes']:>5} {row['kept']:>8,}  {removed}")
    print()
    print("growth per 4x of input (1.0 = constant, 4.0 = linear):")
    labels = [f"{a['megabytes']:.0f}->{b['megabytes']:.0f} MB"
              for a, b in zip(rows, rows[1:], strict=False)]
    print(f"{'':<20}" + "".join(f"{label:>16}" for label in labels) + f"{'fitted':>10}")
    for name, figures in growth_figures.items():
        print(f"{name:<20}" + "".join(f"{step:>16.2f}" for step in figures["steps"])
              + f"{figures['fitted']:>10.2f}")
    ceiling = ceiling_mb(rows, args.machine_gb * 1000)
    print()
    print(f"ceiling on a {args.machine_gb:g} GB machine (peak PSS sum = its memory): "
          f"{ceiling['linear']:,.0f} MB of text extrapolated linearly from the two largest "
          f"sizes ({ceiling.get('marginal_mb_per_input_mb', float('nan')):.1f} MB per MB "
          f"there), {ceiling['power_law']:,.0f} MB along the fitted power law")


def versions() -> str:
    from importlib.metadata import version

    return f"winnow {version('winnow')}, apache-beam {version('apache-beam')}"


# -- main ----------------------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,40,160,640",
                        help="MB of text, comma-separated (640: about 9 GB of memory free)")
    parser.add_argument("--corpora", nargs="+", default=DEFAULT_CORPORA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=("multi_processing", "in_memory"),
                        default="multi_processing",
                        help="in_memory: the default local run (one process, no Beam flags)")
    parser.add_argument("--config", default=None, help="winnow config YAML (default: defaults)")
    parser.add_argument("--interval", type=float, default=0.5, help="memory polling seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-dir", default=None, help="keep inputs and runs here")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--machine-gb", type=float, default=24,
                        help="memory of the machine whose ceiling is reported")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.mode == "in_memory":
        args.workers = 1  # the runner's default: one process
    sizes = sorted(float(size) for size in args.sizes.split(","))
    work = args.keep_dir or tempfile.mkdtemp(prefix="winnow-scaling-")
    os.makedirs(work, exist_ok=True)
    try:
        rows = measure(args, sizes, work)
    finally:
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)
    figures = growth(rows)
    print_report(args, rows, figures)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"date": datetime.datetime.now().astimezone().isoformat(),
                       "command": sys.argv, "cores": os.cpu_count(), "workers": args.workers,
                       "versions": versions(), "runs": rows, "growth_per_4x": figures,
                       "ceiling_mb": ceiling_mb(rows, args.machine_gb * 1000)},
                      handle, indent=2)


def measure(args, sizes: list[float], work: str) -> list[dict]:
    records = read_corpora(args.corpora, args.seed)
    rows = []
    for size in sizes:
        name = f"{size:g}mb"
        started = time.monotonic()
        built = build_input(records, size, os.path.join(work, "input", name), args.seed)
        print(f"built {name}: {built['documents']:,} documents, {built['megabytes']:.1f} MB "
              f"({built['kinds']}) in {time.monotonic() - started:.1f} s; running ...",
              flush=True)
        run = run_curate(os.path.join(work, "input", name), os.path.join(work, "run", name),
                         args.workers, args.config, args.interval,
                         os.path.join(work, f"{name}.log"), args.mode)
        rows.append(summarize(size, built, run, args.workers))
        print(f"  {name}: peak PSS sum {rows[-1]['peak_pss_sum_mb']:,.0f} MB "
              f"({rows[-1]['peak_pss_sum_mb'] / rows[-1]['megabytes']:.1f} per MB of text), "
              f"largest process {rows[-1]['largest_process_mb']:,.0f} MB, "
              f"{rows[-1]['wall_seconds']:.0f} s", flush=True)
        if not args.keep_dir:  # the runs of the large sizes take room
            shutil.rmtree(os.path.join(work, "run", name), ignore_errors=True)
    print()
    return rows


if __name__ == "__main__":
    main()
