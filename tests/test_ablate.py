"""winnow ablate: the arms it plans, the figures it collects, a resume that redoes nothing
finished (and continues a stopped arm to the same figures), and an arm that fails alone.

The end-to-end test runs the real commands (curate, pretrain, evaluate, finetune) on 150
documents of the bundled sample with a very small model; it takes about two minutes here."""

import json
import os
import random
import shutil
import sys

import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("transformers")

from winnow.ablate import (  # noqa: E402
    AblateError,
    eval_steps,
    latest_progress_line,
    plan_arms,
    run_relaying,
)
from winnow.cli import main  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "examples", "sample", "docs.jsonl.gz")


def test_eval_steps_are_evenly_spaced_and_end_at_the_last_step():
    assert eval_steps(100, 4) == [25, 50, 75, 100]
    assert eval_steps(3, 4) == [1, 2, 3]
    assert eval_steps(1, 4) == [1]


def test_arms_raw_and_per_stage_turn_stages_off(tmp_path):
    base = tmp_path / "mine.yaml"
    base.write_text(yaml.safe_dump({"near_dedup": {"threshold": 0.9},
                                    "pii": {"enabled": False}}))
    arms = plan_arms([str(base)], raw=True, per_stage=True)
    names = [arm.name for arm in arms]
    # pii is off in the base config and quality has no model: no arm for either
    assert names == ["mine", "raw", "no_normalize", "no_heuristics", "no_language",
                     "no_exact_dedup", "no_near_dedup", "no_boilerplate"]
    by_name = {arm.name: arm.curation for arm in arms}
    assert by_name["no_near_dedup"]["near_dedup"] == {"threshold": 0.9, "enabled": False}
    assert by_name["no_language"]["language"] == {"enabled": False}
    assert by_name["no_language"]["near_dedup"] == {"threshold": 0.9}
    assert all(by_name["raw"][stage]["enabled"] is False
               for stage in ("normalize", "heuristics", "language", "exact_dedup", "quality",
                             "near_dedup", "boilerplate", "pii"))
    assert base.read_text() == yaml.safe_dump({"near_dedup": {"threshold": 0.9},
                                               "pii": {"enabled": False}})  # not changed


def test_arms_are_named_by_config_and_must_be_unique(tmp_path):
    (tmp_path / "a").mkdir()
    for path in (tmp_path / "x.yaml", tmp_path / "a" / "x.yaml"):
        path.write_text("{}\n")
    with pytest.raises(AblateError, match="share a file stem"):
        plan_arms([str(tmp_path / "x.yaml"), str(tmp_path / "a" / "x.yaml")], False, False)
    assert [arm.name for arm in plan_arms([], raw=True, per_stage=False)] == ["default", "raw"]


def test_arms_of_unequal_sequence_length_are_refused(tmp_path, capsys):
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump({"pairs": {"max_seq_len": 64}}))
    default = tmp_path / "default.yaml"
    default.write_text("{}\n")
    code = main(["ablate", SAMPLE, "--output", str(tmp_path / "out"), "--configs", str(short),
                 str(default), "--tokens", "1000", "--eval-text", SAMPLE])
    assert code == 2
    assert "max_seq_len differ" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_budget_uses_the_batch_pretrain_derives_and_refuses_a_warmup_past_the_run(
        tmp_path, capsys):
    from winnow.ablate import plan_from_args
    from winnow.cli import build_parser

    args = build_parser().parse_args(["ablate", SAMPLE, "--output", str(tmp_path / "out"),
                                      "--tokens", "1000000", "--eval-text", SAMPLE])
    plan = plan_from_args(args, [])
    # tiny's batch on a CPU (trainer.config.PRESET_TRAINING), 128 tokens: 245 steps
    assert (plan.batch_size, plan.max_seq_len, plan.steps) == (32, 128, 245)
    long_warmup = tmp_path / "train.yaml"
    long_warmup.write_text(yaml.safe_dump({"warmup_steps": 300}))
    code = main(["ablate", SAMPLE, "--output", str(tmp_path / "out"), "--tokens", "1000000",
                 "--eval-text", SAMPLE, "--train-config", str(long_warmup)])
    assert code == 2
    assert "warmup_steps: 300 is longer than the run (max_steps 245)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_without_the_train_extra_it_says_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    code = main(["ablate", SAMPLE, "--output", str(tmp_path / "out"), "--tokens", "1000",
                 "--eval-text", SAMPLE])
    assert code == 2
    assert "needs torch, which is not installed: pip install 'winnow[train]'" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_a_second_ablation_in_the_same_folder_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # as a running ablation holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["ablate", SAMPLE, "--output", str(out), "--tokens", "1000",
                     "--eval-text", SAMPLE])
    assert code == 2
    assert "another winnow ablate is running in" in capsys.readouterr().err
    assert os.listdir(out) == [".lock"]


def test_a_folder_that_holds_no_ablation_is_left_alone(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    code = main(["ablate", SAMPLE, "--output", str(out), "--tokens", "1000",
                 "--eval-text", SAMPLE])
    assert code == 2
    assert "is not empty and holds no ablation" in capsys.readouterr().err
    assert os.listdir(out) == ["notes.txt"]


@pytest.fixture(scope="module")
def ablation_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablate-inputs")
    documents = [json.loads(line) for line in _sample_lines()]
    _write_jsonl(folder / "corpus.jsonl", documents[:150])
    _write_jsonl(folder / "heldout.jsonl", documents[-20:])
    rng = random.Random(0)
    words = {"up": "good great fine nice happy glad".split(),
             "down": "bad awful poor sad angry grim".split()}
    for name, count in (("task", 48), ("task-test", 24)):
        rows = []
        for _ in range(count):
            label = rng.choice(sorted(words))
            rows.append({"text": " ".join(rng.choice(words[label]) for _ in range(6)),
                         "label": label})
        _write_jsonl(folder / f"{name}.jsonl", rows)
    (folder / "small.yaml").write_text(yaml.safe_dump({"tokenizer": {"vocab_size": 400}}))
    # the quality stage has no model, so its threshold changes nothing: small's training data
    (folder / "same.yaml").write_text(yaml.safe_dump(
        {"tokenizer": {"vocab_size": 400}, "quality": {"threshold": 0.9}}))
    (folder / "nothing.yaml").write_text(yaml.safe_dump(
        {"tokenizer": {"vocab_size": 400}, "heuristics": {"min_words": 99_999}}))
    (folder / "train.yaml").write_text(yaml.safe_dump({
        "batch_size": 8, "lr": 0.001, "warmup_steps": 1, "num_workers": 0,
        "model": {"num_layers": 1, "hidden_size": 32, "num_heads": 2,
                  "intermediate_size": 64}}))
    return folder


def _sample_lines():
    import gzip

    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _ablate(inputs, output, *configs, extra=()):
    argv = ["ablate", str(inputs / "corpus.jsonl"), "--output", str(output), "--configs",
            *(str(inputs / name) for name in configs), "--raw", "--tokens", "4096",
            "--train-config", str(inputs / "train.yaml"),
            "--eval-text", str(inputs / "heldout.jsonl"), "--eval-points", "2",
            "--eval-max-examples", "40", "--task", str(inputs / "task.jsonl"),
            "--task-test", str(inputs / "task-test.jsonl"), "--task-seeds", "2",
            "--task-epochs", "1", "--task-lr", "0.001", *extra]
    return main(argv)


def _log_sizes(folder):
    return {name: os.path.getsize(folder / "logs" / name)
            for name in sorted(os.listdir(folder / "logs"))}


def test_ablate_end_to_end_resumes_and_reuses_finished_arms(ablation_inputs, tmp_path):
    out = tmp_path / "abl"
    assert _ablate(ablation_inputs, out, "small.yaml", "nothing.yaml", "same.yaml") == 1

    results = json.loads((out / "results.json").read_text())
    arms = {arm["name"]: arm for arm in results["arms"]}
    assert list(arms) == ["small", "nothing", "same", "raw"]
    plan = results["plan"]
    assert (plan["batch_size"], plan["max_seq_len"], plan["steps"]) == (8, 128, 4)
    assert plan["eval_steps"] == [2, 4]
    # the arm that keeps nothing fails alone, saying why; the others finish
    assert arms["nothing"]["status"] == "failed"
    assert "kept no training examples" in arms["nothing"]["error"]
    for name in ("small", "raw"):
        arm = arms[name]
        assert arm["status"] == "done"
        assert [point["step"] for point in arm["evaluations"]] == [2, 4]
        assert [point["tokens"] for point in arm["evaluations"]] == [2048, 4096]
        assert arm["final"]["mlm_loss"] > 0
        assert arm["epochs"] == pytest.approx(4 * 8 / arm["curation"]["examples"])
        assert arm["task"]["seeds"] == 2 and arm["task"]["split"] == "test"
    # same's shards hold small's training data: small's model stands for it, untrained again
    assert arms["same"]["status"] == "done" and arms["same"]["same_training_data_as"] == "small"
    assert (arms["same"]["final"], arms["same"]["task"]) == (arms["small"]["final"],
                                                            arms["small"]["task"])
    assert not (out / "arms" / "same" / "pretrain").exists()
    assert not (out / "logs" / "same-pretrain.log").exists()
    # raw keeps every document; the default config removes some of the sample
    assert arms["raw"]["curation"]["kept"] == arms["raw"]["curation"]["input"] == 150
    assert arms["small"]["curation"]["kept"] < 150
    # one tokenizer for every arm: the shards of both name the shared model's hash
    manifests = [json.loads((out / "arms" / name / "curated" / "shards" / "manifest.json")
                            .read_text()) for name in ("small", "raw")]
    assert manifests[0]["tokenizer_sha256"] == manifests[1]["tokenizer_sha256"]
    assert results["baseline"]["seeds"] == 2
    table = (out / "results.md").read_text()
    assert "| same (= small) |" in table
    assert "| nothing (failed) |" in table and "| untrained (baseline) |" in table
    page = (out / "report.html").read_text()
    assert page.count("<polyline") == 3 and page.count("untrained</text>") == 2

    # A stop in the middle of raw's training: its last evaluation and fine-tuning are gone and
    # its latest checkpoint is the one at step 2. The rerun redoes only those steps, and the
    # exact resume gives the same figures.
    raw = out / "arms" / "raw"
    final_before = json.loads((raw / "eval" / "step-000004.json").read_text())
    (raw / "eval" / "step-000004.json").unlink()
    shutil.rmtree(raw / "finetune")
    (raw / "pretrain" / "checkpoints" / "latest").write_text("step-000002.pt\n")
    logs_before = _log_sizes(out)
    assert _ablate(ablation_inputs, out, "small.yaml", "nothing.yaml", "same.yaml") == 1
    logs_after = _log_sizes(out)
    grown = sorted(name for name in logs_after if logs_after[name] != logs_before.get(name))
    # small is untouched; nothing's curation is kept (it finished: it kept no document)
    assert grown == ["raw-evaluate.log", "raw-finetune.log", "raw-pretrain.log"]
    final_after = json.loads((raw / "eval" / "step-000004.json").read_text())
    assert final_after["mlm_loss"] == final_before["mlm_loss"]
    assert final_after["mlm_accuracy"] == final_before["mlm_accuracy"]

    # Other shared settings are refused, naming them; adding an arm is not.
    assert _ablate(ablation_inputs, out, "small.yaml", extra=["--eval-points", "3"]) == 2
    logs_before = _log_sizes(out)
    assert _ablate(ablation_inputs, out, "small.yaml") == 0
    assert _log_sizes(out) == logs_before  # small and raw reused whole: no command ran


# --- a long step is not silent -------------------------------------------------------------------

PROGRESS_SCRIPT = """
import sys, time
for n in range(4):
    print(f"progress: {n}", file=sys.stderr, flush=True)
    time.sleep(0.6)
print("done", flush=True)
sys.exit(3)
"""


def test_a_relayed_step_says_its_latest_progress_lines_and_keeps_its_log(tmp_path):
    log_path = tmp_path / "step.log"
    said = []
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("progress: from an earlier attempt\n")
        log.flush()
        code = run_relaying([sys.executable, "-c", PROGRESS_SCRIPT], dict(os.environ), log,
                            log_path, said.append, "[1/2 small] curating:", every=0.25)
    assert code == 3
    assert said and all(line.startswith("[1/2 small] curating: progress: ") for line in said)
    assert len(said) == len(set(said))  # a line is said once, however long it stays the latest
    assert said[0] != "[1/2 small] curating: progress: from an earlier attempt"
    assert log_path.read_text().endswith("progress: 3\ndone\n")
    assert latest_progress_line(log_path) == "progress: 3"
    assert latest_progress_line(log_path, since=log_path.stat().st_size) is None

