"""AdamW state held by each rank, unsharded and with ZeRO-1 (TrainConfig.optimizer_sharding).

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 bench/zero_memory.py \
        [--preset base] [--vocab-size 32000] [--seq-len 128]

Each rank builds the model of ``--preset`` and the trainer's optimizer (``build_optimizer``) in
each setting, takes one step on zero gradients (AdamW allocates its state lazily, at the first
step), and counts the bytes of the state tensors it holds (exp_avg, exp_avg_sq, step). Then,
for ZeRO-1, the same after loading the whole state the way a resumed run does
(``load_optimizer_state``). gloo on the CPU: the figures are bytes of tensors, the same on GPUs.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist

from winnow.trainer.config import TrainConfig
from winnow.trainer.model import ModelConfig, PreTrainingModel
from winnow.trainer.train import build_optimizer, load_optimizer_state, optimizer_state


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the tensors in the optimizer's state on this rank (a ZeroRedundancyOptimizer's
    own ``state`` and its inner AdamW's both)."""
    states = [optimizer.state] + ([optimizer.optim.state] if hasattr(optimizer, "optim") else [])
    return sum(value.nbytes for state in states for per_parameter in state.values()
               for value in per_parameter.values() if isinstance(value, torch.Tensor))


def first_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--vocab-size", type=int, default=32_000)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    model = PreTrainingModel(ModelConfig.preset(args.preset, vocab_size=args.vocab_size,
                                                max_seq_len=args.seq_len))
    cpu = torch.device("cpu")
    rows = {}
    for sharding in ("none", "zero1"):
        optimizer = build_optimizer(model, TrainConfig(optimizer_sharding=sharding, lr=1e-4),
                                    cpu, world_size)
        first_step(model, optimizer)
        rows[sharding] = state_bytes(optimizer)
        whole = optimizer_state(optimizer, rank)  # gathered on rank 0, as a checkpoint is
        del optimizer
    # a resumed ZeRO-1 run: every rank loads the whole state and keeps its part
    whole = [whole]
    dist.broadcast_object_list(whole, src=0)
    optimizer = build_optimizer(model, TrainConfig(optimizer_sharding="zero1", lr=1e-4), cpu,
                                world_size)
    load_optimizer_state(optimizer, whole[0])
    del whole
    rows["zero1 after resume"] = state_bytes(optimizer)
    everyone = [None] * world_size
    dist.all_gather_object(everyone, rows)
    if rank == 0:
        parameters = sum(p.numel() for p in model.parameters())
        print(f"{args.preset}: {parameters / 1e6:.1f} M parameters, {world_size} ranks; "
              "AdamW state bytes held per rank:")
        for name in rows:
            held = [ranks[name] for ranks in everyone]
            print(f"  {name:20s} " + "  ".join(f"rank {r}: {b / 2**20:8.1f} MiB"
                                               for r, b in enumerate(held))
                  + f"  (max / unsharded {max(held) / everyone[0]['none']:.3f})")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
