"""PII in what a run writes besides kept/: removed/ texts and quarantined/ raw prefixes."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation

PLANTED = "write to jane.roe@example.org or call (344) 520-6478"
REDACTED = "write to <EMAIL> or call <PHONE>"
LINES = {
    "malformed_json": b'{"id": "broken", "text": "' + PLANTED.encode() + b'"',
    # Not UTF-8 (a Latin-1 "e acute"): the byte must come back as it was.
    "invalid_utf8": b'{"id": "latin1", "text": "caf\xe9, ' + PLANTED.encode() + b'"}',
}
REMOVED = {"id": "short", "text": PLANTED}  # too few words: removed by heuristics


def curate(tmp_path: Path, pii_enabled: bool) -> Path:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join([*LINES.values(), json.dumps(REMOVED).encode()]) + b"\n")
    run_dir = tmp_path / "run"
    config = config_from_dict({"pii": {"enabled": pii_enabled}, "shards": {"enabled": False}})
    run_curation([str(source)], str(run_dir), config)
    return run_dir


def raw_prefixes(run_dir: Path) -> dict[str, bytes]:
    rows = pq.read_table(run_dir / "quarantined").to_pylist()
    return {row["reason"]: row["raw_prefix"] for row in rows}


def test_planted_pii_is_redacted_in_quarantined_and_removed_files(tmp_path):
    run_dir = curate(tmp_path, pii_enabled=True)
    assert raw_prefixes(run_dir) == {
        reason: line.replace(PLANTED.encode(), REDACTED.encode())
        for reason, line in LINES.items()
    }
    (removed,) = pq.read_table(run_dir / "removed").to_pylist()
    assert (removed["id"], removed["reason"], removed["text"]) == (
        "short", "too_few_words", REDACTED)


def test_quarantined_raw_prefix_is_verbatim_when_the_pii_stage_is_off(tmp_path):
    run_dir = curate(tmp_path, pii_enabled=False)
    assert raw_prefixes(run_dir) == LINES
    (removed,) = pq.read_table(run_dir / "removed").to_pylist()
    assert removed["text"] == PLANTED
