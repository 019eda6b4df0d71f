"""A tiny SentencePiece model (about 100 pieces, BERT special tokens) for shard and trainer
tests: trained in a second from a seeded random corpus, so no model file is checked in."""

import os
import random

import sentencepiece

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
