"""What the report's threshold histograms cost: the heuristics stage's verdict alone against
the verdict plus ``heuristic_measures`` (every rule's value, exact, for every document), per
core, on real text.

    python bench/report_measures.py ../shared/corpora/{linux-doc,python-doc}.jsonl.gz

The heuristics stage runs both on every document it sees (``HeuristicsStage.measures``), so
the stage's CPU time grows by the ``measures`` column; the whole run by less.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import time

from winnow.filters.heuristics import HeuristicFilter, HeuristicsConfig, heuristic_measures


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
    measures = seconds(lambda text: heuristic_measures(rules.clean(text), config), texts)
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    print(f"{len(texts):,} documents, {megabytes:.1f} MB")
    print(f"verdict:  {verdict:.2f} s ({megabytes / verdict:.1f} MB/s per core)")
    print(f"measures: {measures:.2f} s ({megabytes / measures:.1f} MB/s per core), "
          f"{measures / verdict:.2f} x the verdict")


if __name__ == "__main__":
    main()
