"""MLM-only pretraining on packed shards (pairs.objective mlm): layout, masking rate, whole-word
masking across document separators, training without a pair head, evaluation and export."""

import os
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sentencepiece = pytest.importorskip("sentencepiece")

from tests.tiny_tokenizer import WORDS  # noqa: E402
from tests.trainer.helpers import (  # noqa: E402, F401
    TINY_MODEL,
    read_metrics,
    single_thread,
    tiny_config,
    write_shards,
)
from winnow.filters.pairs import PairsConfig, packed_examples  # noqa: E402
from winnow.schemas.shard_format import DocumentRef, special_tokens_from_model  # noqa: E402
from winnow.schemas.shard_verify import verify_shards  # noqa: E402
from winnow.trainer.config import config_from_dict  # noqa: E402
from winnow.trainer.data import (  # noqa: E402
    IGNORE_INDEX,
    MaskingConfig,
    PretrainingData,
    word_start_mask,
)
from winnow.trainer.train import export, pretrain  # noqa: E402

MAX_SEQ_LEN = 48


def packed_text(tokenizer: bytes, documents: int, max_seq_len: int, seed: int = 0):
    """(ids, [], 0) examples: random documents of WORDS sentences packed as curation packs
    them (``filters.pairs.packed_examples``), [SEP] between documents."""
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer)
    rng = random.Random(seed)
    docs = [(DocumentRef(f"d{d}", "in", d),
             [processor.encode(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9))))
              for _ in range(rng.randint(1, 5))]) for d in range(documents)]
    separator = special_tokens_from_model(tokenizer)["[SEP]"]
    block = packed_examples(docs, PairsConfig(objective="mlm", max_seq_len=max_seq_len),
                            separator)
    return [(a.tolist(), [], 0) for a, _, _ in block.rows()]


@pytest.fixture(scope="module")
def mlm_shards(tmp_path_factory, tokenizer):
    directory = tmp_path_factory.mktemp("mlm") / "shards"
    write_shards(directory, packed_text(tokenizer, 300, MAX_SEQ_LEN), tokenizer,
                 objective="mlm", max_seq_len=MAX_SEQ_LEN, examples_per_shard=40)
    assert verify_shards(directory) == []
    return str(directory)


def original_ids(batch):
    labels = batch["mlm_labels"]
    return torch.where(labels != IGNORE_INDEX, labels, batch["input_ids"])


def test_packed_examples_are_cls_text_sep_with_one_token_type(mlm_shards):
    data = PretrainingData(mlm_shards, seed=1)
    batch = data.batch(np.arange(len(data)))
    ids = original_ids(batch)
    assert (batch["token_type_ids"] == 0).all()
    separators = 0
    for row, index in enumerate(data.example_indices(np.arange(len(data))).tolist()):
        text, b, _ = data.reader.example(index)
        length = len(text) + 2
        assert len(b) == 0 and length <= MAX_SEQ_LEN
        assert ids[row, :length].tolist() == [data.cls_id, *text.tolist(), data.sep_id]
        assert batch["attention_mask"][row].tolist() == [True] * length + [False] * (
            MAX_SEQ_LEN - length)
        assert (ids[row, length:] == data.pad_id).all()
        separators += int((ids[row, 1:length - 1] == data.sep_id).sum())
    assert separators > 20  # documents meet inside examples
    selected = batch["mlm_labels"] != IGNORE_INDEX
    assert not (selected & (ids == data.sep_id)).any()  # never a separator, never [CLS]
    assert not selected[:, 0].any() and not selected[~batch["attention_mask"]].any()


@pytest.mark.parametrize("rate", [0.15, 0.30])
def test_the_masking_rate_is_the_configured_fraction_of_the_text(mlm_shards, rate):
    data = PretrainingData(mlm_shards, seed=4, masking=MaskingConfig(mlm_probability=rate))
    selected = masked_count = candidates = 0
    for epoch in range(3):
        batch = data.batch(np.arange(epoch * len(data), (epoch + 1) * len(data)))
        ids = original_ids(batch)
        text = batch["attention_mask"] & (ids != data.sep_id) & (ids != data.cls_id)
        selected += int((batch["mlm_labels"] != IGNORE_INDEX).sum())
        masked_count += int((batch["input_ids"] == data.mask_id).sum())
        candidates += int(text.sum())
    assert selected / candidates == pytest.approx(rate, abs=0.01)
    assert masked_count / selected == pytest.approx(0.8, abs=0.03)


def test_whole_word_masking_takes_whole_words_on_both_sides_of_a_separator(mlm_shards):
    starts = word_start_mask(os.path.join(mlm_shards, "tokenizer.model"), 100)
    data = PretrainingData(mlm_shards, seed=2,
                           masking=MaskingConfig(whole_word=True, mlm_probability=0.3))
    batch = data.batch(np.arange(len(data)))
    ids = original_ids(batch)
    selected = batch["mlm_labels"] != IGNORE_INDEX
    words = after_separator = 0
    for row in range(len(data)):
        length = int(batch["attention_mask"][row].sum())
        row_ids = ids[row, :length].tolist()
        word: list[int] = []
        for column in range(1, length):
            token = row_ids[column]
            boundary = starts[token] or token == data.sep_id or row_ids[column - 1] == data.sep_id
            if boundary and word:
                assert len({bool(selected[row, c]) for c in word}) == 1, (row, word)
                words += 1
                word = []
            if token != data.sep_id:
                word.append(column)
            if row_ids[column - 1] == data.sep_id and selected[row, column]:
                after_separator += 1
        assert not selected[row, length - 1]
    assert words > 500 and after_separator > 0


def test_pretraining_on_mlm_shards_trains_the_masked_lm_alone(tmp_path, mlm_shards):
    config = config_from_dict(tiny_config(
        model={**TINY_MODEL, "dropout": 0.0, "attention_dropout": 0.0}, batch_size=32,
        max_steps=40, lr=1e-2, warmup_steps=4, log_every=10, eval_every=20, eval_examples=20,
        masking={"mlm_probability": 0.3, "whole_word": True}))
    run = str(tmp_path / "run")
    assert pretrain(mlm_shards, run, config) == 40
    metrics = read_metrics(run)
    train = [entry for entry in metrics if entry.get("split", "train") == "train"]
    assert train[-1]["mlm_loss"] < train[0]["mlm_loss"] - 0.5
    for entry in metrics:
        assert not [key for key in entry if key.startswith(("pair", "sop", "nsp"))], entry
        assert entry["loss"] == pytest.approx(entry["mlm_loss"])
    # exported, it is a BertForMaskedLM with our logits
    transformers = pytest.importorskip("transformers")
    from winnow.trainer.pretrained import load_pretrained

    folder = export(run, str(tmp_path / "hf"))
    ours = load_pretrained(run).model
    assert ours.pair_head is None and ours.pooler is None
    hf_model, info = transformers.BertForMaskedLM.from_pretrained(folder,
                                                                  output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(transformers.AutoModelForMaskedLM.from_pretrained(folder)) is type(hf_model)
    data = PretrainingData(mlm_shards, seed=0)
    batch = data.batch(np.arange(6))
    with torch.no_grad():
        mine = ours(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        theirs = hf_model.eval()(input_ids=batch["input_ids"],
                                 token_type_ids=batch["token_type_ids"],
                                 attention_mask=batch["attention_mask"].long())
    assert torch.allclose(theirs.logits, mine.mlm_logits, atol=1e-4)
    assert load_pretrained(folder).objective == "mlm"
    with open(os.path.join(folder, "README.md")) as card:
        assert "AutoModelForMaskedLM" in card.read()
