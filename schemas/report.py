"""``report.json``: what a curation run did, written into the run folder.

Layout (``REPORT_FORMAT_VERSION`` 1)::

    {
      "format_version": 1,
      "inputs": ["data/*.jsonl.gz"],           # the patterns given on the command line
      "runner": "DirectRunner",
      "wall_seconds": 12.3,                     # launch to finish, measured by the driver
      "documents": {
        "input": 1000,                          # records read: documents + quarantined
        "kept": 800,
        "removed": {"too_few_words": 150, ...}, # reason -> documents, over all stages
        "quarantined": {"malformed_json": 3, ...}
      },
      "removed_by_stage": {"heuristics": {"too_few_words": 150}, ...},
      "stages": [                               # in pipeline order, enabled or not
        {"name": "normalize", "enabled": true, "documents_in": 997, "documents_out": 990,
         "bytes_in": ..., "bytes_out": ..., "seconds": 1.2, "removed": {"empty": 7}}, ...
      ],
      "pii": {"EMAIL": 12, "PHONE": 3},         # spans redacted in kept documents
      "examples": {"too_few_words": [{"id": ..., "stage": ..., "text": ...}, ...]},
      "config": {...}                           # the full effective config
    }

Invariant, checked by ``check_accounting``: input = kept + sum(removed) + sum(quarantined).
``seconds`` are worker CPU seconds summed over workers, so they can exceed ``wall_seconds``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

REPORT_FORMAT_VERSION = 1
REPORT_FILE = "report.json"


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


def check_accounting(report: dict[str, Any]) -> list[str]:
    """Problems with the document balance of a report; empty when every record is accounted for."""
    documents = report["documents"]
    accounted = (documents["kept"] + sum(documents["removed"].values())
                 + sum(documents["quarantined"].values()))
    if accounted != documents["input"]:
        return [f"input {documents['input']} != kept + removed + quarantined = {accounted}"]
    return []
