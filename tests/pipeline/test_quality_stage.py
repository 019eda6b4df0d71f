"""The quality stage end to end: train with the CLI on the bundled sample, then curate."""

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.curate import CurationError, run_curation
from schemas.config import config_from_dict

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """Python documentation as high quality, SMS messages as low quality."""
    folder = tmp_path_factory.mktemp("quality")
    with gzip.open(SAMPLE / "docs.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    for name, prefix in (("hq.jsonl", "python-doc/"), ("lq.jsonl", "sms/")):
        chosen = [r for r in records if r["id"].startswith(prefix)]
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in chosen))
    path = folder / "quality.bin"
    code = main(["quality", "train", "--positive", str(folder / "hq.jsonl"),
                 "--negative", str(folder / "lq.jsonl"), "--output", str(path),
                 "--bucket", "20000", "--dim", "16", "--epoch", "10", "--validation-fraction",
                 "0.2"])
    assert code == 0
    metrics = json.loads(Path(f"{path}.metrics.json").read_text())
    assert metrics["accuracy"] > 0.9
    assert metrics["validation"] == {"hq": 24, "lq": 60}
    return str(path)


def quality_run(tmp_path, model, **quality):
    config = config_from_dict({
        "heuristics": {"enabled": False}, "language": {"enabled": False},
        "quality": {"model": model, **quality}})
    report = run_curation([str(SAMPLE)], str(tmp_path / "run"), config)
    kept = pq.read_table(tmp_path / "run" / "kept").to_pylist()
    removed = pq.read_table(tmp_path / "run" / "removed").to_pylist()
    return report, kept, removed


def test_threshold_mode_scores_every_document_and_drops_low_quality(tmp_path, model):
    report, kept, removed = quality_run(tmp_path, model, threshold=0.5)
    scores = {r["id"]: json.loads(r["metadata"])["quality_score"] for r in kept}
    assert all(score >= 0.5 for score in scores.values())
    low = [r for r in removed if r["stage"] == "quality"]
    assert {r["reason"] for r in low} == {"low_quality"}
    assert all(json.loads(r["details"])["quality_score"] < 0.5 for r in low)
    # SMS messages go, documentation stays.
    assert sum(r["id"].startswith("sms/") for r in low) > 250
    assert sum(i.startswith("python-doc/") for i in scores) > 100
    section = report["quality"]
    funnel = {s["name"]: s for s in report["stages"]}
    assert section["enabled"] and section["threshold"] == 0.5
    assert sum(section["histogram"]["counts"]) == funnel["quality"]["documents_in"]
    assert len(section["histogram"]["bin_edges"]) == 21


def test_pareto_mode_is_seeded(tmp_path, model):
    first = quality_run(tmp_path / "a", model, mode="pareto", seed=3)[1]
    second = quality_run(tmp_path / "b", model, mode="pareto", seed=3)[1]
    assert [r["id"] for r in first] == [r["id"] for r in second]
    other_seed = quality_run(tmp_path / "c", model, mode="pareto", seed=4, pareto_alpha=1.0)[1]
    assert [r["id"] for r in first] != [r["id"] for r in other_seed]


def test_no_model_means_the_stage_is_off_and_the_report_says_so(tmp_path):
    report = run_curation([str(SAMPLE / "extra.jsonl")], str(tmp_path / "run"),
                          config_from_dict({}))
    assert report["quality"] == {"enabled": False,
                                 "note": "quality stage off: no model configured"}
    assert {"name": "quality", "enabled": False}.items() <= report["stages"][5].items()


def test_an_unreadable_model_is_refused_before_the_run(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    config = config_from_dict({"quality": {"model": str(junk)}})
    with pytest.raises(CurationError, match="junk.bin"):
        run_curation([str(SAMPLE / "extra.jsonl")], str(tmp_path / "run"), config)
    assert not (tmp_path / "run").exists()
