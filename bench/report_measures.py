"""What the report's threshold histograms cost: the heuristics stage's verdict alone against
``HeuristicFilter.judge``, the verdict and every rule's value (exact, for every document) in
one pass, per core, on real text.

    python bench/report_measures.py ../shared/corpora/{linux-doc,python-doc}.jsonl.gz

The heuristics stage runs ``judge`` on every document it sees
(``HeuristicsStage.apply_and_measure``): its CPU time is the ``judge`` column.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import time

from winnow.filters.heuristics import HeuristicFilter, HeuristicsConfig


def read_texts(paths: list[str], limit: int) -> list[str]:
    texts = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in itertools.islice(handle, limit)]
    return texts


def seconds(run, texts: list[str]) -> float:
    """The best of three passes over ``texts`` (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for text in texts:
            run(text)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--limit", type=int, default=2000, help="documents per file")
    args = parser.parse_args()
    texts = read_texts(args.inputs, args.limit)
    config = HeuristicsConfig()
    rules = HeuristicFilter(config)
    verdict = seconds(lambda text: rules(rules.clean(text)), texts)
    judge = seconds(lambda text: rules.judge(rules.clean(text)), texts)
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    print(f"{len(texts):,} documents, {megabytes:.1f} MB")
    print(f"verdict:  {verdict:.2f} s ({megabytes / verdict:.1f} MB/s per core)")
    print(f"judge:    {judge:.2f} s ({megabytes / judge:.1f} MB/s per core), "
          f"{judge / verdict:.2f} x the verdict")


if __name__ == "__main__":
    main()
