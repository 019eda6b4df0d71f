"""Shards read from Cloud Storage through the shard cache, against the same shards read in place:
the time to the first batch and to the first training step, and the tokens/s the data path
feeds once running.

    python bench/shard_stream.py [--examples 400000] [--shards 8] [--batch-size 256]
                                 [--steps 40] [--rounds 3] [--shards-dir DIR] [--skip-cli]

The "remote" is the Cloud Storage emulator of the tests (``tests/gcs_emulator.py``:
gcp-storage-emulator, in memory, on a loopback port; ``pip install -e '.[test,gcp]'``), so
fetch speeds are the emulator's (one Python process serving HTTP), not a bucket's: a VM in the
bucket's region reads several hundred MB/s per stream. The shard set is bench/train.py's
synthetic one (examples of 64..125 tokens at sequence length 128, a real SentencePiece model),
or ``--shards-dir`` (a curated folder).

Arms, interleaved round by round (``--rounds``, the median reported, so that a busy machine
slows each alike), each on a fresh cache folder unless "warm":

* local in place: ``open_training_shards`` of the folder (``verify_shards`` of every file, as
  ``winnow pretrain`` does), ``PretrainingData``, the first batch, then ``--steps`` batches.
* local through the cache (``--shard-cache``): the files copied into the cache, sha256-checked.
* gs:// cold: the manifest fetched, the files fetched by the prefetch threads and by the reader
  (in the order the run reads them), sha256-checked, then read from the cache.
* gs:// warm: the same with every file already in the cache (a second run, or a second rank).

Then, unless ``--skip-cli``, the wall time of ``winnow pretrain --preset tiny --max-steps 1``
(process start, imports, setup, one step, a checkpoint) from the local folder and from gs://
with a cold cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def bench_train_module():
    """bench/train.py, for its synthetic shard set (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_train",
                                                  os.path.join(REPO, "bench", "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def feed(location: str, cache, batch_size: int, steps: int) -> dict[str, float]:
    """Seconds to the first batch (from opening the shards) and real tokens/s of the next
    ``steps`` batches, as ``winnow pretrain`` builds them (one thread)."""
    from winnow.trainer.data import PretrainingData, step_positions
    from winnow.trainer.train import open_training_shards, prefetch_shards

    started = time.perf_counter()
    _, reader = open_training_shards(location, cache)
    data = PretrainingData(reader, seed=0)
    prefetch_shards(data, 0)
    data.batch(step_positions(0, batch_size))
    first = time.perf_counter() - started
    real = 0
    started = time.perf_counter()
    for step in range(1, steps + 1):
        real += int(data.batch(step_positions(step, batch_size))["attention_mask"].sum())
    return {"first_batch_s": first, "tokens_per_s": real / (time.perf_counter() - started)}


def cli_seconds(shards: str, run: str, cache: str | None) -> float:
    command = [sys.executable, "-m", "winnow", "pretrain", "--shards", shards, "--output", run,
               "--preset", "tiny", "--max-steps", "1"]
    if cache:
        command += ["--shard-cache", cache]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, capture_output=True,
                   env={**os.environ, "TQDM_DISABLE": "1"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=400_000, help="synthetic examples")
    parser.add_argument("--shards", type=int, default=8, help="synthetic shards")
    parser.add_argument("--shards-dir", help="a real shard folder instead of synthetic shards")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=40, help="timed batches per arm")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the arms (median)")
    parser.add_argument("--skip-cli", action="store_true", help="skip the pretrain runs")
    args = parser.parse_args()

    import torch

    from tests.gcs_emulator import start_emulator, stop_emulator
    from winnow.schemas.shard_cache import CacheOptions
    from winnow.schemas.shard_reader import shards_folder

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        shards = args.shards_dir and shards_folder(args.shards_dir)
        if not shards:
            bench = bench_train_module()
            shards = os.path.join(scratch, "shards")
            bench.write_shards(shards, args.examples, bench.train_tokenizer(scratch),
                               args.shards)
        training_mb = sum(os.path.getsize(os.path.join(shards, name)) for name in
                          os.listdir(shards) if name.endswith((".tokens.bin", ".index.npy")))
        print(f"shards: {shards}, {training_mb / 1e6:.1f} MB of tokens.bin + index.npy")
        emulator, tokens = start_emulator(__import__("pathlib").Path(scratch))
        os.environ.update(emulator.env)
        try:
            started = time.perf_counter()
            url = emulator.upload(shards, "bench/shards")
            print(f"upload to the emulator: {time.perf_counter() - started:.1f} s")
            results: dict[str, list[dict[str, float]]] = {}
            for number in range(args.rounds):
                warm = os.path.join(scratch, f"gs-cache-{number}")
                arms = [("local, in place", shards, None),
                        ("local, through the cache", shards,
                         CacheOptions(root=os.path.join(scratch, f"local-cache-{number}"))),
                        ("gs://, cold cache", url, CacheOptions(root=warm)),
                        ("gs://, warm cache", url, CacheOptions(root=warm))]
                for name, location, cache in arms:
                    results.setdefault(name, []).append(
                        feed(location, cache, args.batch_size, args.steps))
            print("| arm | first batch s | tokens/s fed |\n|---|---:|---:|")
            for name, rounds in results.items():
                first = np.median([result["first_batch_s"] for result in rounds])
                fed = np.median([result["tokens_per_s"] for result in rounds])
                print(f"| {name} | {first:.2f} | {fed:,.0f} |", flush=True)
            if not args.skip_cli:
                local = cli_seconds(shards, os.path.join(scratch, "run-local"), None)
                remote = cli_seconds(url, os.path.join(scratch, "run-gs"),
                                     os.path.join(scratch, "cli-cache"))
                print(f"winnow pretrain --preset tiny --max-steps 1, wall: local {local:.1f} s,"
                      f" gs:// cold cache {remote:.1f} s")
        finally:
            stop_emulator(emulator, tokens)


if __name__ == "__main__":
    main()
