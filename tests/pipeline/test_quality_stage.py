"""The quality stage end to end: train with the CLI on the bundled sample, then curate."""

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from winnow.cli import main
from winnow.pipeline.config import config_from_dict
from winnow.pipeline.curate import CurationError, run_curation

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


# -- winnow quality train on the real fixture of tests/filters/test_quality.py -----------------

FIXTURE = Path(__file__).resolve().parents[1] / "filters" / "data" / "quality_pairs.jsonl.gz"
SMALL = ["--bucket", "20000", "--dim", "16"]


def fixture_files(folder: Path) -> tuple[str, str]:
    """hq.jsonl and lq.jsonl of the fixture's training split."""
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if '"split": "train"' in line]
    for label in ("hq", "lq"):
        chosen = [r for r in records if r["label"] == label]
        (folder / f"{label}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return str(folder / "hq.jsonl"), str(folder / "lq.jsonl")


def test_train_prints_score_distributions_and_the_precision_threshold(tmp_path, capsys):
    hq, lq = fixture_files(tmp_path)
    output = tmp_path / "quality.bin"
    code = main(["quality", "train", "--positive", hq, "--negative", lq, "--output",
                 str(output), "--target-precision", "0.9", *SMALL])
    assert code == 0
    stdout = capsys.readouterr().out
    metrics = json.loads(Path(f"{output}.metrics.json").read_text())
    assert metrics["accuracy"] > 0.85 and metrics["settings"]["target_precision"] == 0.9
    validation, scores = metrics["validation"], metrics["scores"]
    chosen = metrics["threshold_for_precision"]
    assert chosen["target_precision"] == 0.9 and chosen["precision"] >= 0.9
    lines = stdout.splitlines()
    assert lines[0].startswith(f"validation split ({validation['hq']} hq, {validation['lq']} lq)"
                               f" at threshold 0.5: accuracy {metrics['accuracy']:.3f}, ")
    assert lines[1].split() == ["P(hq)", "mean", "p5", "p25", "p50", "p75", "p95", "documents",
                                "per", "0.1", "from", "0", "to", "1"]
    for line, label in zip(lines[2:4], ("hq", "lq"), strict=True):
        distribution = scores[label]
        assert line.split() == [label, f"{distribution['mean']:.3f}"] + [
            f"{q:.3f}" for q in distribution["quantiles"].values()] + [
            str(count) for count in distribution["histogram"]["counts"]]
    assert lines[4] == (f"threshold for precision 0.9: {chosen['threshold']:.3f} (keeps "
                        f"{chosen['hq_kept']:.1%} of hq and {chosen['lq_kept']:.1%} of lq of "
                        f"the validation split)")
    assert lines[5:] == [f"wrote {output} and {output}.metrics.json"]


def test_train_refuses_a_weak_model_unless_allowed(tmp_path, capsys):
    hq, _ = fixture_files(tmp_path)
    output = tmp_path / "quality.bin"
    # The same documents on both sides: nothing to learn.
    code = main(["quality", "train", "--positive", hq, "--negative", hq, "--output",
                 str(output), *SMALL])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"winnow quality train: refused to save a weak model to {output}: ")
    assert "--allow-weak" in line
    assert not output.exists() and not Path(f"{output}.metrics.json").exists()

    code = main(["quality", "train", "--positive", hq, "--negative", hq, "--output",
                 str(output), "--allow-weak", *SMALL])
    captured = capsys.readouterr()
    assert code == 0 and output.exists()
    assert "warning: saved a weak model (--allow-weak)" in captured.err
    assert json.loads(Path(f"{output}.metrics.json").read_text())["allow_weak"] is True
