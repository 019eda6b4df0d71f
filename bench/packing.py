"""SOP pairs against MLM-only packed full sentences, on shard folders of the same corpus: what
each keeps of the text, how much of max_seq_len is padding, and the data path's speed on each,
measured interleaved (batch after batch, one folder then the other) so that the other jobs of a
shared machine slow both alike.

    winnow curate ../shared/corpora/python-doc.jsonl.gz --output runs/pydoc-sop \\
        --config sop.yaml            # pairs: {objective: sop}
    winnow curate ../shared/corpora/python-doc.jsonl.gz --output runs/pydoc-mlm \\
        --config mlm.yaml            # pairs: {objective: mlm}
    python bench/packing.py runs/pydoc-sop/shards runs/pydoc-mlm/shards [--batch-size 256]
                            [--steps 12]

Per folder: examples, stored tokens, padding fraction (the positions of max_seq_len that hold
[PAD]: 3 special tokens per pair, 2 per packed example), and ``PretrainingData.batch`` real
tokens/s with and without whole-word masking (the first two batches are warm-up).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from winnow.schemas.shard_reader import read_manifest
from winnow.trainer.data import MaskingConfig, PretrainingData, step_positions

WARMUP = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards", nargs="+", help="shard folders to compare")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    from train import padding_fraction  # bench/train.py, beside this script: one definition

    for folder in args.shards:
        manifest = read_manifest(folder)
        print(f"{folder}: {manifest.objective}, {manifest.examples:,} examples, "
              f"{manifest.tokens:,} tokens, padding fraction {padding_fraction(folder):.1%}")
    for whole_word in (False, True):
        data = [PretrainingData(folder, seed=0, masking=MaskingConfig(whole_word=whole_word))
                for folder in args.shards]
        seconds = [[] for _ in data]
        tokens = [0 for _ in data]
        for step in range(args.steps):
            for number, split in enumerate(data):
                started = time.perf_counter()
                batch = split.batch(step_positions(step, args.batch_size))
                if step >= WARMUP:
                    seconds[number].append(time.perf_counter() - started)
                    tokens[number] += int(batch["attention_mask"].sum())
        for folder, spent, real in zip(args.shards, seconds, tokens, strict=True):
            print(f"  {'whole-word' if whole_word else 'token':10s} {folder}: "
                  f"{real / sum(spent) / 1e6:.2f} M real tokens/s, median "
                  f"{np.median(spent) * 1e3:.1f} ms per batch of {args.batch_size}")


if __name__ == "__main__":
    main()
