"""Curated runs of the bundled sample plus documents with planted PII, shared by the report
tests (terminal and HTML) through the session fixtures in conftest.py."""

import json
from pathlib import Path

from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample"

PLANTED = {
    "email": "planted.person@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "ssn": "123-45-6789",
}
# The planted values, and pieces of them that would still identify them.
FORBIDDEN = [*PLANTED.values(), "planted.person@", "7946 0958", "4111 1111", "4111111111111111",
             "AKIAIOSFODNN7", "123-45-678"]
FILLER = ("Remember remember the fifth of November, gunpowder treason and plot. " * 10)[:493]
PLANTED_DOCS = [
    # Too short: removed by heuristics (too_few_words), PII in plain sight.
    {"id": "0000-pii-short", "text": f"Write to {PLANTED['email']} or call {PLANTED['phone']}. "
                                     f"Card {PLANTED['card']}, key {PLANTED['aws_key']}, "
                                     f"SSN {PLANTED['ssn']}."},
    # Repetitive, so removed; report.json keeps its first 500 characters, which (with the pii
    # stage off) end in the first digits of the card number.
    {"id": "0001-pii-cut", "text": f"{FILLER} {PLANTED['card']} or {PLANTED['email']} "
                                   f"{PLANTED['aws_key']}"},
    {"id": "0002-pii-ssn", "text": f"my ssn is {PLANTED['ssn']} ok"},
    # 49 words, one under min_words: the nearest document below the bound (with others at 49,
    # first by id), so the report keeps it as a near-threshold example, taken before the pii
    # stage.
    {"id": "0003-pii-near", "text": f"Please write to {PLANTED['email']} about the parcel that "
                                    "arrived late, and the team will answer within two working "
                                    "days. We are sorry for the delay and thank you for your "
                                    "patience while we check the order with the courier, the "
                                    "warehouse and the shop that sent it to you."},
]
NEAR_WORDS = 49
"""The words of ``0003-pii-near``."""
RUNS = {
    "pii_on": {},
    # Another threshold, PII not redacted by the pipeline, no shards (faster).
    "pii_off": {"pii": {"enabled": False}, "heuristics": {"min_words": 30},
                "shards": {"enabled": False}},
}


def curated_run(base: Path, name: str) -> Path:
    """The sample corpus plus the planted documents, curated under ``base`` with ``RUNS[name]``."""
    run_dir = base / name
    planted = base / "planted.jsonl"
    planted.write_text("".join(json.dumps(doc) + "\n" for doc in PLANTED_DOCS))
    run_curation([str(SAMPLE), str(planted)], str(run_dir), config_from_dict(RUNS[name]),
                 overwrite=True)
    return run_dir


def assert_no_planted_pii(text: str) -> None:
    for value in FORBIDDEN:
        assert value not in text, f"planted PII {value!r} is shown"
