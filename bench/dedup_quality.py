"""Near-duplicate removal quality: precision, recall and F1 of the ``near_dedup`` stage on a
benchmark of real documents with known clusters.

    python bench/dedup_quality.py [../shared/corpora/linux-doc.jsonl.gz \
        ../shared/corpora/python-doc.jsonl.gz] [--originals 1000] [--threshold 0.8] \
        [--verify estimated] [--fn-weight 0.5] [--workers 2] [--seed 0] [--keep-dir DIR]

The benchmark (``bench/near_dup_data.py``): originals of 200..5,000 words, cleaned of pairs
already similar to each other (exact Jaccard >= threshold - 0.3); 1..4 variants each (word
edits, boilerplate, truncation, reordered paragraphs, two of those combined), labelled true
duplicates only when their exact word-5-gram Jaccard to the original reaches the threshold
(the rest are relabelled distinct and kept as hard negatives); near-miss negatives at
Jaccard ~0.4..0.65. The truth clusters are each original with its true-duplicate variants
(precisely: the connected components of all pairs at the threshold, see ``label`` there).

The stage runs alone (``normalize`` too, which leaves the already normalized text unchanged),
through ``run_curation`` on the DirectRunner. Scores:

* pairs: same-cluster pairs predicted (from ``removed/``'s ``cluster_id``; a survivor is in its
  own cluster) against the true same-cluster pairs;
* removals: a removed document is correct when it is a true duplicate of its cluster's survivor;
  the correct set is every true cluster but one member.

Then recall per variant kind and per Jaccard bin, and why each missed pair was missed (never an
LSH candidate, or rejected by verification), recomputed here with the stage's own functions.
``--fn-weight`` sets ``near_dedup.false_negative_weight`` (and the false positive weight to its
complement), the knob that moves the LSH bands and rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict

import pyarrow.parquet as pq
from near_dup_data import (  # bench/ is the script's folder
    BenchDoc,
    Benchmark,
    build_benchmark,
    write_jsonl,
    write_truth,
)

from winnow.filters.minhash import MinHasher, band_keys, estimated_jaccard
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation

CORPORA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                       "shared", "corpora")
DEFAULT_INPUTS = [os.path.join(CORPORA, "linux-doc.jsonl.gz"),
                  os.path.join(CORPORA, "python-doc.jsonl.gz")]
STAGE = "near_dedup"


# -- running the stage ---------------------------------------------------------------------------

def stage_config(threshold: float, verify: str | None, fn_weight: float | None):
    near_dedup = {"threshold": threshold}
    if verify:
        near_dedup["verify"] = verify
    if fn_weight is not None:
        near_dedup["false_negative_weight"] = fn_weight
        near_dedup["false_positive_weight"] = 1.0 - fn_weight
    return config_from_dict({"heuristics": {"enabled": False}, "language": {"enabled": False},
                             "exact_dedup": {"enabled": False}, "boilerplate": {"enabled": False},
                             "pii": {"enabled": False},
                             "near_dedup": near_dedup})


def run_stage(input_path: str, output_dir: str, config, workers: int) -> tuple[list[dict], dict]:
    """(removed rows, report) of one run."""
    beam_args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
                 if workers else ["--direct_running_mode=in_memory"])
    report = run_curation([input_path], output_dir, config, beam_args, overwrite=True)
    removed_dir = os.path.join(output_dir, "removed")
    rows = pq.read_table(removed_dir).to_pylist() if os.listdir(removed_dir) else []
    return rows, report


def predicted_clusters(docs: list[BenchDoc], removed: list[dict]) -> tuple[dict, dict]:
    """(id -> predicted cluster, removed id -> survivor id). Documents never removed and never
    a survivor are clusters of their own."""
    cluster = {doc.id: doc.id for doc in docs}
    survivor_of = {}
    for row in removed:
        if row["stage"] != STAGE:
            continue
        details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
        cluster[row["id"]] = cluster[details["survivor_id"]] = f"pred-{details['cluster_id']}"
        survivor_of[row["id"]] = details["survivor_id"]
    return cluster, survivor_of


# -- scores --------------------------------------------------------------------------------------

def prf(true_positives: int, predicted: int, actual: int) -> tuple[float, float, float]:
    precision = true_positives / predicted if predicted else 1.0
    recall = true_positives / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pairs(sizes) -> int:
    return sum(size * (size - 1) // 2 for size in sizes)


def pair_scores(docs: list[BenchDoc], predicted: dict) -> tuple[int, int, int]:
    """(true positive pairs, predicted pairs, true pairs)."""
    truth = Counter(doc.truth_cluster for doc in docs)
    prediction = Counter(predicted[doc.id] for doc in docs)
    both = Counter((doc.truth_cluster, predicted[doc.id]) for doc in docs)
    return pairs(both.values()), pairs(prediction.values()), pairs(truth.values())


def removal_scores(docs: list[BenchDoc], survivor_of: dict) -> tuple[int, int, int]:
    """(correct removals, removals, removals the truth calls for)."""
    truth = {doc.id: doc.truth_cluster for doc in docs}
    correct = sum(truth[removed] == truth[survivor] for removed, survivor in survivor_of.items())
    needed = sum(size - 1 for size in Counter(truth.values()).values())
    return correct, len(survivor_of), needed


# -- per kind, per Jaccard bin, and why pairs were missed ----------------------------------------

def merged_with_original(docs: list[BenchDoc], predicted: dict) -> dict[str, bool]:
    """For every derived document: did the stage put it in its original's cluster?"""
    original = {doc.family: doc.id for doc in docs if doc.kind == "original"}
    return {doc.id: predicted[doc.id] == predicted[original[doc.family]]
            for doc in docs if doc.kind != "original"}


def kind_table(docs: list[BenchDoc], merged: dict) -> list[str]:
    groups = defaultdict(list)
    for doc in docs:
        if doc.kind != "original":
            groups[doc.group].append(doc)
    lines = [f"{'kind':<22} {'made':>5} {'dup':>5} {'dist':>5} {'Jaccard min/med/max':>21} "
             f"{'recall':>7} {'false merges':>13}"]
    for group in sorted(groups, key=lambda g: (g.startswith("near_miss"), g)):
        members = groups[group]
        positives = [d for d in members if d.duplicate]
        negatives = [d for d in members if not d.duplicate]
        similarities = [d.jaccard for d in members]
        recall = (f"{sum(merged[d.id] for d in positives) / len(positives):7.3f}"
                  if positives else f"{'-':>7}")
        false_merges = f"{sum(merged[d.id] for d in negatives)}/{len(negatives)}"
        lines.append(f"{group:<22} {len(members):>5} {len(positives):>5} {len(negatives):>5} "
                     f"{min(similarities):>7.3f}{statistics.median(similarities):>7.3f}"
                     f"{max(similarities):>7.3f} {recall} {false_merges:>13}")
    return lines


def jaccard_bins(docs: list[BenchDoc], merged: dict, threshold: float) -> list[str]:
    edges = sorted({0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, threshold})
    counts = defaultdict(lambda: [0, 0])
    for doc in docs:
        # Documents below the threshold that are true duplicates through another variant are
        # left out, so that each bin below the threshold counts false merges only.
        if doc.kind == "original" or (doc.jaccard < threshold and doc.duplicate):
            continue
        low = max(edge for edge in edges if edge <= doc.jaccard)
        counts[low][0] += 1
        counts[low][1] += merged[doc.id]
    lines = [f"{'exact Jaccard to original':<26} {'docs':>5} {'merged':>7} {'share':>7}"]
    for index, low in enumerate(edges):
        if low not in counts:
            continue
        high = edges[index + 1] if index + 1 < len(edges) else 1.0
        label = f"[{low:.2f}, {high:.2f})" if low < 1.0 else "1.00 (identical shingles)"
        side = "  dup" if low >= threshold else "  distinct"
        total, merged_count = counts[low]
        lines.append(f"{label:<26} {total:>5} {merged_count:>7} {merged_count / total:>7.3f}"
                     f"{side}")
    return lines


def diagnose(docs: list[BenchDoc], merged: dict, config) -> tuple[Counter, Counter]:
    """Why each true (original, variant) pair ended in different clusters, and how each false
    merge with the original came about, from the stage's own signatures and band keys."""
    hasher = MinHasher.from_config(config)
    bands, rows = config.bands_and_rows()
    original = {doc.family: doc for doc in docs if doc.kind == "original"}
    missed, false_merges = Counter(), Counter()
    for doc in docs:
        if doc.kind == "original" or merged[doc.id] == doc.duplicate:
            continue
        a = hasher.signature_of(original[doc.family].text)
        b = hasher.signature_of(doc.text)
        candidates = bool(set(band_keys(a, bands, rows)) & set(band_keys(b, bands, rows)))
        estimate = estimated_jaccard(a, b)
        if config.verify == "estimated":
            passes = estimate >= config.threshold
        elif config.verify == "exact":
            passes = doc.jaccard >= config.threshold
        else:
            passes = True
        if doc.duplicate:  # missed: no edge can exist, or components would join them
            cause = ("below the threshold to the original (a true duplicate through another "
                     "variant)" if doc.jaccard < config.threshold
                     else "never LSH candidates" if not candidates
                     else f"rejected by verify={config.verify}" if not passes
                     else "LSH candidates and verified (unexpected)")
            missed[cause] += 1
        else:
            cause = ("direct edge (LSH candidates, verified)" if candidates and passes
                     else "joined through other members")
            false_merges[cause] += 1
    return missed, false_merges


# -- report --------------------------------------------------------------------------------------

def describe(benchmark: Benchmark, args, config) -> None:
    docs = benchmark.docs
    originals = sum(doc.kind == "original" for doc in docs)
    variants = [d for d in docs if d.group in ("edit", "boilerplate", "truncate", "reorder",
                                                 "combo")]
    near = [d for d in docs if d.kind.startswith("near_miss")]
    relabelled = sum(d.jaccard < benchmark.threshold for d in variants)
    rejoined = sum(d.jaccard < benchmark.threshold and d.duplicate for d in docs)
    bands, rows = config.bands_and_rows()
    curve = ", ".join(f"{s:.2f}: {1 - (1 - s ** rows) ** bands:.2f}"
                      for s in (0.75, 0.8, 0.85, 0.9, 0.95))
    print(f"corpora: {', '.join(os.path.basename(p) for p in args.corpora)}; "
          f"{benchmark.eligible:,} documents of 200..5,000 words")
    print(f"originals: {originals:,} (seed {args.seed}; {benchmark.skipped_similar} candidates "
          f"skipped as similar to an earlier pick, exact Jaccard >= "
          f"{max(0.1, benchmark.threshold - 0.3):.2f})")
    print(f"variants: {len(variants):,} made, {len(variants) - relabelled:,} at Jaccard >= "
          f"{benchmark.threshold} to their original (true duplicates), {relabelled:,} below it "
          f"relabelled distinct (kept in the input as hard negatives)")
    print(f"near misses: {len(near):,} made, Jaccard "
          f"{min((d.jaccard for d in near), default=0):.3f}.."
          f"{max((d.jaccard for d in near), default=0):.3f}, "
          f"{sum(not d.duplicate for d in near):,} distinct")
    families = {doc.id: doc.family for doc in docs}
    across = sum(families[a] != families[b] for a, b, _ in benchmark.joined)
    print(f"labels: {len(benchmark.joined)} other pairs at the threshold joined truth clusters "
          f"({across} across families); {rejoined} documents below the threshold to their "
          f"original are true duplicates through them"
          + "".join(f"\n  {a} ~ {b}: {s:.3f}" for a, b, s in benchmark.joined[:5]))
    print(f"documents in: {len(docs):,}; threshold {config.threshold}, verify {config.verify}, "
          f"LSH {bands} bands x {rows} rows (candidate probability at Jaccard {curve})")


def print_scores(docs: list[BenchDoc], removed: list[dict], config) -> float:
    predicted, survivor_of = predicted_clusters(docs, removed)
    other_stages = Counter(row["stage"] for row in removed if row["stage"] != STAGE)
    if other_stages:
        print(f"removed by other stages (not scored): {dict(other_stages)}")
    tp, predicted_pairs, true_pairs = pair_scores(docs, predicted)
    precision, recall, f1 = prf(tp, predicted_pairs, true_pairs)
    print(f"pairs:    precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}   "
          f"({tp:,} correct of {predicted_pairs:,} predicted, {true_pairs:,} true)")
    correct, removals, needed = removal_scores(docs, survivor_of)
    r_precision, r_recall, r_f1 = prf(correct, removals, needed)
    print(f"removals: precision {r_precision:.4f}  recall {r_recall:.4f}  F1 {r_f1:.4f}   "
          f"({correct:,} correct of {removals:,} removed, {needed:,} to remove)")
    merged = merged_with_original(docs, predicted)
    print()
    print("\n".join(kind_table(docs, merged)))
    print("(dup: true duplicates; dist: labelled distinct; recall: dups put in the original's "
          "cluster; false merges: distinct ones put there)")
    print()
    print("\n".join(jaccard_bins(docs, merged, config.threshold)))
    missed, false_merges = diagnose(docs, merged, config)
    print()
    print(f"missed true pairs (original, variant): {sum(missed.values())}"
          + "".join(f"\n  {cause}: {n}" for cause, n in missed.most_common()))
    print(f"false merges (original, distinct variant or near miss): {sum(false_merges.values())}"
          + "".join(f"\n  {cause}: {n}" for cause, n in false_merges.most_common()))
    return f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="*", default=DEFAULT_INPUTS,
                        help="JSONL(.gz) files with a 'text' field")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--originals", type=int, default=1000)
    parser.add_argument("--verify", choices=("none", "estimated", "exact"), default=None,
                        help="near_dedup.verify (default: the config's default)")
    parser.add_argument("--fn-weight", type=float, default=None,
                        help="near_dedup.false_negative_weight (default: the config's, 0.5)")
    parser.add_argument("--workers", type=int, default=2,
                        help="DirectRunner multi_processing workers; 0 runs in memory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-dir", default=None,
                        help="write the benchmark (input.jsonl, truth.jsonl) and the run here "
                             "and keep them")
    args = parser.parse_args()
    # The DirectRunner's workers log harmless warnings about their own arguments.
    logging.getLogger("apache_beam").setLevel(logging.ERROR)

    config = stage_config(args.threshold, args.verify, args.fn_weight)
    started = time.monotonic()
    benchmark = build_benchmark(args.corpora, args.originals, args.threshold, args.seed)
    built = time.monotonic() - started
    describe(benchmark, args, config.near_dedup)
    sys.stdout.flush()

    work = args.keep_dir or tempfile.mkdtemp(prefix="winnow-dedup-quality-")
    os.makedirs(work, exist_ok=True)
    try:
        input_path = os.path.join(work, "input.jsonl")
        write_jsonl(benchmark.docs, input_path, args.seed)
        write_truth(benchmark.docs, os.path.join(work, "truth.jsonl"))
        started = time.monotonic()
        removed, _ = run_stage(input_path, os.path.join(work, "run"), config, args.workers)
        ran = time.monotonic() - started
    finally:
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    f1 = print_scores(benchmark.docs, removed, config.near_dedup)
    print()
    print(f"wall time: build {built:.1f} s, stage run {ran:.1f} s "
          f"(workers: {args.workers or 'in-memory'}, cores: {os.cpu_count()})"
          + (f"; kept in {args.keep_dir}" if args.keep_dir else ""))
    target = "meets" if f1 >= 0.95 else "misses"
    print(f"pair F1 {f1:.4f} {target} the 0.95 target")


if __name__ == "__main__":
    main()
