"""Near-duplicate removal: winnow's near_dedup against datasketch's MinHashLSH and text-dedup's
MinHash, on the same benchmark, with the same scores.

    python bench/compare_dedup.py [../shared/corpora/linux-doc.jsonl.gz \
        ../shared/corpora/python-doc.jsonl.gz] [--originals 1000] [--threshold 0.8] \
        [--workers 2] [--seed 0] [--td-python /work/dt-venv/bin/python] [--keep-dir DIR] \
        [--json PATH]

The benchmark is ``bench/near_dup_data.py``'s (``build_benchmark``, written once with
``write_jsonl``: every method reads that one input.jsonl), and the scores are
``bench/dedup_quality.py``'s: pair precision/recall/F1 (same-cluster pairs predicted against
the true same-cluster pairs) and removal precision/recall/F1 (a removed document is correct when
it is a true duplicate of the one its cluster keeps), then recall per variant kind.

* winnow: the ``near_dedup`` stage alone through ``run_curation`` (``dedup_quality.run_stage``),
  DirectRunner multi_processing with ``--workers`` processes; its defaults (128 permutations,
  word 5-grams, LSH 16 x 8, estimated-Jaccard verification of every candidate pair).
* datasketch: ``MinHash(num_perm=128)`` of the same word 5-gram shingle strings as winnow
  (``MinHasher.shingles``), ``MinHashLSH(threshold, num_perm=128)`` (its equal weights: 9 x 13),
  insert all, query each, union-find over the query results; each cluster keeps its smallest id.
  One process, in memory, no verification.
* text-dedup: ``python -m text_dedup.minhash`` (the installed version's click entry point) in
  its own virtual environment, on the local input.jsonl through ``datasets``' json loader, with
  ``--threshold --num_perm 128 --ngram 5 --num_proc --workers``; bands and rows from its
  ``optimal_param`` (9 x 13), SHA-1, no verification. Its union-find (``--debug`` writes
  ``uf.pkl`` keyed by the ``id`` column) gives the clusters; each keeps its smallest index, the
  first in input order, which is what text-dedup keeps.

Times are wall seconds of each method from its input to its clusters: winnow's include the
Beam pipeline's start, shuffles and Parquet writes; text-dedup's the subprocess start and the
``datasets`` load and cache writes (its own "Total" timer is shown too).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CORPORA = os.path.join(ROOT, "..", "shared", "corpora")
DEFAULT_INPUTS = [os.path.join(CORPORA, "linux-doc.jsonl.gz"),
                  os.path.join(CORPORA, "python-doc.jsonl.gz")]
TD_PYTHON = "/work/dt-venv/bin/python"
NUM_PERM = 128


# -- clusters ------------------------------------------------------------------------------------

def union_find_clusters(ids: list[str], edges) -> dict[str, str]:
    """id -> the smallest id of its connected component."""
    parent = {i: i for i in ids}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {i: root(i) for i in ids}


def survivors(cluster: dict[str, str], keep) -> dict[str, str]:
    """removed id -> survivor id, the survivor of each cluster being ``keep(members)``."""
    members = defaultdict(list)
    for doc_id, label in cluster.items():
        members[label].append(doc_id)
    survivor_of = {}
    for group in members.values():
        kept = keep(group)
        survivor_of.update({doc_id: kept for doc_id in group if doc_id != kept})
    return survivor_of


# -- the three methods ---------------------------------------------------------------------------

def run_winnow(docs, input_path: str, work: str, threshold: float, workers: int) -> dict:
    from dedup_quality import predicted_clusters, run_stage, stage_config

    config = stage_config(threshold, None, None)
    started = time.monotonic()
    removed, _ = run_stage(input_path, os.path.join(work, "winnow"), config, workers)
    seconds = time.monotonic() - started
    cluster, survivor_of = predicted_clusters(docs, removed)
    bands, rows = config.near_dedup.bands_and_rows()
    return {"cluster": cluster, "survivor_of": survivor_of, "seconds": seconds,
            "setup": f"LSH {bands} x {rows}, verify {config.near_dedup.verify}, "
                     f"{workers} workers"}


def run_datasketch(docs, threshold: float) -> dict:
    from datasketch import MinHash, MinHashLSH

    from winnow.filters.minhash import MinHasher

    hasher = MinHasher(num_perm=NUM_PERM)  # for its shingle strings only
    started = time.monotonic()
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    signatures = {}
    for doc in docs:
        minhash = MinHash(num_perm=NUM_PERM)
        minhash.update_batch([s.encode("utf-8") for s in hasher.shingles(doc.text)])
        signatures[doc.id] = minhash
        lsh.insert(doc.id, minhash)
    edges = [(doc.id, other) for doc in docs for other in lsh.query(signatures[doc.id])]
    cluster = union_find_clusters([doc.id for doc in docs], edges)
    seconds = time.monotonic() - started
    return {"cluster": cluster, "survivor_of": survivors(cluster, min), "seconds": seconds,
            "setup": f"LSH {lsh.b} x {lsh.r}, no verification, 1 process"}


def run_text_dedup(docs, input_path: str, work: str, threshold: float, workers: int,
                   python: str) -> dict:
    folder = os.path.join(work, "text-dedup")
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, "clusters.json")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HOME=os.path.join(folder, "hf-home"))
    command = [python, os.path.abspath(__file__), "--text-dedup-side", out, "--",
               "--path", "json", "--data_files", input_path, "--split", "train",
               "--column", "text", "--idx_column", "id",
               "--cache_dir", os.path.join(folder, "cache"),
               "--output", os.path.join(folder, "output"), "--debug",
               "--threshold", str(threshold), "--num_perm", str(NUM_PERM), "--ngram", "5",
               "--num_proc", str(max(1, workers))]
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    log = completed.stdout + completed.stderr
    if completed.returncode:
        sys.exit(f"text-dedup failed (exit {completed.returncode}):\n{log[-4000:]}")
    with open(out) as handle:
        result = json.load(handle)
    kept = set(result["kept"])
    cluster = {doc.id: result["cluster"].get(doc.id, doc.id) for doc in docs}
    return {"cluster": cluster, "seconds": seconds, "own_total": own_total(log),
            "survivor_of": survivors(cluster, lambda group: kept_member(group, kept)),
            "setup": f"LSH {result['bands']} x {result['rows']}, no verification, "
                     f"{workers} processes", "kept": kept}


def kept_member(group: list[str], kept: set[str]) -> str:
    """The member text-dedup kept (its union-find root; exactly one per cluster)."""
    chosen = [doc_id for doc_id in group if doc_id in kept]
    if len(chosen) != 1:
        raise RuntimeError(f"text-dedup kept {len(chosen)} of cluster {sorted(group)[:5]}")
    return chosen[0]


def own_total(log: str) -> float | None:
    """text-dedup's own "Total" timer from its log, in seconds."""
    match = re.search(r"Total\s*:\s*([0-9.]+)s", log)
    return float(match.group(1)) if match else None


def text_dedup_side(out: str, argv: list[str]) -> None:
    """In text-dedup's environment: run its MinHash, then write id -> cluster (the union-find
    root's id), the ids it kept (its output dataset) and its bands and rows to ``out``."""
    import pickle

    from datasets import load_from_disk
    from text_dedup.minhash import main
    from text_dedup.utils import optimal_param

    main.main(args=argv, standalone_mode=False)
    options = {flag: value for flag, value in zip(argv, argv[1:] + [""], strict=True)
               if flag.startswith("--") and not value.startswith("--")}
    with open(os.path.join(options["--output"], "uf.pkl"), "rb") as handle:
        uf = pickle.load(handle)
    kept = [str(i) for i in load_from_disk(options["--output"])["id"]]
    bands, rows_per_band = optimal_param(float(options["--threshold"]),
                                         int(options["--num_perm"]))
    with open(out, "w") as handle:
        json.dump({"cluster": {str(i): str(uf.find(i)) for i in uf.parent},
                   "kept": kept,
                   "bands": bands, "rows": rows_per_band}, handle)


# -- scores and report ---------------------------------------------------------------------------

def score(docs, result: dict) -> dict:
    from dedup_quality import merged_with_original, pair_scores, prf, removal_scores

    tp, predicted, actual = pair_scores(docs, result["cluster"])
    correct, removals, needed = removal_scores(docs, result["survivor_of"])
    merged = merged_with_original(docs, result["cluster"])
    measures = ("precision", "recall", "f1")
    return {"pairs": dict(zip(measures, prf(tp, predicted, actual), strict=True),
                          correct=tp, predicted=predicted, true=actual),
            "removals": dict(zip(measures, prf(correct, removals, needed), strict=True),
                             correct=correct, removed=removals, needed=needed),
            "by_kind": kind_recall(docs, merged), "seconds": result["seconds"],
            "setup": result["setup"]}


def kind_recall(docs, merged: dict) -> dict:
    """Per variant group: recall of the true duplicates, and false merges of the others."""
    groups = defaultdict(lambda: [0, 0, 0, 0])  # dups, dups merged, distinct, distinct merged
    for doc in docs:
        if doc.kind == "original":
            continue
        counts = groups[doc.group]
        index = 0 if doc.duplicate else 2
        counts[index] += 1
        counts[index + 1] += merged[doc.id]
    return {group: {"recall": c[1] / c[0] if c[0] else None, "false_merges": c[3],
                    "distinct": c[2]} for group, c in sorted(groups.items())}


def print_report(args, docs, results: dict, versions: dict) -> None:
    names = list(results)
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; "
          + "; ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"benchmark: {len(docs):,} documents ({sum(d.kind == 'original' for d in docs):,} "
          f"originals, seed {args.seed}), threshold {args.threshold}")
    for name in names:
        print(f"  {name}: {results[name]['setup']}")
    print()
    print(f"{'':<22}" + "".join(f"{name:>14}" for name in names))
    for section in ("pairs", "removals"):
        for measure in ("precision", "recall", "f1"):
            print(f"{section + ' ' + measure:<22}"
                  + "".join(f"{results[n][section][measure]:>14.4f}" for n in names))
    print(f"{'pairs predicted':<22}" + "".join(f"{results[n]['pairs']['predicted']:>14,}"
                                               for n in names)
          + f"   (true: {results[names[0]]['pairs']['true']:,})")
    print(f"{'removed':<22}" + "".join(f"{results[n]['removals']['removed']:>14,}"
                                       for n in names)
          + f"   (to remove: {results[names[0]]['removals']['needed']:,})")
    print(f"{'wall seconds':<22}" + "".join(f"{results[n]['seconds']:>14.1f}" for n in names))
    print_kinds(results)


def print_kinds(results: dict) -> None:
    names = list(results)
    groups = list(results[names[0]]["by_kind"])
    print()
    print("recall of true duplicates by kind (false merges of labelled-distinct documents):")
    print(f"{'kind':<22}" + "".join(f"{name:>18}" for name in names))
    for group in groups:
        cells = []
        for name in names:
            row = results[name]["by_kind"][group]
            recall = f"{row['recall']:.3f}" if row["recall"] is not None else "-"
            cells.append(f"{recall} ({row['false_merges']}/{row['distinct']})")
        print(f"{group:<22}" + "".join(f"{cell:>18}" for cell in cells))


def versions() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "winnow": version("winnow"),
            "apache-beam": version("apache-beam"), "datasketch": version("datasketch")}


def td_versions(python: str) -> str:
    code = ("from importlib.metadata import version as v; "
            "print(f\"text-dedup {v('text-dedup')} (datasets {v('datasets')})\")")
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


# -- main ----------------------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="*", default=DEFAULT_INPUTS)
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--workers", type=int, default=2,
                        help="winnow's DirectRunner workers and text-dedup's --num_proc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--td-python", default=TD_PYTHON,
                        help="python of the virtual environment with text-dedup")
    parser.add_argument("--keep-dir", default=None, help="keep the input and every run here")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    return parser.parse_args()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--text-dedup-side":
        text_dedup_side(sys.argv[2], sys.argv[4:])
        return
    args = parse_args()
    import logging

    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    work = args.keep_dir or tempfile.mkdtemp(prefix="winnow-compare-dedup-")
    os.makedirs(work, exist_ok=True)
    try:
        compare(args, work)
    finally:
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


def compare(args, work: str) -> None:
    from near_dup_data import build_benchmark, write_jsonl, write_truth

    benchmark = build_benchmark(args.corpora, args.originals, args.threshold, args.seed)
    docs = benchmark.docs
    input_path = os.path.join(work, "input.jsonl")
    write_jsonl(docs, input_path, args.seed)
    write_truth(docs, os.path.join(work, "truth.jsonl"))
    runs = {"winnow": run_winnow(docs, input_path, work, args.threshold, args.workers),
            "datasketch": run_datasketch(docs, args.threshold),
            "text-dedup": run_text_dedup(docs, input_path, work, args.threshold, args.workers,
                                         args.td_python)}
    results = {name: score(docs, run) for name, run in runs.items()}
    results["text-dedup"]["own_total_seconds"] = runs["text-dedup"]["own_total"]
    pins = dict(versions(), **{"peer venv": td_versions(args.td_python)})
    print_report(args, docs, results, pins)
    check_text_dedup(runs["text-dedup"], results["text-dedup"], len(docs))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"date": datetime.datetime.now().astimezone().isoformat(),
                       "command": sys.argv, "cores": os.cpu_count(), "versions": pins,
                       "documents": len(docs), "threshold": args.threshold,
                       "results": results}, handle, indent=2)


def check_text_dedup(run: dict, result: dict, documents: int) -> None:
    """text-dedup's own output size against the clusters read back from its union-find."""
    expected = documents - result["removals"]["removed"]
    own = run["own_total"]
    print(f"\ntext-dedup kept {len(run['kept']):,} documents itself; its union-find gives "
          f"{expected:,}" + (" (consistent)" if len(run["kept"]) == expected else " (MISMATCH)")
          + (f"; its own Total timer {own:.1f} s" if own is not None else ""))


if __name__ == "__main__":
    main()
