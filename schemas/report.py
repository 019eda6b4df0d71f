"""``report.json``: what a curation run did, written into the run folder.

The layout (``REPORT_FORMAT_VERSION`` 1) is the ``Report`` TypedDict below and the section
types it names, field by field; ``report_to_json`` and ``report_from_json`` are the only
places a report turns into bytes and back. The pipeline writes it (``pipeline.report``), the
driver adds ``runner`` and ``wall_seconds`` at the end, readers load it (``pipeline.run_folder``).

Length bins: a text of n characters (Unicode code points) falls in bin ``n.bit_length()``,
which holds [2 ** (k - 1), 2 ** k) (bin 0: empty text); ``bin_edges`` covers the bins from the
smallest to the largest one used, before or after. Stage tallies behind the sections: the read
stage tallies ``chars_bin:NN`` (lengths before), the language stage ``kept_language:xx`` and
``removed_language:xx``, the quality stage ``score_bin:NN``, the pii stage the PII types, the
shards stage ``length_bin:NNNN`` and its pairing counts; the heuristics stage's measure
histograms (``measure_bin:<measure>:NN``) are the ``thresholds`` section, not stage tallies.
``languages``, ``lengths``, ``thresholds``, ``sources`` and ``kept_examples`` are absent from
reports written before they existed; readers treat every section but ``documents`` as optional.

Invariant, checked by ``check_accounting``: input = kept + sum(removed) + sum(quarantined).
``seconds`` are worker CPU seconds summed over workers, so they can exceed ``wall_seconds``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired, Required
else:  # winnow supports Python 3.10
    from typing_extensions import NotRequired, Required

REPORT_FORMAT_VERSION = 1
REPORT_FILE = "report.json"


class Documents(TypedDict):
    """The document balance of a run."""

    input: int
    """Records read: documents + quarantined."""
    kept: int
    """Documents written to kept/."""
    removed: dict[str, int]
    """Reason -> documents removed for it, over all stages; reasons sorted."""
    quarantined: dict[str, int]
    """Reason -> records quarantined at read (e.g. ``malformed_json``); reasons sorted."""


class StageRow(TypedDict):
    """One stage of the funnel: its name, whether it ran, and its ``StageStats.to_json``."""

    name: str
    enabled: bool
    documents_in: int
    documents_out: int
    bytes_in: int
    bytes_out: int
    seconds: float
    """Worker CPU seconds summed over workers, rounded to ms."""
    removed: dict[str, int]
    """Reason -> documents this stage removed."""
    tallies: dict[str, int]
    """Stage-specific counts (see the module docstring), keys sorted."""


class Histogram(TypedDict):
    bin_edges: list[float]
    """21 edges over [0, 1]: 20 bins."""
    counts: list[int]
    """Documents scored, by bin."""


class QualitySection(TypedDict, total=False):
    """``{"enabled": false, "note": why}`` or the score histogram with the cut."""

    enabled: Required[bool]
    note: str
    """Off only: ``quality stage off: no model configured`` or ``... disabled``."""
    model: str
    mode: str
    """``threshold`` or ``pareto``."""
    threshold: float | None
    """Set in threshold mode, else null."""
    pareto_alpha: float | None
    """Set in pareto mode, else null."""
    histogram: Histogram


class LanguageCounts(TypedDict):
    kept: int
    removed: int


class LanguagesSection(TypedDict, total=False):
    """The language mix; languages by count, largest first. A rebuilt report has ``kept`` only
    (or nothing when kept/ is empty)."""

    enabled: bool
    """The language stage was on."""
    at_stage: dict[str, LanguageCounts]
    """Language -> what the language stage kept and removed."""
    kept: dict[str, int]
    """Language of the documents in kept/ (``unidentified`` when the stage was off)."""


class LengthsSection(TypedDict):
    """Document length distributions in log2 bins: bin i holds [edges[i], edges[i+1])."""

    unit: str
    """``characters``."""
    bin_edges: list[int]
    """E.g. [16, 32, 64, ..., 32768]; empty when no document was read."""
    before: list[int]
    """Documents as read, before any stage, by bin."""
    after: list[int]
    """Documents as written to kept/, by bin."""


class NearDedupSection(TypedDict, total=False):
    """``{"enabled": false}`` or the clusters near-dedup found."""

    enabled: Required[bool]
    threshold: float
    bands: int
    rows: int
    clusters: int
    documents_in_clusters: int
    cluster_size_histogram: dict[str, int]
    """Size bin (``2``, ``3-4``, ``5-8``, ...) -> clusters; only the bins holding clusters."""
    largest_clusters: list[dict[str, Any]]
    """At most 10, largest first: ``cluster_id``, ``size``, ``survivor_id``, ``member_ids``."""
    fraction_removed: float
    """Near duplicates removed / documents into the stage, rounded to 6 places."""


class LengthHistogram(TypedDict):
    bin_width: int
    """Tokens per bin (16)."""
    counts: dict[str, int]
    """Bin's lowest length -> examples (JSON keys are strings)."""


class ShardsSection(TypedDict, total=False):
    """``{"enabled": false}`` or what DIR/shards/ holds (from its manifest)."""

    enabled: Required[bool]
    objective: str
    """``sop`` or ``nsp``."""
    max_seq_len: int
    examples: int
    tokens: int
    shards: int
    """Number of shard files."""
    label_counts: dict[str, int]
    """Label -> examples, e.g. ``{"0": 713, "1": 700}``."""
    vocab_size: int | None
    tokenizer_sha256: str | None
    length_histogram: LengthHistogram
    pairs: dict[str, int]
    """Pairing tallies of the shards stage (``documents``, ``truncated``, ...)."""
    without_example: dict[str, int]
    """Reason -> kept documents that gave no training example (they stay in kept/, so the
    shards stage's ``documents_in - documents_out``): ``no_tokens``, ``one_sentence``,
    ``long_sentences`` (``pipeline.shards.WITHOUT_EXAMPLE``). Absent from older reports."""
    note: str
    """Only when the manifest has one (e.g. why no shard was written)."""


class Example(TypedDict):
    """A removed document: the smallest ids per reason are kept as examples. With the pii
    stage on, its id, text and details are redacted as removed/ writes them (the examples are
    chosen by the original ids)."""

    id: str
    stage: str
    text: str
    """The first 500 characters, PII redacted when the pii stage was on."""
    details: dict[str, Any]
    """As in removed/'s ``details`` column, e.g. ``{"words": 12, "min": 50}``."""


class NearThresholdExample(TypedDict):
    """A document beside a threshold (PII redacted when the pii stage was on)."""

    id: str
    value: float
    """Its measured value."""
    outcome: str
    """What its stage did with it: ``kept`` or ``removed: <reason>`` (any rule's)."""
    text: str
    """The first 300 characters, as the stage saw them."""


class MeasureHistogram(TypedDict):
    """One heuristic measure over every document its stage saw."""

    stage: str
    unit: str
    """What the value counts, e.g. ``words``, ``fraction of lines``."""
    bounds: dict[str, float]
    """``{"min": 50}``, ``{"max": 0.3}`` or both: a ``min`` rule drops below, ``max`` above."""
    scale: str
    """``linear`` (bins of equal width over ``bin_edges``) or ``log2`` (counts: bin i holds
    [edges[i], edges[i+1]), as ``lengths``)."""
    bin_edges: list[float]
    counts: list[int]
    """Documents by bin; a value past the last linear edge counts in the last bin."""
    near: dict[str, dict[str, list[NearThresholdExample]]]
    """Bound (``min``/``max``) -> ``below``/``above`` -> the documents nearest the bound on
    that side, nearest first (ties by id). On the bound counts as ``above`` for ``min``
    (kept) and ``below`` for ``max`` (kept)."""


class ThresholdsSection(TypedDict):
    measures: dict[str, MeasureHistogram]
    """Measure (named as in the removals' details: ``words``, ``top_2gram_char_fraction``)
    -> its distribution; measures in the order the rules check them
    (``filters.heuristics.MEASURES``)."""


class SourceRow(TypedDict):
    kept: int
    removed: dict[str, int]
    """Reason -> documents."""
    quarantined: dict[str, int]
    """Reason -> records (input files only: a quarantined record has no fields)."""


class SourcesSection(TypedDict):
    """The 50 largest sources of each kind, largest first, then ``(N others)`` summed."""

    input_file: dict[str, SourceRow]
    """By the file a record was read from."""
    source_field: dict[str, SourceRow]
    """By the records' own ``source`` field (kept and removed documents that have one)."""


class KeptExample(TypedDict):
    id: str
    text: str
    """The first 500 characters as written to kept/."""


class Report(TypedDict, total=False):
    """``report.json``, keys in the order they are written. A report rebuilt from the folders
    of a run that did not finish (``rebuilt_from_folders``) has ``documents``,
    ``removed_by_stage``, ``languages.kept`` and ``shards`` only."""

    rebuilt_from_folders: bool
    """Only in a rebuilt report, never written."""
    format_version: int
    inputs: list[str]
    """The patterns given on the command line (PII redacted when the pii stage was on)."""
    documents: Required[Documents]
    removed_by_stage: dict[str, dict[str, int]]
    """Stage -> reason -> documents; stages and reasons sorted by name."""
    stages: list[StageRow]
    """In pipeline order, enabled or not."""
    pii: dict[str, int]
    """PII type -> spans redacted in kept documents, e.g. ``{"EMAIL": 12}``."""
    quality: QualitySection
    languages: LanguagesSection
    lengths: LengthsSection
    near_dedup: NearDedupSection
    shards: ShardsSection
    thresholds: ThresholdsSection
    sources: SourcesSection
    kept_examples: list[KeptExample]
    """The kept documents with the smallest ids (3 at most; none with no examples)."""
    examples: dict[str, list[Example]]
    """Reason -> examples, reasons sorted."""
    config: dict[str, Any]
    """The full effective config (``schemas.config.config_to_dict``)."""
    wall_seconds: NotRequired[float]
    """Launch to finish, measured by the driver; written after the pipeline, with ``runner``."""
    runner: NotRequired[str]
    """E.g. ``DirectRunner``."""


def report_to_json(report: Report) -> bytes:
    """The bytes of report.json: indented, UTF-8 as is, keys in the order built."""
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()


def report_from_json(data: bytes) -> Report:
    """report.json's bytes as a ``Report``: the JSON object as it is (a report from an older
    winnow may lack sections; readers treat all but ``documents`` as optional)."""
    return json.loads(data.decode("utf-8"))


@dataclass
class StageStats:
    """Running totals of one stage; partial totals from workers merge by addition."""

    documents_in: int = 0
    documents_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    removed: Counter = field(default_factory=Counter)
    tallies: Counter = field(default_factory=Counter)
    """Stage-specific counts, e.g. PII spans by type."""

    def merge(self, other: StageStats) -> StageStats:
        return StageStats(
            self.documents_in + other.documents_in,
            self.documents_out + other.documents_out,
            self.bytes_in + other.bytes_in,
            self.bytes_out + other.bytes_out,
            self.seconds + other.seconds,
            self.removed + other.removed,
            self.tallies + other.tallies,
        )

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["seconds"] = round(self.seconds, 3)
        values["removed"] = dict(sorted(self.removed.items()))
        values["tallies"] = dict(sorted(self.tallies.items()))
        return values


def check_accounting(report: Report) -> list[str]:
    """Problems with the document balance of a report; empty when every record is accounted for."""
    documents = report["documents"]
    accounted = (documents["kept"] + sum(documents["removed"].values())
                 + sum(documents["quarantined"].values()))
    if accounted != documents["input"]:
        return [f"input {documents['input']} != kept + removed + quarantined = {accounted}"]
    return []
