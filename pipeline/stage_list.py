"""The curation stages, in the order documents go through them: the one list the pipeline, the
config and the report are built from.

Each entry owns its name, which is also its config section (``winnow curate --print-config``),
its row in the report and its Beam label; its config section's type (defined beside its rules
in ``filters/``); its rule for whether it runs; and a factory that builds its transform from the
config. Every transform takes documents and returns ``kept``, ``removed`` and ``stats``
(``pipeline.transforms``); ``near_dedup`` also returns ``clusters`` for the report.

The order: cheap stages first, so the expensive ones (language ID, the dedup shuffles) see
fewer documents; quality before near dedup, so each cluster keeps its best-scored member;
documents decided whole (exact, then near duplicates) before ``boilerplate`` cuts the lines the
survivors share (cut first, the copies of a syndicated article become fragments that no longer
look alike); PII last, on what is kept.

To add a stage: its rules and config section in a module of ``filters/``, one entry here, and,
when it is not a per-document ``pipeline.stages.Stage``, its grouping transform in
``pipeline/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from winnow.filters.boilerplate import BoilerplateConfig
from winnow.filters.dedup import ExactDedupConfig
from winnow.filters.heuristics import HeuristicsConfig
from winnow.filters.language import LanguageConfig
from winnow.filters.minhash import NearDedupConfig
from winnow.filters.normalize import NormalizeConfig
from winnow.filters.pii import PiiConfig
from winnow.filters.quality import QualityConfig
from winnow.pipeline.boilerplate import RemoveBoilerplate
from winnow.pipeline.dedup import ExactDedup
from winnow.pipeline.near_dedup import NearDedup
from winnow.pipeline.stages import (
    HeuristicsStage,
    LanguageStage,
    NormalizeStage,
    PiiStage,
    QualityStage,
)
from winnow.pipeline.transforms import ApplyStage

Config = Any
"""The whole curation config (``pipeline.config.WinnowConfig``, assembled from this list)."""


@dataclass(frozen=True)
class CurationStage:
    name: str
    """Config section, report row and Beam label."""
    config_type: type
    """The dataclass of its config section."""
    build: Callable[[Config], beam.PTransform]
    """docs -> {kept, removed, stats}, from the config (its own section; ``boilerplate`` also
    reads the heuristics' word count, the rule its documents passed whole)."""
    runs: Callable[[Config], bool] | None = None
    """Whether it runs; by default its section's ``enabled``."""

    def enabled(self, config: Config) -> bool:
        return self.runs(config) if self.runs else getattr(config, self.name).enabled


def words_passed(config: Config) -> int:
    """The word count every document passed whole: the heuristics stage's ``min_words`` when
    its Gopher rules ran, else 1. What boilerplate removal leaves must still reach it."""
    heuristics = config.heuristics
    return heuristics.min_words if heuristics.enabled and heuristics.gopher_quality else 1


STAGES: tuple[CurationStage, ...] = (
    CurationStage("normalize", NormalizeConfig,
                  lambda config: ApplyStage(NormalizeStage(config.normalize))),
    CurationStage("heuristics", HeuristicsConfig,
                  lambda config: ApplyStage(HeuristicsStage(config.heuristics))),
    CurationStage("language", LanguageConfig,
                  lambda config: ApplyStage(LanguageStage(config.language))),
    CurationStage("exact_dedup", ExactDedupConfig,
                  lambda config: ExactDedup(config.exact_dedup)),
    CurationStage("quality", QualityConfig,
                  lambda config: ApplyStage(QualityStage(config.quality)),
                  runs=lambda config: config.quality.active),  # enabled and given a model
    CurationStage("near_dedup", NearDedupConfig,
                  lambda config: NearDedup(config.near_dedup)),
    CurationStage("boilerplate", BoilerplateConfig,
                  lambda config: RemoveBoilerplate(config.boilerplate, words_passed(config))),
    CurationStage("pii", PiiConfig,
                  lambda config: ApplyStage(PiiStage(config.pii))),
)

STAGE_NAMES: tuple[str, ...] = ("read", *(stage.name for stage in STAGES), "shards")
"""Every row of the report's funnel: reading, the stages, and the shards at the end."""


def stage_order(config: Config) -> list[tuple[str, bool]]:
    """(name, runs) for every row of the funnel."""
    return [("read", True), *((stage.name, stage.enabled(config)) for stage in STAGES),
            ("shards", config.shards.enabled)]
