"""Pretraining throughput: the GPU's tokens/s and MFU, whether the data path keeps up, and what
unpadding gains on the CPU.

    python bench/train.py [--examples 20000] [--seq-len 128] [--batch-size 256] [--steps 20]
                          [--workers 0 2 4]
                          [--compile] [--preset base] [--shards DIR]
                          [--cpu-presets tiny mini] [--cpu-batch-size 32] [--cpu-steps 5]
                          [--cpu-rounds 3] [--cpu-vocab N] [--cpu-clock wall|process]
                          [--threads N]

(a) Data path alone, on the CPU: ``PretrainingData.batch`` (memmap reads, [CLS] A [SEP] B [SEP]
    layout, padding, dynamic masking, tensors) for global batches of ``--batch-size`` at
    sequence length 128 (``--seq-len``), in the calling thread (one core) and with whole-word
    masking; then the ``Batches`` iterator with DataLoader workers (``--workers``), end to end.
    The shard set is synthetic but shaped like real shards: 20,000 examples of 64..125 tokens
    (uniform; at ``--seq-len N``, N/2..N-3), A taking 1..n-1 of them, random non-special ids of
    a real SentencePiece model (vocabulary 1,000) trained here on invented words, written with
    ``encode_shard`` and a manifest that ``verify_shards`` passes.
(b) On a GPU: BERT-base (``--preset``, vocabulary 32,000, sequence length ``--seq-len``)
    training steps in bf16 autocast with fused AdamW through ``trainer.train.train_step``, on
    batches built by (a) beforehand, so that only the GPU is timed: tokens/s (real and padded)
    and MFU against the GPU's bf16 peak. Skipped with a message when CUDA is not available.

(c) On the CPU: training steps (``train_step``, fp32) of each ``--cpu-presets`` model on the
    same ``--cpu-batch-size`` batches, three ways side by side, interleaved round by round so
    that a busy machine slows each alike (each arm's median round is reported): padded (every
    position of max_seq_len), trimmed (the padded computation on each batch cut to its longest
    example) and unpadded (``TrainConfig.unpad``, the default): real and padded tokens/s of
    each, and the shards' padding fraction (the positions of max_seq_len that hold [PAD]).

An mlm shard folder (``pairs.objective: mlm``, packed full sentences) is trained as pretraining
trains it: masked LM alone, no pooler or pair head, [CLS] text [SEP]; comparing it with an SOP
folder of the same corpus gives what packing gains (see BENCHMARKS, "MLM-only packed").

``--shards DIR`` measures a real shard folder (e.g. ``winnow curate
../shared/corpora/python-doc.jsonl.gz --output runs/pydoc``, then ``--shards runs/pydoc``)
instead of the synthetic one; its vocabulary is the model's. ``--cpu-presets`` with no names
skips (c).

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


def write_shards(directory: str, examples: int, tokenizer: bytes, shards: int = 4,
                 seq_len: int = MAX_SEQ_LEN) -> None:
    """Synthetic examples (see the module docstring) in ``shards`` shards plus a manifest."""
    rng = np.random.default_rng(0)
    special = special_tokens_from_model(tokenizer)
    ordinary = np.setdiff1d(np.arange(TOKENIZER_VOCAB), list(special.values()))
    lengths = rng.integers(seq_len // 2, seq_len - 2, size=examples)
    splits = rng.integers(1, lengths)
    ids = rng.choice(ordinary, size=int(lengths.sum())).tolist()
    pairs, start = [], 0
    for length, split in zip(lengths.tolist(), splits.tolist(), strict=True):
        pairs.append((ids[start:start + split], ids[start + split:start + length],
                      int(rng.integers(0, 2))))
        start += length
    write_shard_set(directory, pairs, tokenizer, max_seq_len=seq_len,
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


def trimmed(batch: dict) -> dict:
    """The batch cut to its longest example (attention masks are a prefix of real tokens)."""
    length = int(batch["attention_mask"].sum(dim=1).max())
    return {key: value[:, :length] if value.dim() == 2 else value
            for key, value in batch.items()}


def cpu_trainer(preset: str, vocab_size: int, max_seq_len: int, batch_size: int, unpad: bool,
                objective: str = "sop"):
    """A Trainer of ``preset`` on the CPU in fp32 (initialized from seed 0); ``objective`` the
    shards' (mlm: no pair head)."""
    import torch

    from winnow.trainer.config import TrainConfig
    from winnow.trainer.model import ModelConfig
    from winnow.trainer.train import Trainer, build_model, build_optimizer

    device = torch.device("cpu")
    config = TrainConfig(model={"preset": preset}, batch_size=batch_size, lr=1e-4,
                         warmup_steps=10, max_steps=1000, num_workers=0, precision="fp32",
                         unpad=unpad)
    model_config = ModelConfig.preset(preset, vocab_size=vocab_size, max_seq_len=max_seq_len,
                                      objective=objective)
    model, raw_model = build_model(model_config, config, device)
    return Trainer(config=config, model_config=model_config, model=model, raw_model=raw_model,
                   optimizer=build_optimizer(raw_model, config, device), device=device)


CPU_ARMS = (("padded", False, False), ("trimmed", False, True), ("unpadded", True, False))
"""(name, TrainConfig.unpad, batches trimmed to their longest example) of part (c)."""


def bench_cpu(shards: str, preset: str, batch_size: int, steps: int, rounds: int,
              vocab_size: int | None = None, clock=time.perf_counter
              ) -> dict[str, tuple[float, float]]:
    """{arm: (real tokens/s, padded tokens/s)} of CPU training steps on the same batches, in
    the arm's median round; the model's vocabulary is the shards' unless ``vocab_size``, and
    seconds are read from ``clock``."""
    from winnow.trainer.data import PretrainingData, step_positions
    from winnow.trainer.train import train_step

    data = PretrainingData(shards, seed=0)
    batches = [data.batch(step_positions(step, batch_size)) for step in range(steps)]
    arms = {name: (cpu_trainer(preset, vocab_size or data.manifest.vocab_size, data.max_seq_len,
                               batch_size, unpad, data.manifest.objective), trim)
            for name, unpad, trim in CPU_ARMS}
    for trainer, trim in arms.values():  # warm up: allocator, SDPA kernels
        train_step(trainer, trimmed(batches[0]) if trim else batches[0])
    seconds = {name: [] for name in arms}  # per round
    for _ in range(rounds):
        for name, (trainer, trim) in arms.items():
            started = clock()
            for batch in batches:
                train_step(trainer, trimmed(batch) if trim else batch)
            seconds[name].append(clock() - started)
    real = sum(tokens_of(batch)[0] for batch in batches)
    padded = sum(tokens_of(batch)[1] for batch in batches)
    # the median round: a burst of the machine's other jobs moves one round, not the figure
    median = {name: float(np.median(times)) for name, times in seconds.items()}
    return {name: (real / median[name], padded / median[name]) for name in arms}


def padding_fraction(shards: str) -> float:
    """Share of the positions of max_seq_len that are [PAD] over the whole shard set (the
    manifest counts the A and B tokens; [CLS] and two [SEP] make 3 more per example, 2 for a
    packed mlm example)."""
    from winnow.schemas.shard_format import special_tokens_per_example
    from winnow.schemas.shard_reader import read_manifest

    manifest = read_manifest(shards)
    real = manifest.tokens + special_tokens_per_example(manifest.objective) * manifest.examples
    return 1.0 - real / (manifest.examples * manifest.max_seq_len)


def bench_gpu(shards: str, preset: str, batch_size: int, steps: int,
              compile_model: bool, unpad: bool = True) -> dict[str, float] | None:
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
                         warmup_steps=10, max_steps=1000, num_workers=0, unpad=unpad)
    data = PretrainingData(shards, seed=0)
    model_config = ModelConfig.preset(preset, vocab_size=max(MODEL_VOCAB,
                                                             data.manifest.vocab_size),
                                      max_seq_len=data.max_seq_len,
                                      objective=data.manifest.objective)
    model, raw_model = build_model(model_config, config, device)
    trainer = Trainer(config=config, model_config=model_config, model=model,
                      raw_model=raw_model, optimizer=build_optimizer(raw_model, config, device),
                      device=device)
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
    flops = model_config.flops_per_token(data.max_seq_len, config.masking.mlm_probability)
    computed = real if unpad else padded  # the tokens the model computes on
    return {"gpu": torch.cuda.get_device_name(device), "tokens_per_s": real / seconds,
            "padded_tokens_per_s": padded / seconds,
            "mfu": None if peak is None else computed / seconds * flops / peak,
            "step_ms": seconds / steps * 1e3, "parameters": model_config.num_parameters()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20_000, help="synthetic examples")
    parser.add_argument("--shards", help="a real shard folder instead of synthetic shards")
    parser.add_argument("--seq-len", type=int, default=MAX_SEQ_LEN,
                        help="sequence length of the synthetic shards")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--workers", type=int, nargs="*", default=[2],
                        help="DataLoader worker counts to measure (0 is skipped)")
    parser.add_argument("--preset", default="base", help="model preset for the GPU part")
    parser.add_argument("--compile", action="store_true", help="torch.compile the GPU model")
    parser.add_argument("--cpu-presets", nargs="*", default=["tiny", "mini"],
                        help="model presets of part (c); none skips it")
    parser.add_argument("--cpu-batch-size", type=int, default=32, help="batch of part (c)")
    parser.add_argument("--cpu-steps", type=int, default=5,
                        help="batches of part (c), each arm steps through all of them per round")
    parser.add_argument("--cpu-rounds", type=int, default=3, help="interleaved rounds of (c)")
    parser.add_argument("--cpu-vocab", type=int,
                        help="model vocabulary of (c) (default: the shards'; e.g. 32000)")
    parser.add_argument("--cpu-clock", choices=("wall", "process"), default="wall",
                        help="time (c) in wall or this process's CPU seconds (on a machine "
                             "shared with other jobs, wall time counts theirs too)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    if args.shards is not None:
        assert verify_shards(args.shards) == [], f"{args.shards} fails verification"
        measure(args.shards, args)
        return
    with tempfile.TemporaryDirectory() as directory:
        shards = os.path.join(directory, "shards")
        os.makedirs(shards)
        started = time.perf_counter()
        write_shards(shards, args.examples, train_tokenizer(directory), seq_len=args.seq_len)
        assert verify_shards(shards) == []
        print(f"synthetic shards: {args.examples} examples, vocabulary {TOKENIZER_VOCAB}, "
              f"built in {time.perf_counter() - started:.1f} s")
        measure(shards, args)


def measure(shards: str, args: argparse.Namespace) -> None:
    """Parts (a), (b) and (c) on ``shards``, printed."""
    from winnow.schemas.shard_reader import read_manifest
    from winnow.trainer.model import ModelConfig

    seq_len = read_manifest(shards).max_seq_len
    print(f"shards {shards}: sequence {seq_len}, padding fraction "
          f"{padding_fraction(shards):.1%}")
    print(f"\n(a) data path, batch {args.batch_size} x {seq_len}, CPU "
          f"({os.cpu_count()} cores visible)")
    data = bench_data(shards, args.batch_size, args.steps, args.workers)
    for name, (real, padded) in data.items():
        print(f"  {name:28s} {real / 1e6:7.2f} M real tokens/s  {padded / 1e6:7.2f} M "
              f"padded tokens/s  {padded / (args.batch_size * seq_len):8.1f} batches/s")

    print(f"\n(b) GPU: {args.preset}, vocabulary {MODEL_VOCAB}, sequence {seq_len}, "
          f"bf16, fused AdamW{', compiled' if args.compile else ''}")
    gpu = None
    for unpad in (False, True):
        gpu = bench_gpu(shards, args.preset, args.batch_size, args.steps, args.compile, unpad)
        if gpu is None:
            break
        mfu = "n/a (unknown peak)" if gpu["mfu"] is None else f"{gpu['mfu']:.1%}"
        print(f"  {'unpadded' if unpad else 'padded':9s} {gpu['gpu']}: "
              f"{gpu['parameters'] / 1e6:.1f} M parameters, {gpu['step_ms']:.1f} ms/step, "
              f"{gpu['tokens_per_s'] / 1e6:.3f} M real tokens/s, "
              f"{gpu['padded_tokens_per_s'] / 1e6:.3f} M padded tokens/s, MFU {mfu}")
    if gpu is None:
        print("  skipped: CUDA is not available")
        flops = ModelConfig.preset(args.preset, vocab_size=MODEL_VOCAB,
                                   max_seq_len=seq_len).flops_per_token(seq_len, 0.15)
        consumed = TARGET_MFU * H100_PEAK / flops
        against = f"an H100 at {TARGET_MFU:.0%} MFU ({consumed / 1e6:.2f} M padded tokens/s)"
    else:  # the unpadded run's: the data path still builds padded batches
        consumed = gpu["padded_tokens_per_s"]
        against = f"the measured GPU ({consumed / 1e6:.3f} M padded tokens/s)"
    print(f"\ndata path / GPU demand, against {against}:")
    for name, (_, padded) in data.items():
        print(f"  {name:28s} {padded / consumed:6.2f}x")

    for preset in args.cpu_presets:
        print(f"\n(c) CPU training, {preset}, batch {args.cpu_batch_size} x {seq_len}, fp32, "
              f"{args.cpu_rounds} rounds of {args.cpu_steps} steps per arm, "
              f"{__import__('torch').get_num_threads()} threads, vocabulary "
              f"{args.cpu_vocab or 'of the shards'}, {args.cpu_clock} seconds")
        clock = time.process_time if args.cpu_clock == "process" else time.perf_counter
        results = bench_cpu(shards, preset, args.cpu_batch_size, args.cpu_steps,
                            args.cpu_rounds, args.cpu_vocab, clock)
        baseline = results["padded"][0]
        for name, (real, padded) in results.items():
            print(f"  {name:9s} {real / 1e3:8.1f} k real tokens/s  {padded / 1e3:8.1f} k padded "
                  f"tokens/s  {real / baseline:5.2f}x")


if __name__ == "__main__":
    main()
