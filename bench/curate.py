"""Curation throughput on real text: documents/s and MB/s per stage and end to end.

    python bench/curate.py ../shared/corpora/{linux-doc,python-doc,perl-doc}.jsonl.gz \
        --workers 2

Per-stage figures divide a stage's input by the CPU seconds its own code took (summed over
workers, so they are per core); the end-to-end figure divides the input by the wall time of the
whole run, Beam's shuffles and the Parquet writes included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from winnow.pipeline.config import load_config
from winnow.pipeline.curate import run_curation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--workers", type=int, default=2,
                        help="DirectRunner multi_processing workers; 0 runs in memory")
    parser.add_argument("--config", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    beam_args = (["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
                 if args.workers else [])
    output = tempfile.mkdtemp(prefix="winnow-bench-")
    try:
        started = time.monotonic()
        report = run_curation(args.inputs, output, load_config(args.config), beam_args)
        wall = time.monotonic() - started
    finally:
        shutil.rmtree(output, ignore_errors=True)

    documents = report["documents"]["input"]
    megabytes = report["stages"][0]["bytes_out"] / 1e6
    rows = []
    print(f"corpus: {documents:,} documents, {megabytes:.1f} MB; "
          f"workers: {args.workers or 'in-memory'}; cores: {os.cpu_count()}")
    print(f"{'stage':<12} {'docs in':>9} {'MB in':>8} {'cpu s':>8} {'docs/s/core':>12} "
          f"{'MB/s/core':>10}")
    for stage in report["stages"][1:]:
        if not stage["enabled"] or not stage["seconds"]:
            continue
        docs_per_s = stage["documents_in"] / stage["seconds"]
        mb_per_s = stage["bytes_in"] / 1e6 / stage["seconds"]
        rows.append({"stage": stage["name"], "docs_per_s_per_core": docs_per_s,
                     "mb_per_s_per_core": mb_per_s, "cpu_seconds": stage["seconds"]})
        print(f"{stage['name']:<12} {stage['documents_in']:>9,} {stage['bytes_in'] / 1e6:>8.1f} "
              f"{stage['seconds']:>8.2f} {docs_per_s:>12,.0f} {mb_per_s:>10.2f}")
    print(f"{'end to end':<12} {documents:>9,} {megabytes:>8.1f} {wall:>8.2f} "
          f"{documents / wall:>12,.0f} {megabytes / wall:>10.2f}   (wall seconds; all workers)")
    print(f"kept {report['documents']['kept']:,}; removed "
          f"{sum(report['documents']['removed'].values()):,}; quarantined "
          f"{sum(report['documents']['quarantined'].values()):,}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"stages": rows, "wall_seconds": wall, "documents": documents,
                       "megabytes": megabytes, "workers": args.workers}, handle, indent=2)


if __name__ == "__main__":
    main()
