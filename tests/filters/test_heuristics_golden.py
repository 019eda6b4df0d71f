"""The heuristics' verdicts and measures, one pass (``HeuristicFilter.judge``), against those the
separate rule functions and ``heuristic_measures`` gave before they were merged (commit 9165209),
over the fixture documents and the rule cases under configs that reach every rule.

``data/heuristics_golden.json.gz`` holds, per config in ``CONFIGS`` and text in ``texts()``,
``[[reason, details] or null, measures]`` as written at 9165209 by a script that ran
``HeuristicFilter(config)(cleaned)`` and ``heuristic_measures(cleaned, config)``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.filters.test_heuristics import RULE_CASES
from winnow.filters.heuristics import HeuristicFilter, HeuristicsConfig, heuristic_measures

DATA = Path(__file__).resolve().parent / "data"

CONFIGS = [
    {},
    {"min_words": 1},  # short fixture documents reach the later rules
    {"min_words": 1, "fineweb": True, "c4_lines": True, "drop_curly_bracket": True,
     "min_stop_words": 1},
    {"min_words": 1, "gopher_quality": False, "fineweb": True},
    # no n-gram measures, yet an n-gram verdict
    {"min_words": 1, "max_words": 20, "gopher_quality": False},
    {"min_words": 1, "max_words": 60},  # dropped for its length: no n-gram measures
]


def texts() -> list[str]:
    """The fixture documents (400 short real texts) and the rule cases' texts."""
    with gzip.open(DATA / "quality_pairs.jsonl.gz", "rt", encoding="utf-8") as handle:
        fixture = [json.loads(line)["text"] for line in handle]
    return fixture + [text for _, text, _, _ in RULE_CASES]


def golden() -> list[list[list]]:
    with gzip.open(DATA / "heuristics_golden.json.gz", "rt", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_one_pass_gives_the_verdicts_details_and_measures_of_before(index: int) -> None:
    rules = HeuristicFilter(HeuristicsConfig(**CONFIGS[index]))
    for text, (old_drop, old_measures) in zip(texts(), golden()[index], strict=True):
        cleaned = rules.clean(text)
        drop, measures = rules.judge(cleaned)
        assert (drop and [drop.reason, drop.details]) == old_drop
        assert json.loads(json.dumps(measures)) == old_measures
        assert list(measures) == list(old_measures)  # the report's order
        assert rules(cleaned) == drop  # the verdict-only path agrees
        assert heuristic_measures(cleaned, rules.config) == measures
