"""Checkpoint write and load time: what the sha256 beside every checkpoint costs.

    python bench/checkpoint_io.py [--preset small] [--vocab 32000] [--repeats 3]

Builds the model of ``--preset`` and an AdamW state of the same size (two moments per
parameter), then times, best of ``--repeats``, in one thread on local disk (page cache):
(a) ``torch.save`` of that payload to a path and ``torch.load(weights_only=True)`` of it, as the
    trainer did before checksums; (b) ``trainer.checkpoints.write_checkpoint`` (torch.save
    through a Python file, then the ``.sha256`` file and ``latest``) and ``load_checkpoint``
    (sha256 check, then the same torch.load).
"""

import argparse
import os
import shutil
import tempfile
import time

import torch

from winnow.trainer.checkpoints import load_checkpoint, write_checkpoint
from winnow.trainer.model import ModelConfig, PreTrainingModel


def best_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = PreTrainingModel(ModelConfig.preset(args.preset, vocab_size=args.vocab))
    moments = {number: {"exp_avg": p.detach().clone(), "exp_avg_sq": p.detach().clone()}
               for number, p in enumerate(model.parameters())}
    payload = {"format": 1, "model": model.state_dict(), "optimizer": {"state": moments}}
    run = tempfile.mkdtemp()
    try:
        os.makedirs(os.path.join(run, "checkpoints"))
        plain = os.path.join(run, "plain.pt")
        checked = os.path.join(run, "checkpoints", "step-000001.pt")
        save = best_seconds(lambda: torch.save(payload, plain), args.repeats)
        checked_save = best_seconds(lambda: write_checkpoint(run, 1, payload), args.repeats)
        load = best_seconds(lambda: torch.load(plain, weights_only=True), args.repeats)
        checked_load = best_seconds(lambda: load_checkpoint(checked), args.repeats)
        megabytes = os.path.getsize(checked) / 1e6
    finally:
        shutil.rmtree(run)
    print(f"{args.preset}, vocab {args.vocab}: checkpoint {megabytes:.0f} MB; save "
          f"{save:.2f} s -> {checked_save:.2f} s with sha256; load {load:.2f} s -> "
          f"{checked_load:.2f} s with sha256")


if __name__ == "__main__":
    main()
