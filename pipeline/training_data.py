"""Documents for training models outside the Beam pipeline (quality classifier, tokenizer):
read with curate's readers and normalized with its normalize stage, so a model sees text the
way the pipeline will show it. Quarantined records are skipped and counted on stderr."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

from winnow.filters.normalize import NormalizeConfig, normalize_text
from winnow.pipeline.curate import expand_inputs
from winnow.pipeline.readers import InputConfig, read_records
from winnow.schemas.records import Document


def normalized_texts(patterns: list[str], text_field: str = "text") -> Iterator[str]:
    """Normalized, non-empty texts of every document the patterns name, in file order."""
    for doc in normalized_documents(patterns, text_field):
        yield doc.text


def normalized_documents(patterns: list[str], text_field: str = "text") -> Iterator[Document]:
    """Every readable document the patterns name, normalized, empty ones left out."""
    config = InputConfig(text_field=text_field, keep_fields=())  # only the text is needed
    normalize = NormalizeConfig()
    quarantined = 0
    for path in expand_inputs(patterns):
        for record in read_records(path, config):
            if not isinstance(record, Document):
                quarantined += 1
                continue
            text = normalize_text(record.text, normalize)
            if text:
                yield dataclasses.replace(record, text=text)
    if quarantined:
        print(f"skipped {quarantined} unreadable records in {patterns}", file=sys.stderr)
