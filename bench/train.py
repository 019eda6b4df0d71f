"""Pretraining throughput: the GPU's tokens/s and MFU, and whether the data path keeps up.

    python bench/train.py [--examples 20000] [--batch-size 256] [--steps 20] [--workers 0 2 4]
                          [--compile] [--preset base]

(a) Data path alone, on the CPU: ``PretrainingData.batch`` (memmap reads, [CLS] A [SEP] B [SEP]
    layout, padding, dynamic masking, tensors) for global batches of ``--batch-size`` at
    sequence length 128, in the calling thread (one core) and with whole-word masking; then the
    ``Batches`` iterator with DataLoader workers (``--workers``), end to end. The shard set is
    synthetic but shaped like real shards: 20,000 examples of 64..125 tokens (uniform), A taking
    1..n-1 of them, random non-special ids of a real SentencePiece model (vocabulary 1,000)
    trained here on invented words, written with ``encode_shard`` and a manifest that
    ``verify_shards`` passes.
(b) On a GPU: BERT-base (``--preset``, vocabulary 32,000, sequence length 128) training steps in
    bf16 autocast with fused AdamW through ``trainer.train.train_step``, on batches built by (a)
    beforehand, so that only the GPU is timed: tokens/s (real and padded) and MFU against the
    GPU's bf16 peak. Skipped with a message when CUDA is not available.

Last, the ratio of the data path's tokens/s to the GPU's (or, without a GPU, to what an H100
consumes at 50% MFU): above 1, the data path does not starve the GPU.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import numpy as np

from winnow.schemas.shard_format import special_tokens_from_model, write_shard_set
from winnow.schemas.shard_verify import verify_shards

MAX_SEQ_LEN = 128
TOKENIZER_VOCAB = 1_000
MODEL_VOCAB = 32_000
H100_PEAK = 989e12
TARGET_MFU = 0.5


def train_tokenizer(directory: str) -> bytes:
    """A SentencePiece model of TOKENIZER_VOCAB pieces with the BERT special tokens."""
    import sentencepiece

    rng = random.Random(0)
    words = ["".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou")
                     for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    corpus = os.path.join(directory, "corpus.txt")
    with open(corpus, "w") as handle:
        for _ in range(20_000):
            handle.write(" ".join(rng.choice(words) for _ in range(12)) + "\n")
    prefix = os.path.join(directory, "bench")
    sentencepiece.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, vocab_size=TOKENIZER_VOCAB,
        user_defined_symbols=["[PAD]", "[CLS]", "[SEP]", "[MASK]"], model_type="unigram",
        num_threads=2, minloglevel=2)
    with open(prefix + ".model", "rb") as handle:
        return handle.read()


def write_shards(directory: str, examples: int, tokenizer: bytes, shards: int = 4) -> None:
    """Synthetic examples (see the module docstring) in ``shards`` shards plus a manifest."""
    rng = np.random.default_rng(0)
    special = special_tokens_from_model(tokenizer)
    ordinary = np.setdiff1d(np.arange(TOKENIZER_VOCAB), list(special.values()))
    lengths = rng.integers(64, MAX_SEQ_LEN - 2, size=examples)
    splits = rng.integers(1, lengths)
    ids = rng.choice(ordinary, size=int(lengths.sum())).tolist()
    pairs, start = [], 0
    for length, split in zip(lengths.tolist(), splits.tolist(), strict=True):
        pairs.append((ids[start:start + split], ids[start + split:start + length],
                      int(rng.integers(0, 2))))
        start += length
    write_shard_set(directory, pairs, tokenizer, max_seq_len=MAX_SEQ_LEN,
                    examples_per_shard=-(-examples // shards))


def tokens_of(batch) -> tuple[int, int]:
    """(real, padded) tokens of a batch."""
    return int(batch["attention_mask"].sum()), batch["input_ids"].numel()


def bench_data(shards: str, batch_size: int, steps: int, workers: list[int]) -> dict[str, tuple]:
    """{name: (real tokens/s, padded tokens/s)} of the data path variants."""
    from winnow.trainer.data import Batches, MaskingConfig, PretrainingData, step_positions

    results = {}
    for name, masking in (("one thread", MaskingConfig()),
                          ("one thread, whole-word", MaskingConfig(whole_word=True))):
        data = PretrainingData(shards, seed=0, masking=masking)
        data.batch(step_positions(0, batch_size))  # maps the shards
        real = padded = 0
        started = time.perf_counter()
        for step in range(1, steps + 1):
            tokens = tokens_of(data.batch(step_positions(step, batch_size)))
            real, padded = real + tokens[0], padded + tokens[1]
        seconds = time.perf_counter() - started
        results[name] = (real / seconds, padded / seconds)
    data = PretrainingData(shards, seed=0)
    for count in workers:
        if count == 0:
            continue
        batches = iter(Batches(data, batch_size, num_workers=count))
        for _ in range(2 * count):  # workers started and their queues full
            next(batches)
        real = padded = 0
        started = time.perf_counter()
        for _ in range(steps):
            tokens = tokens_of(next(batches))
            real, padded = real + tokens[0], padded + tokens[1]
        seconds = time.perf_counter() - started
        results[f"Batches, {count} workers"] = (real / seconds, padded / seconds)
        del batches
    return results


def bench_gpu(shards: str, preset: str, batch_size: int, steps: int,
              compile_model: bool) -> dict[str, float] | None:
    """Tokens/s and MFU of training steps on the GPU; None without CUDA."""
    import torch

    from winnow.trainer.config import TrainConfig
    from winnow.trainer.data import PretrainingData, step_positions
    from winnow.trainer.metrics import peak_flops
    from winnow.trainer.model import ModelConfig
    from winnow.trainer.train import Trainer, build_model, build_optimizer, train_step

    if not torch.cuda.is_available():
        return None
    device = torch.device("cuda", 0)
    config = TrainConfig(model={"preset": preset}, batch_size=batch_size, compile=compile_model,
                         warmup_steps=10, max_steps=1000, num_workers=0)
    model_config = ModelConfig.preset(preset, vocab_size=MODEL_VOCAB, max_seq_len=MAX_SEQ_LEN)
    model, raw_model = build_model(model_config, config, device)
    trainer = Trainer(config=config, model_config=model_config, model=model,
                      raw_model=raw_model, optimizer=build_optimizer(raw_model, config, device),
                      device=device)
    data = PretrainingData(shards, seed=0)
    batches = [data.batch(step_positions(step, batch_size)) for step in range(4)]
    batches = [{k: v.pin_memory() for k, v in batch.items()} for batch in batches]
    for step in range(5 if not compile_model else 15):  # warm up (and compile)
        train_step(trainer, batches[step % len(batches)])
    torch.cuda.synchronize()
    real = padded = 0
    started = time.perf_counter()
    for step in range(steps):
        batch = batches[step % len(batches)]
        train_step(trainer, batch)
        tokens = tokens_of(batch)
        real, padded = real + tokens[0], padded + tokens[1]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = peak_flops(device)
    flops = model_config.flops_per_token(MAX_SEQ_LEN, config.masking.mlm_probability)
    return {"gpu": torch.cuda.get_device_name(device), "tokens_per_s": real / seconds,
            "padded_tokens_per_s": padded / seconds,
            "mfu": None if peak is None else padded / seconds * flops / peak,
            "step_ms": seconds / steps * 1e3, "parameters": model_config.num_parameters()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20_000, help="synthetic examples")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--workers", type=int, nargs="*", default=[2],
                        help="DataLoader worker counts to measure (0 is skipped)")
    parser.add_argument("--preset", default="base", help="model preset for the GPU part")
    parser.add_argument("--compile", action="store_true", help="torch.compile the GPU model")
    args = parser.parse_args()

    from winnow.trainer.model import ModelConfig

    with tempfile.TemporaryDirectory() as directory:
        shards = os.path.join(directory, "shards")
        os.makedirs(shards)
        started = time.perf_counter()
        write_shards(shards, args.examples, train_tokenizer(directory))
        assert verify_shards(shards) == []
        print(f"synthetic shards: {args.examples} examples, vocabulary {TOKENIZER_VOCAB}, "
              f"built in {time.perf_counter() - started:.1f} s")

        print(f"\n(a) data path, batch {args.batch_size} x {MAX_SEQ_LEN}, CPU "
              f"({os.cpu_count()} cores visible)")
        data = bench_data(shards, args.batch_size, args.steps, args.workers)
        for name, (real, padded) in data.items():
            print(f"  {name:28s} {real / 1e6:7.2f} M real tokens/s  {padded / 1e6:7.2f} M "
                  f"padded tokens/s  {padded / (args.batch_size * MAX_SEQ_LEN):8.1f} batches/s")

        print(f"\n(b) GPU: {args.preset}, vocabulary {MODEL_VOCAB}, sequence {MAX_SEQ_LEN}, "
              f"bf16, fused AdamW{', compiled' if args.compile else ''}")
        gpu = bench_gpu(shards, args.preset, args.batch_size, args.steps, args.compile)
    if gpu is None:
        print("  skipped: CUDA is not available")
        flops = ModelConfig.preset(args.preset, vocab_size=MODEL_VOCAB,
                                   max_seq_len=MAX_SEQ_LEN).flops_per_token(MAX_SEQ_LEN, 0.15)
        consumed = TARGET_MFU * H100_PEAK / flops
        against = f"an H100 at {TARGET_MFU:.0%} MFU ({consumed / 1e6:.2f} M padded tokens/s)"
    else:
        mfu = "n/a (unknown peak)" if gpu["mfu"] is None else f"{gpu['mfu']:.1%}"
        print(f"  {gpu['gpu']}: {gpu['parameters'] / 1e6:.1f} M parameters, "
              f"{gpu['step_ms']:.1f} ms/step, {gpu['tokens_per_s'] / 1e6:.3f} M real tokens/s, "
              f"{gpu['padded_tokens_per_s'] / 1e6:.3f} M padded tokens/s, MFU {mfu}")
        consumed = gpu["padded_tokens_per_s"]
        against = f"the measured GPU ({consumed / 1e6:.3f} M padded tokens/s)"
    print(f"\ndata path / GPU demand, against {against}:")
    for name, (_, padded) in data.items():
        print(f"  {name:28s} {padded / consumed:6.2f}x")


if __name__ == "__main__":
    main()
