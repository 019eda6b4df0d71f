"""``report.json``: what a curation run did, written into the run folder.

Layout (``REPORT_FORMAT_VERSION`` 1)::

    {
      "format_version": 1,
      "inputs": ["data/*.jsonl.gz"],           # the patterns given on the command line
      "runner": "DirectRunner",                 # added by the driver at the end, with:
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
         "bytes_in": ..., "bytes_out": ..., "seconds": 1.2, "removed": {"empty": 7},
         "tallies": {...}}, ...                 # stage-specific counts, see below
      ],
      "pii": {"EMAIL": 12, "PHONE": 3},         # spans redacted in kept documents
      "quality": {"enabled": false, "note": "quality stage off: no model configured"}
             or {"enabled": true, "model": ..., "mode": "threshold", "threshold": 0.5,
                 "pareto_alpha": null,
                 "histogram": {"bin_edges": [0.0, 0.05, ..., 1.0],  # 21 edges, 20 bins
                               "counts": [...]}},                  # documents scored, by bin
      "languages": {                            # the language mix
        "enabled": true,                        # language stage on
        "at_stage": {"en": {"kept": 89, "removed": 2}, "de": {"kept": 0, "removed": 1}},
        "kept": {"en": 87}                      # language of the documents in kept/
      },                                        # ("unidentified" when the stage was off)
      "lengths": {                              # document length distributions
        "unit": "characters",
        "bin_edges": [16, 32, 64, ..., 32768],  # log2 bins: bin i holds [edges[i], edges[i+1])
        "before": [51, 85, ...],                # documents as read, before any stage
        "after": [0, 0, ...]                    # documents as written to kept/
      },
      "near_dedup": {"enabled": false}
                 or {"enabled": true, "threshold": 0.8, "bands": 16, "rows": 8,
                     "clusters": 1, "documents_in_clusters": 2,
                     "cluster_size_histogram": {"2": 1, "5-8": 2},  # sizes 2, 3-4,
                                                # 5-8, ...: the bins holding clusters
                     "largest_clusters": [{"cluster_id", "size", "survivor_id",
                                           "member_ids"}, ...],        # 10 at most
                     "fraction_removed": 0.011},
      "shards": {"enabled": false}
             or {"enabled": true, "objective": "sop", "max_seq_len": 128, "examples": 1413,
                 "tokens": 160313, "shards": 1, "label_counts": {"0": 713, "1": 700},
                 "vocab_size": 8542, "tokenizer_sha256": ...,
                 "length_histogram": {"bin_width": 16, "counts": {"0": 2, "16": 28, ...}},
                 "pairs": {"documents": 87, "truncated": 1084, ...}},  # pairing tallies
      "examples": {"too_few_words": [{"id": ..., "stage": ..., "text": ...,
                                      "details": {"words": 12, "min": 50}}, ...]},
                                                # the smallest ids per reason, first 500
                                                # characters, PII redacted when pii is on;
                                                # details as in removed/ (absent in older ones)
      "config": {...}                           # the full effective config
    }

Length bins: a text of n characters (Unicode code points) falls in bin ``n.bit_length()``,
which holds [2 ** (k - 1), 2 ** k) (bin 0: empty text); ``bin_edges`` covers the bins from the
smallest to the largest one used, before or after. Stage tallies behind the sections: the read
stage tallies ``chars_bin:NN`` (lengths before), the language stage ``kept_language:xx`` and
``removed_language:xx``, the quality stage ``score_bin:NN``, the pii stage the PII types, the
shards stage ``length_bin:NNNN`` and its pairing counts. ``languages`` and ``lengths`` are absent
from reports written before they existed; readers treat every section but ``documents`` as
optional.

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
