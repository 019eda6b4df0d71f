"""winnow evaluate: loading runs and exports (trainer.pretrained) and held-out figures on text
(trainer.evaluate). Tiny data: a winnow tokenizer, shards cut from repetitive documents by the
very pairing code evaluate uses, and a tiny run of a few dozen steps."""

import json
import math
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("sentencepiece")

from tests.trainer.helpers import (  # noqa: E402
    TINY_MODEL,
    single_thread,  # noqa: F401 (autouse fixture)
    tiny_config,
)
from winnow.cli import main  # noqa: E402
from winnow.filters.pairs import PairsConfig, PairStats  # noqa: E402
from winnow.filters.sentences import SentencesConfig  # noqa: E402
from winnow.filters.tokenizer import Tokenizer, TokenizerConfig, train_tokenizer  # noqa: E402
from winnow.schemas.shard_format import (  # noqa: E402
    DocumentRef,
    special_tokens_from_model,
    write_shard_set,
)
from winnow.trainer.checkpoints import PretrainError  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.evaluate import (  # noqa: E402
    EvaluateError,
    evaluate_text,
    format_table,
    piece_bytes,
    text_examples,
)
from winnow.trainer.export import export_huggingface  # noqa: E402
from winnow.trainer.model import ModelConfig, PreTrainingModel  # noqa: E402
from winnow.trainer.pretrained import load_pretrained  # noqa: E402
from winnow.trainer.train import export, pretrain  # noqa: E402

MAX_SEQ_LEN = 32
SENTENCES = [
    "The cat sat on the mat.", "The dog ran far away from home.",
    "Birds sang over green hills.", "Fish swim slowly under the bridge.",
    "The old river runs near the bank.", "A bright summer sky hung over the town.",
    "Children play in the park after school.", "The baker sells bread every morning.",
]


def documents(count: int, seed: int) -> list[str]:
    """Documents of 3 to 8 sentences from SENTENCES, in a random order."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(3, 8)))
            for _ in range(count)]


def write_jsonl(path, texts: list[str]) -> str:
    with open(path, "w") as handle:
        for number, text in enumerate(texts):
            handle.write(json.dumps({"id": f"doc-{number}", "text": text}) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer_bytes() -> bytes:
    """A winnow tokenizer (the special-token layout curation's shards have)."""
    return train_tokenizer(documents(200, seed=1), TokenizerConfig(vocab_size=320,
                                                                   num_threads=1))


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory, tokenizer_bytes) -> str:
    path = tmp_path_factory.mktemp("spm") / "tokenizer.model"
    path.write_bytes(tokenizer_bytes)
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tokenizer_bytes) -> str:
    """40 steps of a tiny model on shards cut from 300 documents like the held-out text."""
    folder = tmp_path_factory.mktemp("run")
    docs = [(DocumentRef(f"train-{n}", "train.jsonl", n), text)
            for n, text in enumerate(documents(300, seed=2))]
    examples = list(text_examples(docs, Tokenizer(tokenizer_bytes),
                                  PairsConfig(max_seq_len=MAX_SEQ_LEN), SentencesConfig(),
                                  PairStats()))
    write_shard_set(folder / "shards", [(list(e.tokens_a), list(e.tokens_b), e.label)
                                        for e in examples],
                    tokenizer_bytes, max_seq_len=MAX_SEQ_LEN)
    config = tiny_config(model={**TINY_MODEL, "dropout": 0.0, "attention_dropout": 0.0},
                         max_steps=40, eval_every=0, batch_size=16, lr=2e-3)
    pretrain(str(folder / "shards"), str(folder / "run"), config_from_dict(config))
    return str(folder / "run")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> str:
    return write_jsonl(tmp_path_factory.mktemp("text") / "held_out.jsonl",
                       documents(40, seed=3))


def same_outputs(first, second, vocab_size: int) -> bool:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, vocab_size, (3, 16), generator=generator)
    token_type_ids = (torch.arange(16) >= 8).long().expand(3, 16)
    mask = torch.ones(3, 16, dtype=torch.bool)
    with torch.no_grad():
        a = first.model(input_ids, token_type_ids, mask)
        b = second.model(input_ids, token_type_ids, mask)
    return torch.equal(a.mlm_logits, b.mlm_logits) and torch.equal(a.pair_logits, b.pair_logits)


# --- loading -----------------------------------------------------------------------------------

def test_a_run_and_its_export_load_as_the_same_model(tmp_path, run, held_out):
    from_run = load_pretrained(run)
    from_export = load_pretrained(export(run, str(tmp_path / "hf")))
    assert (from_run.kind, from_run.step, from_export.kind) == ("run", 40, "export")
    assert from_export.config == from_run.config
    assert from_export.special_tokens == from_run.special_tokens
    assert (from_export.objective, from_export.max_seq_len) == ("sop", MAX_SEQ_LEN)
    assert not from_export.model.training
    assert same_outputs(from_run, from_export, from_run.config.vocab_size)
    figures = {key: value for key, value in evaluate_text(from_run, [held_out]).items()
               if key not in ("model", "kind", "step")}
    assert figures == {key: value for key, value in evaluate_text(from_export, [held_out]).items()
                       if key not in ("model", "kind", "step")}


@pytest.mark.parametrize("overrides", [
    {"objective": "nsp"},  # BertForPreTraining
    {"embedding_size": 32, "share_layers": "all"},  # ALBERT, one shared layer, E != H
    {"share_layers": "all"},  # ALBERT with E = H: an identity embedding mapping
    {"embedding_size": 32},  # ALBERT, one group per layer
], ids=["bert", "albert-shared", "albert-shared-e-equals-h", "albert-unshared"])
def test_every_architecture_export_writes_loads_back_exactly(tmp_path, tokenizer_path,
                                                             tokenizer_bytes,
                                                             overrides):
    vocab = Tokenizer(tokenizer_bytes).vocab_size
    config = ModelConfig(**{"vocab_size": vocab, "max_seq_len": MAX_SEQ_LEN, "num_layers": 2,
                            "hidden_size": 64, "num_heads": 2, "intermediate_size": 128,
                            **overrides})
    torch.manual_seed(3)
    model = PreTrainingModel(config).eval()
    export_huggingface(model, tokenizer_path, str(tmp_path / "hf"),
                       special_tokens_from_model(tokenizer_path))
    loaded = load_pretrained(str(tmp_path / "hf"))
    assert loaded.config == config
    original = loaded.untrained(0)
    original.model.load_state_dict(model.state_dict())
    assert same_outputs(loaded, original, vocab)


def test_a_folder_that_is_neither_is_one_line_and_untrained_is_fresh_and_seeded(tmp_path, run):
    (tmp_path / "empty").mkdir()
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}')
    for folder, message in ((tmp_path / "empty", "is neither a winnow pretrain run folder"),
                            (tmp_path / "hf", "is not one winnow exports")):
        with pytest.raises(PretrainError, match=message) as error:
            load_pretrained(str(folder))
        assert "\n" not in str(error.value)

    trained = load_pretrained(run)
    state = torch.get_rng_state()
    fresh, again, other = trained.untrained(5), trained.untrained(5), trained.untrained(6)
    assert torch.equal(torch.get_rng_state(), state)
    assert fresh.kind == "untrained" and fresh.config == trained.config
    assert same_outputs(fresh, again, trained.config.vocab_size)
    assert not same_outputs(fresh, other, trained.config.vocab_size)
    assert not same_outputs(fresh, trained, trained.config.vocab_size)


# --- evaluation --------------------------------------------------------------------------------

def test_evaluate_is_deterministic_and_independent_of_the_batch_size(run, held_out):
    model = load_pretrained(run)
    first = evaluate_text(model, [held_out], seed=4)
    assert evaluate_text(model, [held_out], seed=4) == first
    rebatched = evaluate_text(model, [held_out], seed=4, batch_size=3)
    assert rebatched["counts"] == first["counts"]
    for key in ("loss", "mlm_loss", "mlm_accuracy", "mlm_bits_per_byte", "pair_loss",
                "sop_accuracy"):
        assert rebatched[key] == pytest.approx(first[key], rel=1e-5), key
    other_seed = evaluate_text(model, [held_out], seed=5)
    assert other_seed["mlm_loss"] != first["mlm_loss"]
    limited = evaluate_text(model, [held_out], seed=4, max_examples=7)
    assert limited["counts"]["examples"] == 7 < first["counts"]["examples"]


def test_a_trained_model_beats_its_untrained_architecture_on_like_text(run, held_out):
    trained = load_pretrained(run)
    learned = evaluate_text(trained, [held_out])
    baseline = evaluate_text(trained.untrained(0), [held_out])
    assert baseline["mlm_loss"] > math.log(trained.config.vocab_size) - 0.5  # about uniform
    assert learned["mlm_loss"] < baseline["mlm_loss"] - 1.0
    assert learned["mlm_bits_per_byte"] < baseline["mlm_bits_per_byte"]
    assert learned["mlm_accuracy"] > baseline["mlm_accuracy"]
    assert learned["counts"] == baseline["counts"]  # the same examples and masks


def test_bits_per_byte_counts_the_bytes_of_the_masked_pieces(run, held_out, tokenizer_bytes):
    tokenizer = Tokenizer(tokenizer_bytes)
    table = piece_bytes(tokenizer)
    for sentence in SENTENCES:  # the pieces of a sentence stand for it and a space before it
        assert table[tokenizer.encode([sentence])[0]].sum() == len(sentence) + 1
    assert table[:5].tolist() == [0] * 5  # [PAD] [UNK] [CLS] [SEP] [MASK]
    result = evaluate_text(load_pretrained(run), [held_out])
    counts = result["counts"]
    assert 0 < counts["masked_tokens"] < counts["masked_bytes"] < counts["text_bytes"]
    summed_bits = result["mlm_loss"] * counts["masked_tokens"] / math.log(2)
    assert result["mlm_bits_per_byte"] == pytest.approx(summed_bits / counts["masked_bytes"])


def test_rows_with_problems_are_counted_by_reason_never_raised(tmp_path, run):
    good = documents(5, seed=9)
    path = tmp_path / "mixed.jsonl"
    lines = [json.dumps({"text": good[0]}), "{not json", json.dumps([1, 2]),
             json.dumps({"title": "no text"}), json.dumps({"text": "   "}),
             json.dumps({"text": 42}), json.dumps({"body": good[1]}),
             *(json.dumps({"text": text}) for text in good[2:])]
    path.write_text("\n".join(lines) + "\n")
    plain = tmp_path / "notes.txt"
    plain.write_text(good[1])
    result = evaluate_text(load_pretrained(run), [str(path), str(plain)])
    counts = result["counts"]
    assert counts["problem_rows"] == {"empty_text": 1, "malformed_json": 1, "missing_text": 2,
                                      "not_an_object": 1, "invalid_text": 1}
    assert (counts["files"], counts["rows"], counts["documents"]) == (2, 11, 5)
    by_field = evaluate_text(load_pretrained(run), [str(path)], text_field="body")
    assert by_field["counts"]["documents"] == 1
    with pytest.raises(EvaluateError, match="no file matches"):
        evaluate_text(load_pretrained(run), [str(tmp_path / "absent.jsonl")])
    single = write_jsonl(tmp_path / "single.jsonl", ["Only one sentence here."])
    with pytest.raises(EvaluateError, match="no examples .*: 1 documents, none with two"):
        evaluate_text(load_pretrained(run), [single])


def test_an_nsp_model_reports_nsp_accuracy(tmp_path, tokenizer_path, tokenizer_bytes,
                                           held_out):
    vocab = Tokenizer(tokenizer_bytes).vocab_size
    model = PreTrainingModel(ModelConfig(vocab_size=vocab, max_seq_len=MAX_SEQ_LEN, num_layers=1,
                                         hidden_size=32, num_heads=2, intermediate_size=64,
                                         objective="nsp"))
    export_huggingface(model, tokenizer_path, str(tmp_path / "hf"),
                       special_tokens_from_model(tokenizer_path))
    result = evaluate_text(load_pretrained(str(tmp_path / "hf")), [held_out])
    assert result["objective"] == "nsp" and "sop_accuracy" not in result
    assert 0 <= result["nsp_accuracy"] <= 1 and result["counts"]["label_1"] > 0


# --- command -----------------------------------------------------------------------------------

def test_cli_prints_a_table_or_json_and_refuses_in_one_line(tmp_path, run, held_out, capsys):
    assert main(["evaluate", run, "--text", held_out, "--json", "--seed", "4"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(evaluate_text(load_pretrained(run), [held_out],
                                                          seed=4)))
    assert main(["evaluate", run, "--text", held_out, "--batch-size", "5"]) == 0
    table = capsys.readouterr().out
    assert "mlm bits per byte" in table and "sop accuracy" in table

    (tmp_path / "nothing").mkdir()
    for argv in (["evaluate", str(tmp_path / "nothing"), "--text", held_out],
                 ["evaluate", run, "--text", str(tmp_path / "absent.jsonl")],
                 ["evaluate", run, "--text", held_out, "--batch-size", "0"]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.startswith("winnow evaluate: ") and error.count("\n") == 1


def test_an_mlm_model_is_evaluated_on_packed_text_without_pair_figures(tokenizer_path,
                                                                        tokenizer_bytes,
                                                                        held_out):
    from winnow.trainer.pretrained import Pretrained

    special = special_tokens_from_model(tokenizer_bytes)
    config = ModelConfig.preset("tiny", vocab_size=320, max_seq_len=MAX_SEQ_LEN,
                                objective="mlm", pad_token_id=special["[PAD]"])
    torch.manual_seed(0)
    pretrained = Pretrained(PreTrainingModel(config).eval(), config, tokenizer_path, special,
                            "untrained", "untrained")
    result = evaluate_text(pretrained, [held_out])
    assert result["objective"] == "mlm" and "pair_loss" not in result
    assert result["loss"] == result["mlm_loss"] > 0
    # packed like curation's mlm shards: full sentences filling [CLS] ... [SEP] across documents
    counts = result["counts"]
    assert counts["documents"] == 40 and counts["examples"] > 0
    assert counts["tokens"] / counts["examples"] > 0.75 * (MAX_SEQ_LEN - 2)
    assert counts["single_segment_chunks"] == 0 and counts["label_1"] == 0
    table = format_table(result)
    assert "mlm accuracy" in table and "mlm loss" not in table.split("mlm accuracy")[1]
