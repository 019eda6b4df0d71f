"""Checkpoints of a run: ``RUN/checkpoints/step-%06d.pt`` and the ``latest`` pointer.

Every file is written atomically (a temporary file renamed over the target), and a checkpoint
holds tensors, dicts, lists, str, int, float, bool and None only, so it loads with
``torch.load(weights_only=True)``; RNG states are stored in that form too.
"""

from __future__ import annotations

import os
import random
import typing
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = 1


class PretrainError(Exception):
    """A problem the user can fix (shards, run folder, checkpoint); the message says which."""


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def latest_checkpoint(run_dir: str) -> str | None:
    """Path of the checkpoint named by ``RUN/checkpoints/latest``; None when there is none."""
    pointer = os.path.join(checkpoint_dir(run_dir), "latest")
    if not os.path.exists(pointer):
        return None
    with open(pointer, encoding="utf-8") as handle:
        name = handle.read().strip()
    path = os.path.join(checkpoint_dir(run_dir), name)
    if not os.path.exists(path):
        raise PretrainError(f"{pointer} names {name}, which does not exist")
    return path


def load_checkpoint(path: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's payload, loaded with ``weights_only=True`` (no code runs); on the CPU
    by default (load_state_dict copies the tensors to where the parameters are)."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise PretrainError(f"{path}: cannot be loaded ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise PretrainError(f"{path}: not a winnow checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def write_checkpoint(run_dir: str, step: int, payload: dict[str, Any]) -> str:
    """``RUN/checkpoints/step-%06d.pt`` holding ``payload``, then the ``latest`` pointer to it;
    returns the checkpoint's path."""
    name = f"step-{step:06d}.pt"
    path = os.path.join(checkpoint_dir(run_dir), name)
    atomic_write(path, lambda temporary: torch.save(payload, temporary))
    write_text(os.path.join(checkpoint_dir(run_dir), "latest"), name + "\n")
    return path


def atomic_write(path: str, write: typing.Callable[[str], None]) -> None:
    """``write(temporary path)`` then rename over ``path``: readers never see a partial file."""
    temporary = f"{path}.tmp-{os.getpid()}"
    write(temporary)
    os.replace(temporary, path)


def write_text(path: str, text: str) -> None:
    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_write(path, write)


def rng_states() -> dict[str, Any]:
    """python, numpy, torch and CUDA RNG states as tensors and plain numbers (weights_only)."""
    version, python_state, gauss = random.getstate()
    _, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = states["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in states["cuda"]])

