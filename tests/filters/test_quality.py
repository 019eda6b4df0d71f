"""Tests for filters.quality: training on toy data and on a small real fixture, refusal of weak
models, validation metrics, scoring, verdicts, Pareto sampling."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from winnow.filters.quality import (
    REASONS,
    QualityConfig,
    QualityScorer,
    TrainSettings,
    WeakModelError,
    binomial_tail,
    load_quality_model,
    pareto_draw,
    prepare_text,
    quality_verdict,
    threshold_for_precision,
    train_quality_model,
)

FIXTURE = Path(__file__).resolve().parent / "data" / "quality_pairs.jsonl.gz"

# -- toy corpora ----------------------------------------------------------------------------

SUBJECTS = ["The river", "The cathedral", "The university", "The province", "The treaty",
            "The composer", "The observatory", "The railway", "The museum", "The dynasty",
            "The parliament", "The glacier", "The monastery", "The harbour", "The library"]
VERBS = ["was founded in", "was completed in", "was described in", "was rebuilt after",
         "was first recorded in", "was expanded during", "was documented by historians in",
         "became widely known in"]
CONTEXT = ["the early medieval period", "the eighteenth century", "the reign of the emperor",
           "the industrial revolution", "the nineteenth century", "a period of reform",
           "the decades after the war", "the late classical era"]
DETAILS = ["and it remains an important regional centre.",
           "according to contemporary accounts.",
           "and its archives contain many original manuscripts.",
           "which is located near the northern border.",
           "and has been studied by several scholars since.",
           "with a population of roughly twelve thousand inhabitants.",
           "and the building is listed as a protected monument."]

SPAM_OPENERS = ["WINNER!!", "URGENT!", "FREE entry", "Congratulations u", "Hot singles",
                "Last chance!!!", "CALL NOW", "u have been selected", "Txt WIN", "Claim ur"]
SPAM_BODIES = ["won a £1000 cash prize", "get 2 free ringtones", "click here 4 ur reward",
               "txt STOP 2 opt out", "ur mobile number won", "call 09061701461 now",
               "reply YES 4 free msgs", "claim ur bonus 2day", "lol c u l8r m8",
               "cheap pills no prescription"]
SPAM_TAILS = ["!!!", "T&Cs apply 18+", "150p/msg", "now!!", ":)) xoxo", "limited offer!!",
              "txt back asap", "only 2day"]


def encyclopedic(rng: random.Random) -> str:
    sentences = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(CONTEXT)} "
                 f"{rng.choice(DETAILS)}" for _ in range(rng.randint(2, 4))]
    return " ".join(sentences)


def spam(rng: random.Random) -> str:
    return " ".join(f"{rng.choice(SPAM_OPENERS)} {rng.choice(SPAM_BODIES)} {rng.choice(SPAM_TAILS)}"
                    for _ in range(rng.randint(1, 2)))


TOY_SETTINGS = TrainSettings(epoch=25, lr=0.5, dim=16, bucket=20_000, validation_fraction=0.2,
                             seed=3)

UNSEEN_HQ = ("The observatory was rebuilt after the nineteenth century and has been studied by "
             "several scholars since. The library was first recorded in the late classical era.")
UNSEEN_LQ = "URGENT! ur mobile number won a £1000 cash prize!!! call 09061701461 now 150p/msg"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = random.Random(7)
    positives = [encyclopedic(rng) for _ in range(60)]
    negatives = [spam(rng) for _ in range(60)]
    output = str(tmp_path_factory.mktemp("quality") / "quality.bin")
    metrics = train_quality_model(iter(positives), iter(negatives), output, TOY_SETTINGS)
    return output, metrics


@pytest.fixture(scope="module")
def scorer(trained) -> QualityScorer:
    return QualityScorer(trained[0])


# -- training --------------------------------------------------------------------------------


def test_training_writes_model_and_metrics(trained):
    output, metrics = trained
    with open(output + ".metrics.json", encoding="utf-8") as handle:
        written = json.load(handle)
    assert written == metrics
    assert metrics["accuracy"] > 0.9
    assert metrics["precision"] > 0.9 and metrics["recall"] > 0.9 and metrics["f1"] > 0.9
    assert metrics["train"] == {"hq": 48, "lq": 48}
    assert metrics["validation"] == {"hq": 12, "lq": 12}
    assert sum(metrics["confusion"].values()) == 24
    assert metrics["settings"]["word_ngrams"] == 2 and metrics["settings"]["seed"] == 3


def test_scorer_ranks_unseen_texts(scorer):
    hq, lq = scorer.score(UNSEEN_HQ), scorer.score(UNSEEN_LQ)
    assert 0.0 <= lq < hq <= 1.0
    assert hq > 0.5 > lq
    assert 0.0 <= scorer.score("") <= 1.0


def test_training_is_reproducible(tmp_path, trained):
    rng = random.Random(7)
    positives = [encyclopedic(rng) for _ in range(60)]
    negatives = [spam(rng) for _ in range(60)]
    output = str(tmp_path / "again.bin")
    metrics = train_quality_model(positives, negatives, output, TOY_SETTINGS)
    with open(output, "rb") as again, open(trained[0], "rb") as first:
        assert again.read() == first.read()
    assert metrics["confusion"] == trained[1]["confusion"]


def test_training_refuses_tiny_classes(tmp_path):
    with pytest.raises(ValueError, match="negative"):
        train_quality_model(["a b c", "d e f"], ["spam"], str(tmp_path / "m.bin"), TOY_SETTINGS)
    with pytest.raises(ValueError, match="positive"):
        train_quality_model(["text", "  \n "], ["x", "y"], str(tmp_path / "m.bin"), TOY_SETTINGS)
    with pytest.raises(ValueError, match="lr"):
        train_quality_model(["a", "b"], ["c", "d"], str(tmp_path / "m.bin"), TrainSettings(lr=0))


def test_prepare_text_is_one_lowercase_line():
    assert prepare_text("  Hello\tWorld!\n\nSecond  LINE\r\n") == "hello world! second line"
    assert prepare_text("a\x00b\u2028c") == "a b c"
    assert prepare_text("") == ""


def test_scoring_cuts_to_max_chars(trained):
    cut = QualityScorer(trained[0], max_chars=20)
    assert cut.score(UNSEEN_HQ + " " + UNSEEN_LQ) == cut.score(UNSEEN_HQ[:20])


# -- scorer errors ---------------------------------------------------------------------------


def test_scorer_rejects_missing_and_garbage_files(tmp_path):
    missing = str(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="missing.bin"):
        QualityScorer(missing)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a fasttext model")
    with pytest.raises(ValueError, match="garbage.bin"):
        QualityScorer(str(garbage))


def test_scorer_rejects_other_labels(tmp_path):
    import fasttext

    train = tmp_path / "ab.txt"
    train.write_text("__label__a one two three\n__label__b four five six\n" * 3)
    model = fasttext.train_supervised(str(train), dim=4, bucket=100, epoch=1, thread=1,
                                      verbose=0, minCount=1)
    path = str(tmp_path / "ab.bin")
    model.save_model(path)
    with pytest.raises(ValueError, match=r"ab\.bin.*__label__a, __label__b"):
        QualityScorer(path)


def test_load_quality_model_local_and_remote(trained, scorer):
    assert load_quality_model(trained[0]).score(UNSEEN_HQ) == scorer.score(UNSEEN_HQ)
    assert load_quality_model("file://" + trained[0]).score(UNSEEN_HQ) == scorer.score(UNSEEN_HQ)
    with open(trained[0], "rb") as handle:
        blob = handle.read()
    opened = []

    def opener(path):
        opened.append(path)
        return io.BytesIO(blob)

    remote = load_quality_model("gs://bucket/models/quality.bin", open_binary=opener)
    assert opened == ["gs://bucket/models/quality.bin"]
    assert remote.score(UNSEEN_LQ) == scorer.score(UNSEEN_LQ)
    with pytest.raises(ValueError, match="open_binary"):
        load_quality_model("gs://bucket/models/quality.bin")
    with pytest.raises(ValueError, match="gs://bucket/bad.bin"):
        load_quality_model("gs://bucket/bad.bin", open_binary=lambda p: io.BytesIO(b"junk"))

    def failing(path):
        raise FileNotFoundError(path)

    with pytest.raises(ValueError, match="could not be read"):
        load_quality_model("gs://bucket/none.bin", open_binary=failing)


# -- verdicts --------------------------------------------------------------------------------


def test_threshold_verdicts():
    config = QualityConfig(model="m.bin", threshold=0.7)
    assert REASONS == ("low_quality",)
    assert quality_verdict(0.7, "a", config) is None
    assert quality_verdict(0.95, "a", config) is None
    assert quality_verdict(0.69, "a", config) == "low_quality"
    assert quality_verdict(0.0, "a", QualityConfig(threshold=0.0)) is None


def test_pareto_draw_is_deterministic_and_order_free():
    ids = [f"doc/{i}" for i in range(500)]
    forward = [pareto_draw(5, doc_id, 9.0) for doc_id in ids]
    backward = [pareto_draw(5, doc_id, 9.0) for doc_id in reversed(ids)][::-1]
    assert forward == backward
    assert len(set(forward)) == len(ids)
    assert forward != [pareto_draw(6, doc_id, 9.0) for doc_id in ids]
    assert all(draw > 0 for draw in forward)
    config = QualityConfig(mode="pareto", seed=5)
    verdicts = [quality_verdict(0.3, doc_id, config) for doc_id in ids]
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    again = dict(zip(shuffled, (quality_verdict(0.3, d, config) for d in shuffled), strict=True))
    assert verdicts == [again[doc_id] for doc_id in ids]
    assert len(set(verdicts)) == 2  # some kept, some dropped


@pytest.mark.parametrize("alpha", [9.0, 1.0])
@pytest.mark.parametrize("score", [1.0, 0.99, 0.9, 0.5, 0.0])
def test_pareto_keep_fraction_matches_lomax(alpha, score):
    # numpy's pareto is Lomax: P(X > x) = (1 + x) ** -alpha, so a document with score s is kept
    # with probability P(X > 1 - s) = (2 - s) ** -alpha.
    config = QualityConfig(mode="pareto", pareto_alpha=alpha, seed=11)
    kept = sum(quality_verdict(score, f"id-{i}", config) is None for i in range(1000)) / 1000
    expected = (2.0 - score) ** -alpha
    assert abs(kept - expected) < 0.05
    if score == 1.0:
        assert kept == 1.0
    if score == 0.0 and alpha == 9.0:
        assert kept < 0.02


def test_pareto_draws_follow_numpy_distribution():
    draws = np.array([pareto_draw(0, str(i), 9.0) for i in range(4000)])
    reference = np.random.default_rng(0).pareto(9.0, 4000)
    assert abs(draws.mean() - 1 / 8) < 0.01  # Lomax mean 1 / (alpha - 1)
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(draws, q) - np.quantile(reference, q)) < 0.02


# -- configuration ---------------------------------------------------------------------------


def test_config_errors(tmp_path):
    assert QualityConfig().errors() == []
    assert not QualityConfig().active
    assert QualityConfig(model="gs://bucket/q.bin").errors() == []
    assert QualityConfig(model="gs://bucket/q.bin").active
    assert not QualityConfig(enabled=False, model="gs://bucket/q.bin").active
    bad = QualityConfig(mode="top", threshold=1.5, pareto_alpha=0, seed=-1,
                        model=str(tmp_path / "nope.bin")).errors()
    assert len(bad) == 5
    joined = " ".join(bad)
    for word in ("mode", "threshold", "pareto_alpha", "seed", "nope.bin"):
        assert word in joined


def test_train_settings_errors():
    assert TrainSettings().errors() == []
    bad = TrainSettings(word_ngrams=0, epoch=0, lr=-1, dim=0, min_count=0,
                        validation_fraction=1.0, seed=-1, max_chars=0, bucket=0).errors()
    assert len(bad) == 9
    bad = TrainSettings(autotune_seconds=-1, significance=0.0, min_score_gap=1.5,
                        target_precision=0.0).errors()
    assert [problem.split()[0] for problem in bad] == [
        "autotune_seconds", "significance", "target_precision", "min_score_gap"]


# -- the real fixture: defaults that learn, weak models refused ---------------------------------
# tests/filters/data/quality_pairs.jsonl.gz (written by ``python bench/quality_pairs.py
# --write-fixture``): 200 hq windows (Debian Administrator's Handbook, GPL-2.0+ OR CC-BY-SA-3.0;
# Linux kernel documentation, GPL-2.0) and 200 lq windows (SMS messages, MIT; gzip and findutils
# Debian changelogs, GPL-3.0+ and GPL-2.0+) of 15..60 words, the same length distribution for
# both classes; a quarter of each source held out as ``split: test``. Each record names its source
# and licence.

SMALL = {"bucket": 20_000, "dim": 16}  # a small model file; learning settings stay the defaults


def fixture_texts(label: str, split: str) -> list[str]:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    return [r["text"] for r in records if r["label"] == label and r["split"] == split]


def held_out_accuracy(model: str) -> tuple[float, float, float]:
    """(accuracy, share of hq kept, share of lq removed) on the fixture's test split, scored as
    curation scores: QualityScorer and quality_verdict with the default QualityConfig."""
    scorer, config = QualityScorer(model), QualityConfig(model=model)
    kept = {label: [quality_verdict(scorer.score(text), f"{label}/{i}", config) is None
                    for i, text in enumerate(fixture_texts(label, "test"))]
            for label in ("hq", "lq")}
    hq_kept = sum(kept["hq"]) / len(kept["hq"])
    lq_removed = 1 - sum(kept["lq"]) / len(kept["lq"])
    right = sum(kept["hq"]) + len(kept["lq"]) - sum(kept["lq"])
    return right / (len(kept["hq"]) + len(kept["lq"])), hq_kept, lq_removed


def test_default_settings_learn_a_real_length_matched_pair(tmp_path):
    # fastText's own defaults (lr 0.1, 5 epochs; winnow's until issue 12) left every score at
    # 0.50 on this fixture and removed under half of the held-out lq.
    output = str(tmp_path / "quality.bin")
    metrics = train_quality_model(fixture_texts("hq", "train"), fixture_texts("lq", "train"),
                                  output, TrainSettings())
    accuracy, hq_kept, lq_removed = held_out_accuracy(output)
    assert accuracy >= 0.93 and hq_kept >= 0.9 and lq_removed >= 0.9
    assert metrics["accuracy"] >= 0.85
    assert metrics["score_gap"] > 0.6
    assert metrics["weak"] == []


def mixed_up(seed: int) -> tuple[list[str], list[str]]:
    """Every fixture document, labelled at random."""
    texts = fixture_texts("hq", "train") + fixture_texts("lq", "train")
    random.Random(seed).shuffle(texts)
    return texts[:len(texts) // 2], texts[len(texts) // 2:]


@pytest.mark.parametrize("case", ["random labels", "identical classes"])
def test_a_model_that_cannot_tell_the_classes_apart_is_refused(tmp_path, case):
    if case == "random labels":
        positive, negative = mixed_up(seed=0)
    else:
        positive = negative = fixture_texts("hq", "train") + fixture_texts("hq", "test")
    output = tmp_path / "quality.bin"
    with pytest.raises(WeakModelError) as refused:
        train_quality_model(positive, negative, str(output), TrainSettings(**SMALL))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"refused to save a weak model to {output}: ")
    assert "is not shown to beat always guessing the larger class" in message
    assert "scores barely spread" in message
    assert "--epoch" in message and "--allow-weak" in message
    assert sorted(os.listdir(tmp_path)) == ["quality.bin.refused.json"]
    written = json.loads((tmp_path / "quality.bin.refused.json").read_text())
    assert written["weak"] == refused.value.metrics["weak"] and len(written["weak"]) == 2
    assert written["allow_weak"] is False


def test_allow_weak_saves_the_model_and_marks_it(tmp_path):
    output = tmp_path / "quality.bin"
    (tmp_path / "quality.bin.refused.json").write_text("{}")  # from an earlier refused run
    metrics = train_quality_model(*mixed_up(seed=0), str(output), TrainSettings(**SMALL),
                                  allow_weak=True)
    assert len(metrics["weak"]) == 2 and metrics["allow_weak"] is True
    assert json.loads((tmp_path / "quality.bin.metrics.json").read_text()) == metrics
    assert sorted(os.listdir(tmp_path)) == ["quality.bin", "quality.bin.metrics.json"]
    assert 0.0 <= QualityScorer(str(output)).score("any text") <= 1.0


def test_a_validation_split_too_small_to_judge_is_refused(tmp_path):
    hq, lq = fixture_texts("hq", "train")[:12], fixture_texts("lq", "train")[:12]
    with pytest.raises(WeakModelError, match=r"validation split \(4 documents\) is too small"):
        train_quality_model(hq, lq, str(tmp_path / "q.bin"),
                            TrainSettings(validation_fraction=0.15, **SMALL))
    assert not (tmp_path / "q.bin").exists()


def test_metrics_give_score_distributions_and_the_precision_threshold(tmp_path):
    output = str(tmp_path / "quality.bin")
    settings = TrainSettings(target_precision=0.9, **SMALL)
    metrics = train_quality_model(fixture_texts("hq", "train"), fixture_texts("lq", "train"),
                                  output, settings)
    validation = metrics["validation"]
    for label in ("hq", "lq"):
        distribution = metrics["scores"][label]
        assert distribution["histogram"]["bin_edges"] == [i / 10 for i in range(11)]
        assert sum(distribution["histogram"]["counts"]) == validation[label]
        quantiles = list(distribution["quantiles"].values())
        assert list(distribution["quantiles"]) == ["0.05", "0.25", "0.5", "0.75", "0.95"]
        assert quantiles == sorted(quantiles) and 0.0 <= quantiles[0] <= quantiles[-1] <= 1.0
    assert metrics["scores"]["hq"]["quantiles"]["0.5"] > 0.9 > 0.1 > (
        metrics["scores"]["lq"]["quantiles"]["0.5"])
    assert metrics["score_gap"] == pytest.approx(
        metrics["scores"]["hq"]["mean"] - metrics["scores"]["lq"]["mean"], abs=1e-3)
    assert metrics["threshold"] == QualityConfig().threshold == 0.5
    confusion = metrics["confusion"]
    assert metrics["accuracy"] == (confusion["true_positive"] + confusion["true_negative"]) / (
        validation["hq"] + validation["lq"])
    assert metrics["chance"]["p_value"] < 1e-6

    # The precision threshold, recomputed from the saved model's validation scores.
    chosen = metrics["threshold_for_precision"]
    assert chosen["target_precision"] == 0.9 and chosen["precision"] >= 0.9
    scorer = QualityScorer(output)
    hq_scores = [scorer.score(t) for t in fixture_texts("hq", "train")]
    lq_scores = [scorer.score(t) for t in fixture_texts("lq", "train")]
    recomputed = threshold_for_precision(hq_scores, lq_scores, 0.9)
    assert recomputed["precision"] >= 0.9 and 0.0 <= recomputed["threshold"] <= 1.0


def test_threshold_for_precision_keeps_the_most_hq_at_the_target():
    hq, lq = [0.9, 0.8, 0.4], [0.85, 0.3, 0.2]
    # From the top: 0.9 (1/1 hq), 0.85 (1/2), 0.8 (2/3), 0.4 (3/4), 0.3 (3/5), 0.2 (3/6).
    assert threshold_for_precision(hq, lq, 0.6) == {
        "target_precision": 0.6, "threshold": 0.3, "precision": 0.6, "hq_kept": 1.0,
        "lq_kept": 2 / 3}
    assert threshold_for_precision(hq, lq, 0.7)["threshold"] == 0.4
    assert threshold_for_precision(hq, lq, 0.95)["threshold"] == 0.9
    # Tied scores are kept or dropped together: 0.5 keeps one hq and one lq (1/2), 0.1 all (2/3).
    assert threshold_for_precision([0.5, 0.1], [0.5], 0.7) == {
        "target_precision": 0.7, "threshold": None}


def test_binomial_tail_is_exact():
    assert binomial_tail(10, 10, 0.5) == pytest.approx(0.5 ** 10)
    assert binomial_tail(0, 7, 0.3) == 1.0
    expected = sum(math.comb(20, k) * 0.6 ** k * 0.4 ** (20 - k) for k in range(15, 21))
    assert binomial_tail(15, 20, 0.6) == pytest.approx(expected, rel=1e-12)
    assert binomial_tail(900, 1000, 0.5) < 1e-100


def test_autotune_searches_settings_within_its_budget(tmp_path):
    # What 2 s of search finds depends on the machine; only its record is checked here.
    settings = TrainSettings(autotune_seconds=2, **SMALL)
    metrics = train_quality_model(fixture_texts("hq", "train"), fixture_texts("lq", "train"),
                                  str(tmp_path / "q.bin"), settings, allow_weak=True)
    assert set(metrics["autotuned"]) >= {"lr", "epoch", "wordNgrams"}
    assert metrics["autotuned"]["dim"] == 16
    assert metrics["settings"]["autotune_seconds"] == 2


def test_reruns_with_the_defaults_give_the_same_model(tmp_path):
    first, again = str(tmp_path / "a.bin"), str(tmp_path / "b.bin")
    for output in (first, again):
        train_quality_model(fixture_texts("hq", "train"), fixture_texts("lq", "train"), output,
                            replace(TrainSettings(**SMALL), seed=5))
    assert Path(first).read_bytes() == Path(again).read_bytes()
