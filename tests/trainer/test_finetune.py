"""winnow finetune: task rows counted by reason, the seeded stratified split, learning, the
random-init baseline, results.json and the command's one-line errors.

The model: a tiny BERT pretrained here for a few hundred steps on a made-up language. Its
words come in two groups that never share a context: a word of group A always sits among the
A context words, one of group B among the B context words. Masked-LM training puts words that
share contexts close together, so a classifier that learns "group A" from some A words
recognises the other A words too. The untrained baseline cannot: the held-out words' ids mean
nothing to it. That is the task "that needs language knowledge"."""

import contextlib
import io
import json
import os
import random
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
sentencepiece = pytest.importorskip("sentencepiece")

from tests.trainer.helpers import single_thread, tiny_config, write_shards  # noqa: E402, F401
from winnow.cli import main  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.finetune import FinetuneConfig, FinetuneError, finetune, scores  # noqa: E402
from winnow.trainer.task import (  # noqa: E402
    Example,
    TaskFields,
    load_task,
    stratified_split,
)
from winnow.trainer.train import export, pretrain  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_rng = random.Random(5)
_invented = sorted({"".join(_rng.choice("bdfgklmnprstvz") + _rng.choice("aeiou")
                            for _ in range(3)) for _ in range(80)})
GROUP_A, GROUP_B = _invented[:16], _invented[16:32]
CONTEXT_A, CONTEXT_B = _invented[32:38], _invented[38:44]
NEUTRAL = _invented[44:48]
SEEN = GROUP_A[:8] + GROUP_B[:8]  # fine-tuning trains on these words
UNSEEN = GROUP_A[8:] + GROUP_B[8:]  # and is tested on these
SPECIAL = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]


def language_sentence(rng, word) -> str:
    """The word, a neutral word and four context words of its group, in random order."""
    context = CONTEXT_A if word in GROUP_A else CONTEXT_B
    words = [word, rng.choice(NEUTRAL), *(rng.choice(context) for _ in range(4))]
    rng.shuffle(words)
    return " ".join(words)


def train_word_tokenizer(folder) -> bytes:
    """Every word of the language is one user-defined piece, so ids carry no spelling."""
    rng = random.Random(0)
    lines = [language_sentence(rng, rng.choice(GROUP_A + GROUP_B)) for _ in range(300)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=120,
        user_defined_symbols=SPECIAL + GROUP_A + GROUP_B + CONTEXT_A + CONTEXT_B + NEUTRAL,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
        minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny BERT pretrained (masked LM + SOP) on the made-up language."""
    folder = tmp_path_factory.mktemp("language")
    tokenizer = train_word_tokenizer(folder / "spm")
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer)
    rng = random.Random(1)
    examples = []
    for _ in range(2000):
        word = rng.choice(GROUP_A + GROUP_B)
        a, b = (processor.encode(language_sentence(rng, word)) for _ in range(2))
        examples.append((a, b, rng.randint(0, 1)))
    write_shards(folder / "shards", examples, tokenizer, max_seq_len=32)
    config = config_from_dict(tiny_config(
        model={"preset": "tiny", "hidden_size": 64, "num_heads": 2, "intermediate_size": 128},
        batch_size=64, max_steps=300, lr=2e-3, warmup_steps=30, log_every=100, eval_every=0,
        eval_examples=0))
    with one_thread():
        pretrain(str(folder / "shards"), str(folder / "run"), config)
    return str(folder / "run")


@contextlib.contextmanager
def one_thread():
    """helpers.single_thread for a module-scoped fixture (an autouse fixture is per test)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def export_dir(run_dir, tmp_path_factory):
    return export(run_dir, str(tmp_path_factory.mktemp("export") / "model"))


def write_jsonl(path, rows) -> str:
    with open(path, "w") as handle:
        handle.writelines((row if isinstance(row, str) else json.dumps(row)) + "\n"
                          for row in rows)
    return str(path)


def group_rows(words) -> list[dict]:
    """'neutral WORD neutral', labelled with the word's group, for every pair of neutrals."""
    return [{"text": f"{first} {word} {second}", "label": "A" if word in GROUP_A else "B"}
            for word in words for first in NEUTRAL for second in NEUTRAL]


FAST = {"epochs": 8, "batch_size": 16, "lr": 1e-3, "patience": 8}


# --- learning ----------------------------------------------------------------------------------

def test_a_separable_toy_task_is_learned_well_above_chance(tmp_path, export_dir):
    rng = random.Random(2)
    rows = []
    for _ in range(240):
        words = [rng.choice(GROUP_B + NEUTRAL) for _ in range(5)]
        if rng.random() < 0.5:
            words[rng.randrange(5)] = GROUP_A[0]
        rows.append({"text": " ".join(words), "label": int(GROUP_A[0] in words)})
    train = write_jsonl(tmp_path / "train.jsonl", rows[:200])
    test = write_jsonl(tmp_path / "test.jsonl", rows[200:])
    results = finetune(export_dir, [train], str(tmp_path / "out"),
                       FinetuneConfig(seeds=2, **FAST), test=[test])
    assert results["classes"] == ["0", "1"]
    assert results["summary"]["test"]["accuracy"]["mean"] > 0.9
    assert all(run["test"]["accuracy"] > 0.85 for run in results["seeds"])


def test_a_pretrained_init_beats_random_init_on_a_task_that_needs_the_language(
        tmp_path, run_dir):
    train = write_jsonl(tmp_path / "train.jsonl", group_rows(SEEN))
    test = write_jsonl(tmp_path / "test.jsonl", group_rows(UNSEEN))
    accuracy = {}
    for init in ("pretrained", "random"):
        results = finetune(run_dir, [train], str(tmp_path / init),
                           FinetuneConfig(init=init, seeds=3, **FAST), test=[test])
        accuracy[init] = results["summary"]["test"]["accuracy"]["mean"]
    assert accuracy["pretrained"] > 0.8, accuracy
    assert accuracy["pretrained"] - accuracy["random"] > 0.2, accuracy


def test_early_stopping_keeps_the_best_epoch(tmp_path, export_dir):
    train = write_jsonl(tmp_path / "train.jsonl", group_rows(SEEN))
    results = finetune(export_dir, [train], str(tmp_path / "out"), FinetuneConfig(
        seeds=1, **{**FAST, "epochs": 30, "patience": 2}))
    (run,) = results["seeds"]
    curve = run["validation_accuracy_by_epoch"]
    assert run["epochs_run"] == len(curve) == run["best_epoch"] + 2 < 30  # stopped early
    best = curve[run["best_epoch"] - 1]
    assert best == max(curve) and best not in curve[:run["best_epoch"] - 1]  # the first best
    assert run["validation"]["accuracy"] == max(curve)
    assert run["steps"] == len(curve) * 15  # 256 rows less 26 held out, in batches of 16


def test_an_albert_export_fine_tunes_too(tmp_path, export_dir):
    from winnow.schemas.shard_format import special_tokens_from_model
    from winnow.trainer.export import export_huggingface
    from winnow.trainer.model import ModelConfig, PreTrainingModel

    spiece = os.path.join(export_dir, "spiece.model")
    special_tokens = special_tokens_from_model(spiece)
    albert = PreTrainingModel(ModelConfig(
        vocab_size=sentencepiece.SentencePieceProcessor(model_file=spiece).get_piece_size(),
        max_seq_len=32, num_layers=2, hidden_size=64, num_heads=2, intermediate_size=128,
        embedding_size=32, share_layers="all", pad_token_id=special_tokens["[PAD]"]))
    folder = export_huggingface(albert, spiece, str(tmp_path / "albert"), special_tokens)
    train = write_jsonl(tmp_path / "train.jsonl", group_rows(SEEN))
    results = finetune(folder, [train], str(tmp_path / "out"), FinetuneConfig(seeds=1, epochs=1))
    assert results["complete"] and results["seeds"][0]["validation"]["examples"] == 26


# --- task rows ---------------------------------------------------------------------------------

def test_bad_rows_are_counted_by_reason_and_never_crash(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [
        {"text": "a b", "label": "x"}, {"text": "c d", "label": 2}, {"text": "e", "label": 2.0},
        "{not json", "[1, 2]", {"label": "x"}, {"text": None, "label": "x"},
        {"text": 7, "label": "x"}, {"text": "  ", "label": "x"}, {"text": "f"},
        {"text": "g", "label": ""}, {"text": "h", "label": [1]}, {"text": "i", "label": 0.5},
        {"text": "j", "label": True}])
    (tmp_path / "validation.csv").write_text("text,label\nk,x\nl,y\n,x\nm,2\n")
    (tmp_path / "test.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00 cut")
    task = load_task([train], TaskFields(), [str(tmp_path / "validation.csv")],
                     [str(tmp_path / "test.jsonl.gz")])
    assert task.classes == ["2", "true", "x"]
    assert [e.label for e in task.splits["train"]] == ["x", "2", "2", "true"]
    assert task.counts["train"].as_dict() == {
        "source": "files", "files": [train], "rows_read": 14, "used": 4,
        "bad": {"empty_text": 1, "invalid_label": 2, "invalid_text": 1, "malformed_json": 1,
                "missing_label": 2, "missing_text": 2, "not_an_object": 1},
        "per_class": {"2": 2, "true": 1, "x": 1}}
    validation = task.counts["validation"].as_dict()
    assert (validation["rows_read"], validation["used"]) == (4, 2)
    assert validation["bad"] == {"empty_text": 1, "unseen_label": 1}
    assert validation["per_class"] == {"2": 1, "true": 0, "x": 1}
    assert task.counts["test"].as_dict()["bad"] in ({"truncated_file": 1},
                                                    {"unreadable_file": 1})


def test_pair_fields_are_checked_and_integer_classes_sort_numerically(tmp_path):
    (tmp_path / "train.tsv").write_text(
        "premise\thypothesis\tgold\na\tb\t10\nc\t\t9\nd\te\t9\nf\tg\t\n")
    task = load_task([str(tmp_path / "train.tsv")], TaskFields("premise", "hypothesis", "gold"),
                     validation=[str(tmp_path / "train.tsv")])
    assert task.classes == ["9", "10"]
    assert task.splits["train"] == [Example("a", "b", "10"), Example("d", "e", "9")]
    assert task.counts["train"].bad == {"empty_text_pair": 1, "missing_label": 1}


def test_the_validation_split_is_stratified_and_seeded():
    examples = [Example(f"t{i}", None, "rare" if i % 10 == 0 else "common") for i in range(100)]
    kept, held_out = stratified_split(examples, 0.2, seed=3)
    assert sorted(e.label for e in held_out).count("rare") == 2  # 20% of 10
    assert len(held_out) == 20 and len(kept) == 80
    assert set(kept).isdisjoint(held_out)
    assert kept == [e for e in examples if e not in held_out]  # order kept
    assert stratified_split(examples, 0.2, seed=3) == (kept, held_out)
    assert stratified_split(examples, 0.2, seed=4)[1] != held_out
    # A class of one stays in training; a class of two gives one.
    few = [Example("a", None, "one"), Example("b", None, "two"), Example("c", None, "two")]
    assert stratified_split(few, 0.1, seed=0)[1] == [Example("b", None, "two")] or \
        stratified_split(few, 0.1, seed=0)[1] == [Example("c", None, "two")]


def test_macro_f1_averages_the_classes_present():
    import numpy as np

    labels, predictions = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    # class 0: P 1, R 0.5, F1 2/3; class 1: P 2/3, R 1, F1 0.8
    assert scores(labels, predictions) == pytest.approx({"accuracy": 0.75,
                                                         "macro_f1": (2 / 3 + 0.8) / 2})


def test_pairs_are_built_and_truncated_as_in_pretraining(export_dir):
    from winnow.trainer.finetune import encode

    processor = sentencepiece.SentencePieceProcessor(
        model_file=os.path.join(export_dir, "spiece.model"))
    cls, sep = processor.piece_to_id("[CLS]"), processor.piece_to_id("[SEP]")
    long_a, short_b = " ".join(GROUP_A[:5]), GROUP_B[0]  # 10 and 2 pieces
    pairs = encode([Example(long_a, short_b, "B")], export_dir, ["A", "B"], max_seq_len=9)
    singles = encode([Example(long_a, None, "A")], export_dir, ["A", "B"], max_seq_len=9)
    a, b = processor.encode(long_a), processor.encode(short_b)
    assert pairs.ids == [[cls, *a[:4], sep, *b, sep]]  # the longer side lost its end
    assert pairs.types == [[0] * 6 + [1] * 3]
    assert singles.ids == [[cls, *a[:7], sep]] and singles.types == [[0] * 9]
    assert (pairs.labels.tolist(), singles.labels.tolist()) == ([1], [0])


# --- results.json and the command ----------------------------------------------------------------

def test_results_hold_every_seed_the_label_map_counts_and_config(tmp_path, export_dir):
    rows = group_rows(SEEN) + [{"text": "", "label": "A"}, {"text": "x"}]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    results = finetune(export_dir, [train], str(tmp_path / "out"),
                       FinetuneConfig(seeds=2, epochs=1, batch_size=64, validation_fraction=0.25,
                                      split_seed=1))
    with open(tmp_path / "out" / "results.json") as handle:
        assert json.load(handle) == results
    assert results["complete"] is True and results["format"] == 1
    assert results["classes"] == ["A", "B"] and results["label_map"] == {"A": 0, "B": 1}
    assert [run["seed"] for run in results["seeds"]] == [0, 1]
    for run in results["seeds"]:
        assert run["test"] is None
        assert set(run["validation"]) == {"accuracy", "macro_f1", "loss", "examples"}
        assert run["validation"]["examples"] == 64
    accuracies = [run["validation"]["accuracy"] for run in results["seeds"]]
    summary = results["summary"]["validation"]["accuracy"]
    assert summary["mean"] == pytest.approx(sum(accuracies) / 2)
    assert summary["std"] == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2 ** 0.5)
    assert results["summary"]["test"] is None
    data = results["data"]
    assert data["train"]["rows_read"] == 258 and data["train"]["used"] == 192
    assert data["train"]["bad"] == {"empty_text": 1, "missing_label": 1}
    assert data["validation"]["per_class"] == {"A": 32, "B": 32}
    assert data["validation"]["source"] == "train: stratified 0.25 split, seed 1"
    # a model of hidden size 64 gets the narrow models' default learning rate
    assert results["config"]["lr"] == 1e-3 and results["config"]["max_seq_len"] == 32
    assert results["config"]["fields"] == {"text": "text", "text_pair": None, "label": "label"}
    again = finetune(export_dir, [train], str(tmp_path / "again"), FinetuneConfig(
        seeds=1, epochs=1, batch_size=64, validation_fraction=0.25, split_seed=1))
    assert again["seeds"] == results["seeds"][:1]  # a seed gives the same run every time


def test_the_default_learning_rate_follows_the_init_and_the_models_width():
    from winnow.trainer.finetune import default_lr

    assert default_lr("pretrained", 768) == 5e-5 and default_lr("random", 768) == 1e-4
    assert default_lr("pretrained", 256) == 5e-5
    assert default_lr("pretrained", 128) == default_lr("random", 64) == 1e-3
    assert FinetuneConfig(lr=3e-4).peak_lr == 3e-4


def test_cli_runs_and_fails_in_one_line(tmp_path, export_dir, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", group_rows(SEEN))
    one_class = write_jsonl(tmp_path / "one.jsonl", group_rows(GROUP_A[:2]))
    output = tmp_path / "out"
    assert main(["finetune", export_dir, "--train", train, "--test", train, "--output",
                 str(output), "--seeds", "1", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("validation: accuracy ") and "test: accuracy " in printed
    failures = {
        "not empty": ["--output", str(output)],
        "no file matches": ["--output", str(tmp_path / "new"), "--test", "missing.jsonl"],
        "seeds must be at least 1": ["--output", str(tmp_path / "new"), "--seeds", "0"],
        "1 class(es) (A); at least 2": ["--output", str(tmp_path / "new"), "--train", one_class],
    }
    for message, options in failures.items():
        assert main(["finetune", export_dir, "--train", train, *options]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
    assert main(["finetune", str(tmp_path), "--train", train, "--output",
                 str(tmp_path / "new")]) == 2
    assert "neither a winnow export folder" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_without_transformers_the_command_names_the_install(tmp_path):
    script = ("import sys; sys.modules['transformers'] = None; from winnow.cli import main; "
              f"sys.exit(main(['finetune', 'm', '--train', 't', '--output', {str(tmp_path)!r}]))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 2
    assert done.stderr == ("winnow finetune: needs transformers: "
                           "pip install 'winnow[train]'\n")


def test_finetune_refuses_bad_config_before_reading_anything():
    with pytest.raises(FinetuneError, match="init must be one of.*; epochs must be at least 1"):
        FinetuneConfig(init="scratch", epochs=0)
