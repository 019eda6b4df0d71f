"""Deduplication as a user sees it: the DEFAULT config, every stage on, on syndicated articles
built from text winnow was never tuned on (``bench/syndication_data.py``), scored from what
lands in kept/ and in the shards (issue 12).

    apt-get install debian-handbook debian-reference-en      # the source text
    python bench/dedup_end_to_end.py [--clusters 220] [--seeds 0,1,2] [--workers 2] [--json FILE]

The config is ``winnow curate``'s default (``--print-config``), unchanged: normalize,
heuristics, language, exact and near dedup, boilerplate, PII and shards. Articles and copies
that the heuristics or language stages would remove are left out of the benchmark when it is
built, so what is measured is deduplication; any document still removed by another stage is
reported.

Scores, per seed and over all seeds:

* recall: correct duplicate removals over the removals needed (every truth cluster but one
  member); precision: correct removals over all removals as ``exact_duplicate`` or
  ``near_duplicate``.
  A removal is correct when the removed document and the survivor it names are in one truth
  cluster.
* kept/: truth clusters of 2+ documents that keep exactly one member, more than one (copies
  that escaped), or none; near misses kept; fragments: kept documents that lost a line of
  their article (not one of the site, licence or editor's lines the builder added), and the
  largest share of its words a kept document lost.
* shards/: documents listed in the shards, and truth clusters with more than one document
  there.

It imports the installed ``winnow`` (``pip install -e .``), and ``near_dup_data`` from beside
itself. To measure other code on the same data, run it in an environment where that tree is
installed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict

import pyarrow.parquet as pq
from syndication_data import SyndicationBenchmark, build_syndication_benchmark

from winnow.filters.pii import PiiConfig, PiiRedactor
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.schemas.shard_format import shard_files
from winnow.schemas.shard_reader import read_documents, read_manifest

DEDUP_REASONS = ("exact_duplicate", "near_duplicate")
_WORD = re.compile(r"\w+")


def write_input(benchmark: SyndicationBenchmark, path: str, seed: int) -> None:
    order = list(benchmark.docs)
    random.Random(seed).shuffle(order)
    with open(path, "w", encoding="utf-8") as handle:
        for doc in order:
            handle.write(json.dumps({"id": doc.id, "text": doc.text}) + "\n")


def shard_document_ids(run_dir: str) -> set[str]:
    """Ids of the documents the shards' examples come from (``shards/*.documents.jsonl``)."""
    directory = os.path.join(run_dir, "shards")
    return {ref.id for shard in read_manifest(directory).shards
            for ref in read_documents(os.path.join(directory, shard_files(shard.name)[2]))}


def lost_article_lines(before: str, after: str, boilerplate: frozenset[str],
                       redactor: PiiRedactor) -> bool:
    """Whether line removal cut a line of the article itself from ``before`` (compared as the
    pii stage redacted it: "15.4.2.3. Registration" reads as an IP address there)."""
    left = set(after.split("\n"))
    return any(redactor.redact(line).text not in left and line not in boilerplate
               for line in before.split("\n") if line.strip())


def score(benchmark: SyndicationBenchmark, run_dir: str) -> dict:
    docs = {doc.id: doc for doc in benchmark.docs}
    truth = {doc.id: doc.truth_cluster for doc in benchmark.docs}
    removed = pq.read_table(os.path.join(run_dir, "removed")).to_pylist()
    kept = {row["id"]: row["text"] for row in pq.read_table(
        os.path.join(run_dir, "kept")).to_pylist()}
    sizes = Counter(truth.values())
    needed = sum(size - 1 for size in sizes.values())

    dedup = [row for row in removed if row["reason"] in DEDUP_REASONS]
    correct = sum(truth[row["id"]] == truth[json.loads(row["details"])["survivor_id"]]
                  for row in dedup)
    kept_per_cluster = Counter(truth[doc_id] for doc_id in kept)
    multi = [cluster for cluster, size in sizes.items() if size > 1]
    near_misses = [doc for doc in benchmark.docs if doc.kind.startswith("near_miss")]
    lost = {doc_id: 1 - len(_WORD.findall(text)) / len(_WORD.findall(docs[doc_id].text))
            for doc_id, text in kept.items()}
    redactor = PiiRedactor(PiiConfig())
    fragments = [doc_id for doc_id, text in kept.items() if lost_article_lines(
        docs[doc_id].text, text, benchmark.boilerplate_lines, redactor)]
    in_shards = Counter(truth[doc_id] for doc_id in shard_document_ids(run_dir))
    other_removals = Counter(f"{row['stage']}/{row['reason']}" for row in removed
                             if row["reason"] not in DEDUP_REASONS)
    return {
        "documents": len(docs),
        "truth_clusters_2plus": len(multi),
        "needed_removals": needed,
        "dedup_removals": len(dedup),
        "correct_removals": correct,
        "recall": correct / needed if needed else 1.0,
        "precision": correct / len(dedup) if dedup else 1.0,
        "clusters_keeping_one": sum(kept_per_cluster[c] == 1 for c in multi),
        "clusters_keeping_more": sum(kept_per_cluster[c] > 1 for c in multi),
        "clusters_keeping_none": sum(kept_per_cluster[c] == 0 for c in multi),
        "near_misses": len(near_misses),
        "near_misses_kept": sum(doc.id in kept for doc in near_misses),
        "kept": len(kept),
        "fragments_kept": len(fragments),
        "max_share_of_words_lost": round(max(lost.values(), default=0.0), 3),
        "shard_documents": sum(in_shards.values()),
        "clusters_with_2plus_in_shards": sum(count > 1 for count in in_shards.values()),
        "removed_by_other_stages": dict(sorted(other_removals.items())),
        "near_misses_removed_by": dict(Counter(
            f"{row['stage']}/{row['reason']}" for row in removed
            if docs[row["id"]].kind.startswith("near_miss"))),
    }


def describe(benchmark: SyndicationBenchmark, seed: int) -> None:
    kinds = Counter(doc.kind.split(":")[0] if ":" in doc.kind else
                    ("copy" if doc.kind not in ("original", "singleton", "mirror") else doc.kind)
                    for doc in benchmark.docs)
    sizes = Counter(Counter(doc.truth_cluster for doc in benchmark.docs).values())
    copies = [doc.jaccard for doc in benchmark.docs
              if doc.kind not in ("original", "singleton") and not doc.kind.startswith("near")]
    near = [doc.jaccard for doc in benchmark.docs if doc.kind.startswith("near")]
    print(f"seed {seed}: {len(benchmark.docs)} documents from {benchmark.articles} articles: "
          f"{dict(kinds)}; truth cluster sizes {dict(sorted(sizes.items()))}; copies' Jaccard "
          f"to their original {min(copies):.3f}..{max(copies):.3f}, near misses' "
          f"{min(near):.3f}..{max(near):.3f}; draws given up {benchmark.rejected}; pairs across "
          f"clusters at the threshold: {len(benchmark.joined)}")


def run_seed(clusters: int, seed: int, workers: int, keep_dir: str | None) -> dict:
    benchmark = build_syndication_benchmark(clusters, 0.8, seed)
    describe(benchmark, seed)
    work = keep_dir or tempfile.mkdtemp(prefix="winnow-syndication-")
    os.makedirs(work, exist_ok=True)
    try:
        input_path = os.path.join(work, f"syndication-{seed}.jsonl")
        write_input(benchmark, input_path, seed)
        beam_args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
                     if workers > 1 else [])
        started = time.monotonic()
        run_curation([input_path], os.path.join(work, f"run-{seed}"), config_from_dict({}),
                     beam_args, overwrite=True)
        result = score(benchmark, os.path.join(work, f"run-{seed}"))
        result["seconds"] = round(time.monotonic() - started, 1)
        result["seed"] = seed
        return result
    finally:
        if keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def print_table(results: list[dict]) -> None:
    notes = ("seed", "removed_by_other_stages", "near_misses_removed_by")
    rows = [key for key in results[0] if key not in notes]
    print(f"{'':32}" + "".join(f"seed {r['seed']:<8}" for r in results))
    for key in rows:
        values = [r[key] for r in results]
        cells = [f"{v:<13.4f}" if isinstance(v, float) else f"{v!s:<13}" for v in values]
        print(f"{key:32}" + "".join(cells))
    for result in results:
        print(f"seed {result['seed']}: removed by other stages: "
              f"{result['removed_by_other_stages'] or 'none'}; near misses removed by: "
              f"{result['near_misses_removed_by'] or 'none'}")
    totals = defaultdict(int)
    for result in results:
        for key in ("needed_removals", "dedup_removals", "correct_removals"):
            totals[key] += result[key]
    print(f"all seeds: recall {totals['correct_removals'] / totals['needed_removals']:.4f}, "
          f"precision {totals['correct_removals'] / totals['dedup_removals']:.4f} "
          f"({totals['correct_removals']} correct of {totals['dedup_removals']} removed, "
          f"{totals['needed_removals']} to remove)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=220)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep-dir", help="keep inputs and run folders here")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    results = [run_seed(args.clusters, int(seed), args.workers, args.keep_dir)
               for seed in args.seeds.split(",")]
    print_table(results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
