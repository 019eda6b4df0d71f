"""Shard folders for the trainer tests: a tiny SentencePiece model and random examples."""

import json
import os
import random
import subprocess
import sys

import pytest
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


TINY_MODEL = {"preset": "tiny", "hidden_size": 64, "num_heads": 2, "intermediate_size": 128}
TIMING = ("tokens_per_s", "padded_tokens_per_s", "mfu")


def tiny_config(**changes) -> dict:
    """A config (as YAML would give it) for a model that takes a few ms per step."""
    config = {"model": dict(TINY_MODEL), "batch_size": 8, "max_steps": 6, "lr": 1e-3,
              "warmup_steps": 2, "log_every": 1, "eval_every": 3, "eval_batches": 1,
              "checkpoint_every": 0, "eval_examples": 4, "num_workers": 0, "seed": 7}
    config.update(changes)
    return config


def write_config(path, config: dict) -> str:
    import yaml

    with open(path, "w") as handle:
        yaml.safe_dump(config, handle)
    return str(path)


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def torchrun_pretrain(*arguments: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``winnow pretrain ARGUMENTS`` in ``processes`` gloo ranks on the CPU (torchrun), one
    thread each; the caller checks the result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         str(processes), "-m", "winnow", "pretrain", *arguments],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def read_metrics(run_dir, drop=TIMING) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as handle:
        return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in handle]


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: the 2 cores here are shared, and tiny models gain nothing. Autouse
    in every module that imports it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_shards(directory, tokenizer_bytes, count=40, seed=0) -> str:
    """``count`` examples (vocab 100, sop, max_seq_len 20) in shards of 25."""
    write_shards(directory, text_examples(tokenizer_bytes, count, 20, seed=seed),
                 tokenizer_bytes, max_seq_len=20, examples_per_shard=25)
    return str(directory)
