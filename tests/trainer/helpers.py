"""Shard folders for the trainer tests: a tiny SentencePiece model and random examples."""

import os
import random

import sentencepiece

from schemas.shards import write_shard_set

WORDS = ("the cat sat on a mat and dog ran far away from home while birds sang over green "
         "hills near old river bank where fish swim slowly under bright summer sky").split()


def train_tokenizer(folder, vocab_size=100, seed=0) -> bytes:
    """A tiny SentencePiece model with the BERT special tokens as user-defined pieces."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    invented = ["".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou")
                        for _ in range(rng.randint(1, 4))) for _ in range(300)]
    vocabulary = list(WORDS) + invented
    corpus = os.path.join(folder, "corpus.txt")
    with open(corpus, "w") as handle:
        handle.write("\n".join(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(4, 12)))
                               for _ in range(600)) + "\n")
    prefix = os.path.join(folder, f"tiny-{vocab_size}-{seed}")
    sentencepiece.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, vocab_size=vocab_size,
        user_defined_symbols=["[PAD]", "[CLS]", "[SEP]", "[MASK]"], model_type="unigram",
        character_coverage=1.0, num_threads=1, minloglevel=2)
    with open(prefix + ".model", "rb") as handle:
        return handle.read()


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
