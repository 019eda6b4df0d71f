import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sentencepiece = pytest.importorskip("sentencepiece")

from tests.trainer.helpers import text_examples, write_shards  # noqa: E402
from winnow.schemas.shard_format import special_tokens_from_model  # noqa: E402
from winnow.schemas.shard_verify import verify_shards  # noqa: E402
from winnow.trainer.data import (  # noqa: E402
    BATCH_KEYS,
    IGNORE_INDEX,
    Batches,
    DataConfigError,
    IndexPermutation,
    MaskingConfig,
    PretrainingData,
    collate,
    random_replacement_ids,
    step_positions,
    word_start_mask,
)

# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shards(tmp_path_factory, tokenizer):
    """60 examples of up to 40 tokens in three shards."""
    directory = tmp_path_factory.mktemp("shards")
    write_shards(directory, text_examples(tokenizer, 60, 40), tokenizer, max_seq_len=40,
                 examples_per_shard=25)
    assert verify_shards(directory) == []
    return directory


@pytest.fixture(scope="module")
def long_shards(tmp_path_factory, tokenizer):
    """400 examples of exactly 120 random ids (for masking statistics)."""
    directory = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(0)
    special = set(special_tokens_from_model(tokenizer).values())
    ids = [i for i in range(100) if i not in special]
    examples = [(rng.choice(ids, 50).tolist(), rng.choice(ids, 70).tolist(), int(i % 2))
                for i in range(400)]
    write_shards(directory, examples, tokenizer, max_seq_len=128)
    return directory


def example_index(data: PretrainingData, position: int) -> int:
    """The corpus example at one stream position."""
    return int(data.example_indices([position])[0])


def original_ids(batch):
    """input_ids with the masked tokens put back."""
    labels = batch["mlm_labels"]
    return torch.where(labels != IGNORE_INDEX, labels, batch["input_ids"])


# --- config ------------------------------------------------------------------------------------

def test_masking_config_lists_every_problem():
    with pytest.raises(DataConfigError) as error:
        MaskingConfig(mlm_probability=0.0, mask_token_prob=0.95, random_token_prob=0.1)
    assert error.value.problems == [
        "mlm_probability: must be in (0, 1], got 0.0",
        "mask_token_prob + random_token_prob must be at most 1, got 0.95 + 0.1"]
    assert MaskingConfig().mlm_probability == 0.15


# --- layout ------------------------------------------------------------------------------------

def test_collate_lays_out_cls_a_sep_b_sep_and_padding(shards):
    data = PretrainingData(shards, seed=1)
    special = data.manifest.special_tokens
    cls, sep, pad = special["[CLS]"], special["[SEP]"], special["[PAD]"]
    positions = [0, 1, 2, 3, 4]
    batch = collate([data[p] for p in positions])
    assert set(batch) == set(BATCH_KEYS)
    assert batch["input_ids"].shape == (5, 40) and batch["input_ids"].dtype == torch.int64
    assert batch["attention_mask"].dtype == torch.bool
    assert batch["pair_labels"].shape == (5,)
    restored = original_ids(batch)
    for row, position in enumerate(positions):
        a, b, label = data.reader.example(example_index(data, position))
        a, b = a.tolist(), b.tolist()
        length = len(a) + len(b) + 3
        assert restored[row].tolist() == [cls, *a, sep, *b, sep] + [pad] * (40 - length)
        assert batch["token_type_ids"][row].tolist() == (
            [0] * (len(a) + 2) + [1] * (len(b) + 1) + [0] * (40 - length))
        assert batch["attention_mask"][row].tolist() == [True] * length + [False] * (40 - length)
        assert batch["pair_labels"][row].item() == label
    # The vectorized batch path gives exactly what collate of single examples gives.
    together = data.batch(positions)
    for key in BATCH_KEYS:
        assert torch.equal(together[key], batch[key]), key


# --- masking -----------------------------------------------------------------------------------

def test_masking_rate_split_and_special_tokens(long_shards):
    data = PretrainingData(long_shards, seed=3)
    special = set(data.manifest.special_tokens.values())
    batch = data.batch(np.arange(len(data)))
    labels, inputs = batch["mlm_labels"], batch["input_ids"]
    original = original_ids(batch)
    selected = labels != IGNORE_INDEX
    # 120 content tokens per example: exactly round(0.15 * 120) = 18 selected in each.
    assert selected.sum(dim=1).tolist() == [18] * len(data)
    assert not any(original[selected].eq(token).any() for token in special)
    assert not selected[~batch["attention_mask"]].any()
    assert not selected[:, 0].any()  # [CLS]
    mask_id = data.mask_id
    masked = (inputs[selected] == mask_id).float().mean().item()
    unchanged = (inputs[selected] == labels[selected]).float().mean().item()
    assert 0.77 < masked < 0.83
    assert 0.08 < unchanged < 0.13  # 10% kept + random ids that happen to equal the original
    randomized = inputs[selected & (inputs != mask_id) & (inputs != labels)]
    assert 0.07 < randomized.numel() / selected.sum().item() < 0.12
    replacements = set(random_replacement_ids(
        os.path.join(long_shards, "tokenizer.model"), data.manifest.special_tokens).tolist())
    assert set(randomized.tolist()) <= replacements
    assert not set(randomized.tolist()) & special
    # Unselected tokens are untouched.
    assert torch.equal(inputs[~selected], original[~selected])


def test_masking_is_deterministic_per_seed_epoch_and_example(long_shards):
    data = PretrainingData(long_shards, seed=5)
    n = len(data)
    alone = data.batch([7])
    among = data.batch([3, 7, 100])
    assert torch.equal(alone["input_ids"][0], among["input_ids"][1])
    assert torch.equal(alone["mlm_labels"][0], PretrainingData(long_shards, seed=5)
                       .batch([7])["mlm_labels"][0])
    # The same example in the next epoch is masked differently; so is it under another seed.
    index = example_index(data, 7)
    later = next(p for p in range(n, 2 * n) if example_index(data, p) == index)
    assert not torch.equal(alone["mlm_labels"][0], data.batch([later])["mlm_labels"][0])
    other = PretrainingData(long_shards, seed=6)
    same_example = next(p for p in range(n) if example_index(other, p) == index)
    assert not torch.equal(alone["mlm_labels"][0], other.batch([same_example])["mlm_labels"][0])


def test_whole_word_masking_selects_whole_words(shards, tokenizer):
    path = os.path.join(shards, "tokenizer.model")
    starts = word_start_mask(path, 100)
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer)
    assert starts.tolist() == [processor.id_to_piece(i).startswith("\u2581") for i in range(100)]
    data = PretrainingData(shards, seed=2, masking=MaskingConfig(whole_word=True))
    batch = data.batch(np.arange(len(data)))
    original = original_ids(batch)
    selected = batch["mlm_labels"] != IGNORE_INDEX
    words_checked = 0
    for row in range(len(data)):
        length = int(batch["attention_mask"][row].sum())
        ids = original[row, :length].tolist()
        assert selected[row].any()
        # Split [CLS] A [SEP] B [SEP] into words; each word is all selected or none.
        segment_starts = {1, ids.index(data.sep_id) + 1}
        word = []
        for column in range(1, length):
            boundary = (column in segment_starts or starts[ids[column]]
                        or ids[column] == data.sep_id)
            if boundary and word:
                assert len({bool(selected[row, c]) for c in word}) == 1, (row, word)
                words_checked += 1
                word = []
            if ids[column] != data.sep_id:
                word.append(column)
    assert words_checked > 100


# --- order -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 64, 1000])
def test_index_permutation_is_a_bijection(n):
    out = IndexPermutation(n, key=42)(np.arange(n))
    assert sorted(out.tolist()) == list(range(n))
    if n >= 17:
        assert out.tolist() != list(range(n))
        assert out.tolist() != IndexPermutation(n, key=43)(np.arange(n)).tolist()


def test_order_is_a_fresh_permutation_every_epoch_and_splits_are_disjoint(long_shards):
    train = PretrainingData(long_shards, seed=9, eval_examples=30)
    held_out = PretrainingData(long_shards, seed=9, split="eval", eval_examples=30)
    n = len(train)
    assert (n, len(held_out)) == (370, 30)
    epochs = [train.example_indices(np.arange(e * n, (e + 1) * n)).tolist() for e in range(3)]
    assert all(sorted(epoch) == sorted(epochs[0]) for epoch in epochs)
    assert len(set(epochs[0])) == n
    assert epochs[0] != epochs[1] != epochs[2]
    eval_indices = held_out.example_indices(np.arange(30)).tolist()
    assert sorted(set(epochs[0]) | set(eval_indices)) == list(range(400))
    # Deterministic from (seed, epoch, position), by position alone (no state).
    again = PretrainingData(long_shards, seed=9, eval_examples=30)
    assert again.example_indices(np.arange(2 * n + 5, 2 * n + 9)).tolist() == epochs[2][5:9]
    assert PretrainingData(long_shards, seed=10, eval_examples=30).example_indices(
        np.arange(n)).tolist() != epochs[0]
    # The eval split does not depend on the training seed.
    assert sorted(PretrainingData(long_shards, seed=1, split="eval", eval_examples=30)
                  .example_indices(np.arange(30)).tolist()) == sorted(eval_indices)


def test_ddp_rank_slices_are_the_global_batch(shards):
    data = PretrainingData(shards, seed=4)
    for step in (0, 3):
        whole = step_positions(step, 8)
        parts = [step_positions(step, 8, rank, 4) for rank in range(4)]
        assert sorted(np.concatenate(parts).tolist()) == whole.tolist()
        single = next(iter(Batches(data, 8, start_step=step)))
        ranks = [next(iter(Batches(data, 8, start_step=step, rank=r, world_size=2)))
                 for r in range(2)]
        for key in BATCH_KEYS:
            # rank 0 holds rows 0, 2, 4, 6 of the global batch; rank 1 rows 1, 3, 5, 7
            interleaved = torch.stack([ranks[r][key] for r in range(2)], dim=1).flatten(0, 1)
            assert torch.equal(interleaved, single[key]), key
    with pytest.raises(ValueError, match="not a multiple"):
        step_positions(0, 10, 0, 3)


def test_batches_resume_at_a_step_and_workers_change_nothing(shards):
    data = PretrainingData(shards, seed=4)
    stream = iter(Batches(data, 6))
    first = [next(stream) for _ in range(4)]
    resumed = next(iter(Batches(data, 6, start_step=3)))
    assert torch.equal(resumed["input_ids"], first[3]["input_ids"])
    with_worker = iter(Batches(data, 6, start_step=2, num_workers=1, prefetch_factor=2))
    for step in (2, 3):
        batch = next(with_worker)
        for key in BATCH_KEYS:
            assert torch.equal(batch[key], first[step][key]), key
