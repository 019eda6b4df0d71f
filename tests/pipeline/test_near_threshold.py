"""Near-threshold candidates leave each stage already cut to the few the report shows: one
candidate per document and bound was a PCollection of (documents x bounds) texts."""

import random
from collections import defaultdict

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that

from tests.filters.test_heuristics import ENGLISH
from winnow.filters.heuristics import HeuristicsConfig
from winnow.pipeline.stages import HeuristicsStage
from winnow.pipeline.transforms import (
    NEAR_THRESHOLD,
    NEAR_THRESHOLD_EXAMPLES,
    ApplyStage,
    NearestCandidates,
    near_threshold_candidate,
)
from winnow.schemas.records import Document

WORDS = ENGLISH.split()
DOCS = [Document(f"doc-{i:02d}", " ".join(WORDS[: 20 + 7 * i]) + " #tag" * (i % 4),
                 "in.jsonl", i) for i in range(12)]


def test_nearest_candidates_are_the_smallest_per_key_whatever_the_order():
    offered = [(f"key-{i % 3}", (random.Random(i).random(), ("doc", "in", i)))
               for i in range(60)]
    random.Random(7).shuffle(offered)
    nearest = NearestCandidates(3)
    for key, candidate in offered:
        nearest.offer(key, candidate)
    given = defaultdict(list)
    for tagged in nearest.flush():
        assert tagged.tag == NEAR_THRESHOLD
        key, candidate = tagged.value.value
        given[key].append(candidate)
    expected = defaultdict(list)
    for key, candidate in offered:
        expected[key].append(candidate)
    assert dict(given) == {key: sorted(values)[:3] for key, values in expected.items()}
    assert list(nearest.flush()) == []  # flushed: the next bundle starts empty


def _all_candidates(stage: HeuristicsStage) -> dict[str, list]:
    by_key = defaultdict(list)
    for doc in DOCS:
        outcome, measures = stage.apply_and_measure(doc)
        for measure, value in measures.items():
            for side, bound in stage.bounds(measure).items():
                key, candidate = near_threshold_candidate(doc, outcome, measure, value, side,
                                                          bound)
                by_key[key].append(candidate)
    return by_key


def test_a_stage_gives_only_the_nearest_candidates_of_each_threshold_side():
    stage = HeuristicsStage(HeuristicsConfig())
    every = _all_candidates(stage)
    assert max(len(values) for values in every.values()) > NEAR_THRESHOLD_EXAMPLES
    expected = {key: sorted(values)[:NEAR_THRESHOLD_EXAMPLES] for key, values in every.items()}

    def check(pairs):
        given = defaultdict(list)
        for key, candidate in pairs:
            given[key].append(candidate)
        assert {key: sorted(values) for key, values in given.items()} == expected

    with BeamTestPipeline() as pipeline:
        outputs = pipeline | beam.Create(DOCS) | ApplyStage(stage)
        assert_that(outputs[NEAR_THRESHOLD], check)
