"""Documents packed into bytes for the shuffles that carry them whole.

Beam's local runner (FnApiRunner) keeps a GroupByKey's input decoded, as Python objects, until
the group is read: a shuffle of Documents held their text at full size (and at 2 or 4 bytes a
character for text beyond Latin-1) beside every encoded copy. Packed, a record is its pickle,
whose text is zstd-compressed (``schemas.records``): about a third of the text. Pack right
before a GroupByKey (or CoGroupByKey, Reshuffle) and unpack right after; grouping keys are
never packed, and what a stage computes is the same.
"""

from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam


def packed(record: Any) -> bytes:
    return pickle.dumps(record, pickle.HIGHEST_PROTOCOL)


def unpacked(data: bytes) -> Any:
    return pickle.loads(data)


def packed_value(key_and_record: tuple) -> tuple:
    key, record = key_and_record
    return key, packed(record)


class PackedReshuffle(beam.PTransform):
    """``beam.Reshuffle`` of records, which travel packed."""

    def expand(self, records):
        return (records
                | "Pack" >> beam.Map(packed)
                | "Reshuffle" >> beam.Reshuffle()
                | "Unpack" >> beam.Map(unpacked))
