"""A run folder is a Hugging Face dataset: ``datasets.load_dataset(RUN)`` reads kept/, and the
named configurations removed/ and quarantined/, each with exactly the run's rows and columns."""

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.pipeline.bad_inputs import GOOD_TEXT
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import run_curation
from winnow.pipeline.dataset_card import CARD_FILE
from winnow.schemas.records import KEPT_SCHEMA, QUARANTINED_SCHEMA, REMOVED_SCHEMA

datasets = pytest.importorskip("datasets")

SCHEMAS = {"kept": KEPT_SCHEMA, "removed": REMOVED_SCHEMA, "quarantined": QUARANTINED_SCHEMA}
RECORDS = [
    json.dumps({"id": "river", "text": GOOD_TEXT, "license": "CC-BY-4.0"}),
    json.dumps({"id": "lake", "text": GOOD_TEXT.replace("river", "lake").replace(
        "bridge", "ferry").replace("boats", "trains") + " The end.", "license": "CC-BY-4.0"}),
    json.dumps({"id": "moon", "text": GOOD_TEXT.replace("The river", "Under the moon, the river")
                + " Some say the valley was a lake once.", "license": "MIT"}),
    json.dumps({"id": "short", "text": "far too short", "license": "MIT"}),
    '{"id": "broken", "text": "no closing brace"',  # malformed_json
    json.dumps({"id": "no-text", "body": "wrong field"}),  # missing_text
]


@pytest.fixture(scope="module")
def quarantining_run(tmp_path_factory) -> tuple[Path, dict]:
    """Documents kept and removed, two records quarantined, spread over 4 files per folder
    (so each folder has files without rows beside files with rows); no shards (faster)."""
    base = tmp_path_factory.mktemp("card")
    (base / "in.jsonl").write_text("\n".join(RECORDS) + "\n")
    config = config_from_dict({"output": {"num_shards": 4}, "shards": {"enabled": False}})
    report = run_curation([str(base / "in.jsonl")], str(base / "run"), config)
    return base / "run", report


def folder_counts(report: dict) -> dict[str, int]:
    documents = report["documents"]
    return {"kept": documents["kept"], "removed": sum(documents["removed"].values()),
            "quarantined": sum(documents["quarantined"].values())}


def load(run_dir: Path, tmp_path: Path, name: str | None = None):
    return datasets.load_dataset(str(run_dir), name, cache_dir=str(tmp_path / "hf-cache"))


def assert_configs_hold_the_run(run_dir: Path, report: dict, tmp_path: Path) -> None:
    counts = folder_counts(report)
    assert datasets.get_dataset_config_names(str(run_dir)) == [
        folder for folder, count in counts.items() if count]
    default = load(run_dir, tmp_path)
    assert list(default) == ["train"]
    assert default["train"].num_rows == counts["kept"]
    assert default["train"].column_names == KEPT_SCHEMA.names
    for folder, count in counts.items():
        if not count:
            with pytest.raises(ValueError, match=folder):
                load(run_dir, tmp_path, folder)
            continue
        split = load(run_dir, tmp_path, folder)["train"]
        assert (split.num_rows, split.column_names) == (count, SCHEMAS[folder].names)


def test_a_run_with_quarantined_records_loads_as_three_configurations(quarantining_run,
                                                                      tmp_path):
    run_dir, report = quarantining_run
    counts = folder_counts(report)
    assert counts["kept"] and counts["removed"] and counts["quarantined"] == 2
    assert_configs_hold_the_run(run_dir, report, tmp_path)
    quarantined = load(run_dir, tmp_path, "quarantined")["train"]
    assert Counter(quarantined["reason"]) == Counter(report["documents"]["quarantined"])
    removed = load(run_dir, tmp_path, "removed")["train"]
    assert Counter(removed["reason"]) == Counter(report["documents"]["removed"])


def test_a_clean_run_leaves_out_the_empty_quarantined_configuration(pii_on, tmp_path):
    report = json.loads((pii_on / "report.json").read_text())
    assert folder_counts(report)["quarantined"] == 0
    assert_configs_hold_the_run(pii_on, report, tmp_path)
    card = (pii_on / CARD_FILE).read_text()
    assert "none: `quarantined/` is empty" in card
    assert f"{report['shards']['examples']:,} SOP examples" in card


def test_the_card_describes_the_run(quarantining_run):
    run_dir, report = quarantining_run
    card = (run_dir / CARD_FILE).read_text()
    assert card.startswith("---\npretty_name: winnow curation run\nconfigs:\n")
    assert str(run_dir.parent / "in.jsonl") in card
    assert f"{report['documents']['input']:,} records read" in card
    for reason, count in report["documents"]["quarantined"].items():
        assert f"| `{reason}` | {count:,} |" in card
    for reason in report["documents"]["removed"]:
        assert f"`{reason}`" in card
    kept = load_kept_licences(run_dir)
    assert kept and all(f"| `{licence}` | {count:,} |" in card
                        for licence, count in kept.items())
    assert "| `shards.enabled` | `false` | `true` |" in card
    assert "wall" not in card and not list(run_dir.glob("*.tmp-*"))


def load_kept_licences(run_dir: Path) -> Counter:
    import pyarrow.parquet as pq

    return Counter(row["fields"]["license"] for row in pq.read_table(run_dir / "kept").to_pylist())
