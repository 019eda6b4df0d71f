"""Shard folders for the trainer tests: a tiny SentencePiece model and random examples."""

import random

import sentencepiece

from tests.tiny_tokenizer import WORDS
from winnow.schemas.shard_format import write_shard_set


def text_examples(tokenizer_bytes, count, max_seq_len, seed=0):
    """(A, B, label) from random sentences of WORDS, encoded with the tokenizer."""
    processor = sentencepiece.SentencePieceProcessor(model_proto=tokenizer_bytes)
    rng = random.Random(seed)
    budget = max_seq_len - 3
    examples = []
    while len(examples) < count:
        a = processor.encode(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))))
        b = processor.encode(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))))
        a, b = a[:max(1, budget // 2)], b[:max(1, budget - min(len(a), budget // 2))]
        if a and b and len(a) + len(b) <= budget:
            examples.append((a, b, rng.randint(0, 1)))
    return examples


def write_shards(directory, examples, tokenizer_bytes, *, objective="sop", max_seq_len=20,
                 examples_per_shard=None):
    """A valid shard folder (verify_shards passes) holding ``examples``."""
    return write_shard_set(directory, examples, tokenizer_bytes, objective=objective,
                           max_seq_len=max_seq_len, examples_per_shard=examples_per_shard)
