"""Shards read from Cloud Storage through the shard cache, against the same shards read in place:
the time to the first batch and to the first training step, and the tokens/s the data path
feeds once running.

    python bench/shard_stream.py [--examples 400000] [--shards 8] [--batch-size 256]
                                 [--steps 40] [--rounds 3] [--shards-dir DIR] [--skip-cli]
                                 [--windows 2,8] [--window-steps 200] [--only-windows]
                                 [--eval-fetch]

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

With ``--windows 2,8`` (window sizes in shards), the training order ``shuffle: shards``
(``trainer.data.ShardWindowOrder``) against ``global``, each from gs:// on a fresh cache for
``--window-steps`` batches: the cache limited to what the run holds at once
(``trainer.train.cache_bytes_needed``; none for global, whose prefetch fetches the whole set),
the peak bytes its files take on the disk (allocated blocks, the partial files of fetches in
flight included, sampled every 20 ms by a thread), the time to the first batch and the
tokens/s fed. Then the shuffle quality of each order, from the order alone (no reading): the
fraction of consecutive examples of a batch that come from the same shard (with one
permutation of the set, about 1 / shards; a curated shard holds documents in runs, so this
bounds the fraction from the same document) and the distinct shards of a batch.
``--only-windows`` skips the other arms.

With ``--eval-fetch``, the bytes the first evaluation of ``shuffle: shards`` fetches from gs://
on a fresh cache (``eval_examples`` 1000, ``eval_batches`` 10 batches of ``--batch-size``, as
``trainer.train.validate`` reads them): the held-out examples of the global split, which the
windowed order evaluated on before (drawn from the whole set), against those of its reserved
shards (``trainer.data.reserved_eval_split``).

Then, unless ``--skip-cli``, the wall time of ``winnow pretrain --preset tiny --max-steps 1``
(process start, imports, setup, one step, a checkpoint) from the local folder and from gs://
with a cold cache.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
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
    from winnow.trainer.data import PretrainingData
    from winnow.trainer.train import open_training_shards

    return timed_batches(lambda: PretrainingData(open_training_shards(location, cache)[1],
                                                 seed=0), batch_size, steps)


def timed_batches(open_data, batch_size: int, steps: int) -> dict[str, float]:
    """Seconds from ``open_data()`` (a PretrainingData) to its first batch, its prefetch
    started, and the real tokens/s of the next ``steps`` batches."""
    from winnow.trainer.data import step_positions

    started = time.perf_counter()
    data = open_data()
    data.prefetch(0)
    data.batch(step_positions(0, batch_size))
    first = time.perf_counter() - started
    real = 0
    started = time.perf_counter()
    for step in range(1, steps + 1):
        real += int(data.batch(step_positions(step, batch_size))["attention_mask"].sum())
    fed = real / (time.perf_counter() - started)
    data.reader.close()
    return {"first_batch_s": first, "tokens_per_s": fed}


def cache_bytes_on_disk(root: str) -> int:
    """Bytes the files under a cache root take on its disk (allocated blocks: a reservation is
    a sparse file, the bytes of a fetch in flight are its partial file's)."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # evicted while being summed
                total += os.stat(os.path.join(folder, name)).st_blocks * 512
    return total


class PeakBytes:
    """A thread sampling ``cache_bytes_on_disk(root)`` every 20 ms; ``peak`` the largest."""

    def __init__(self, root: str):
        self.root, self.peak, self._stop = root, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(FileNotFoundError):  # a folder removed meanwhile
                self.peak = max(self.peak, cache_bytes_on_disk(self.root))

    def __enter__(self) -> PeakBytes:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def feed_order(url: str, root: str, shuffle: str, window: int, batch_size: int,
               steps: int) -> dict[str, float]:
    """``feed`` of one training order from a fresh cache at ``root``, limited to what the run
    holds at once (none under global), with the peak bytes on its disk."""
    from winnow.schemas.shard_cache import CacheOptions, open_shards
    from winnow.trainer.config import TrainConfig
    from winnow.trainer.data import PretrainingData
    from winnow.trainer.train import cache_bytes_needed

    config = TrainConfig(shuffle=shuffle, shuffle_window_shards=window, eval_every=0)
    limit = None
    if shuffle == "shards":
        limit = cache_bytes_needed(open_shards(url, CacheOptions(root=root + "-probe")),
                                   config)[0]
    with PeakBytes(root) as peak:
        fed = timed_batches(lambda: PretrainingData(
            open_shards(url, CacheOptions(root=root, limit_bytes=limit)), seed=0,
            eval_examples=config.eval_examples, shuffle=shuffle, window_shards=window),
            batch_size, steps)
    return {**fed, "limit": limit or 0, "peak_bytes": peak.peak}


def shuffle_quality(shards: str, shuffle: str, window: int, batch_size: int,
                    batches: int) -> tuple[float, float]:
    """(fraction of consecutive examples of a batch from the same shard, mean distinct shards
    of a batch) over the first ``batches`` batches of the order."""
    from winnow.schemas.shard_reader import ShardReader
    from winnow.trainer.data import PretrainingData, step_positions

    data = PretrainingData(ShardReader(shards), seed=0, eval_examples=1000, shuffle=shuffle,
                           window_shards=window)
    ends = np.cumsum([shard.examples for shard in data.manifest.shards])
    same, distinct = [], []
    for step in range(batches):
        shard = np.searchsorted(ends, data.example_indices(step_positions(step, batch_size)),
                                side="right")
        same.append(np.mean(shard[1:] == shard[:-1]))
        distinct.append(len(np.unique(shard)))
    return float(np.mean(same)), float(np.mean(distinct))


def windowed_arms(shards: str, url: str, scratch: str, args) -> None:
    """The windowed order against the global one (see the module docstring)."""
    orders = [("global", 1)] + [("shards", int(n)) for n in args.windows.split(",")]
    training = sum(os.path.getsize(os.path.join(shards, name)) for name in os.listdir(shards)
                   if name.endswith((".tokens.bin", ".index.npy")))
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for number in range(args.rounds):
        for shuffle, window in orders:
            root = os.path.join(scratch, f"window-cache-{shuffle}-{window}-{number}")
            results.setdefault((shuffle, window), []).append(
                feed_order(url, root, shuffle, window, args.batch_size, args.window_steps))
    print(f"\ngs:// cold cache, {args.window_steps} batches of {args.batch_size}; training "
          f"files {training / 1e6:.1f} MB\n| order | cache limit MB | peak cache MB on disk | "
          "first batch s | tokens/s fed | same shard, consecutive | shards per batch |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for (shuffle, window), rounds in results.items():
        same, distinct = shuffle_quality(shards, shuffle, window, args.batch_size, 50)
        name = "global" if shuffle == "global" else f"shards, window {window}"
        limit = f"{rounds[0]['limit'] / 1e6:.1f}" if rounds[0]["limit"] else "none"
        print(f"| {name} | {limit} | {max(r['peak_bytes'] for r in rounds) / 1e6:.1f} | "
              f"{np.median([r['first_batch_s'] for r in rounds]):.2f} | "
              f"{np.median([r['tokens_per_s'] for r in rounds]):,.0f} | {same:.3f} | "
              f"{distinct:.1f} |", flush=True)


def first_evaluation_fetch(url: str, root: str, shuffle: str, batch_size: int) -> dict:
    """Shard files and bytes fetched from a fresh cache at ``root``, and seconds, by the first
    evaluation of the held-out split of ``shuffle`` (the default config's eval_examples and
    eval_batches)."""
    from winnow.schemas.shard_cache import CacheOptions, download_for, open_shards
    from winnow.trainer.config import TrainConfig
    from winnow.trainer.data import PretrainingData, step_positions

    config = TrainConfig(shuffle="shards")
    fetched: list[tuple[str, int]] = []
    download = download_for(url)

    def counted(remote_path: str, local_path: str) -> None:
        download(remote_path, local_path)
        fetched.append((os.path.basename(remote_path), os.path.getsize(local_path)))

    started = time.perf_counter()
    held_out = PretrainingData(open_shards(url, CacheOptions(root=root), counted), seed=0,
                               split="eval", eval_examples=config.eval_examples,
                               shuffle=shuffle)
    for number in range(config.eval_batches):
        held_out.batch(step_positions(number, batch_size))
    shard_files = [(name, size) for name, size in fetched if name.startswith("shard-")]
    return {"files": len(shard_files), "bytes": sum(size for _, size in shard_files),
            "seconds": time.perf_counter() - started}


def eval_fetch_arms(url: str, scratch: str, training_bytes: int, args) -> None:
    """The first evaluation's fetch, global split against reserved shards."""
    print(f"\nfirst evaluation from gs://, fresh cache; training files "
          f"{training_bytes / 1e6:.1f} MB\n| held-out examples from | shard files fetched | "
          "MB fetched | seconds |\n|---|---:|---:|---:|")
    for name, shuffle in (("the whole set (global split, before)", "global"),
                          ("reserved shards (shuffle: shards)", "shards")):
        result = first_evaluation_fetch(url, os.path.join(scratch, f"eval-cache-{shuffle}"),
                                        shuffle, args.batch_size)
        print(f"| {name} | {result['files']} | {result['bytes'] / 1e6:.1f} | "
              f"{result['seconds']:.2f} |", flush=True)


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
    parser.add_argument("--windows", help="window sizes (shards) of shuffle: shards, e.g. 2,8")
    parser.add_argument("--window-steps", type=int, default=200,
                        help="batches per arm of the windowed order")
    parser.add_argument("--only-windows", action="store_true",
                        help="only the windowed order against the global one")
    parser.add_argument("--eval-fetch", action="store_true",
                        help="bytes the first evaluation of shuffle: shards fetches")
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
            if args.windows:
                windowed_arms(shards, url, scratch, args)
            if args.eval_fetch:
                eval_fetch_arms(url, scratch, training_mb, args)
            if args.only_windows:
                return
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
