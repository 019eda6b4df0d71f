"""Checkpoints of a run: ``RUN/checkpoints/step-%06d.pt``, their checksums and the ``latest``
pointer.

Every file is written atomically (a temporary ``NAME.tmp-PID`` renamed over the target; a failed
write removes its temporary, and ``remove_stray_temporaries`` removes those a killed process
left), and a checkpoint holds tensors, dicts, lists, str, int, float, bool and None only, so it
loads with ``torch.load(weights_only=True)``; RNG states are stored in that form too.

Beside each checkpoint, ``step-%06d.pt.sha256`` holds its sha256 in ``sha256sum`` format (so
``cd RUN/checkpoints && sha256sum -c *.sha256`` checks them by hand). It is written after the
checkpoint and before ``latest`` moves, and ``load_checkpoint`` refuses a file that does not
match it. A corrupted checkpoint named by ``latest`` is refused, never silently skipped: the
message names the newest older checkpoint that passes its checksum, and resuming from it is
the user's explicit choice (write its name into ``latest``).

``latest`` holds a plain file name inside ``RUN/checkpoints``; anything else (a path, ``..``, a
symbolic link leading out of the folder) is refused, so a run never reads outside its folder.
"""

from __future__ import annotations

import glob
import os
import pickle
import random
import re
import shutil
import sys
import typing
from typing import Any

import numpy as np
import torch

from winnow.schemas.shard_format import sha256_file

CHECKPOINT_FORMAT = 1
CHECKSUM_SUFFIX = ".sha256"
TEMPORARY_MARK = ".tmp-"  # atomic_write's temporaries: NAME.tmp-PID
_CHECKPOINT_NAME = re.compile(r"step-[0-9]{6,}\.pt")


class PretrainError(Exception):
    """A problem the user can fix (shards, run folder, checkpoint); the message says which."""


def checkpoint_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def latest_checkpoint(run_dir: str) -> str | None:
    """Path of the checkpoint named by ``RUN/checkpoints/latest``; None when there is none.
    PretrainError when the pointer names anything but an existing checkpoint file inside
    ``RUN/checkpoints``."""
    folder = checkpoint_dir(run_dir)
    pointer = os.path.join(folder, "latest")
    name = _pointed_name(pointer)
    if name is None:
        return None
    path = os.path.join(folder, name)
    inside = os.path.dirname(os.path.realpath(path)) == os.path.realpath(folder)
    if not _CHECKPOINT_NAME.fullmatch(name) or not inside:
        raise PretrainError(f"{pointer} names {name!r}, which is not a checkpoint file inside "
                            f"{folder} (expected a name like step-000123.pt); refused")
    if not os.path.isfile(path):
        raise PretrainError(f"{pointer} names {name}, which does not exist")
    return path


def load_checkpoint(path: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's payload after its checksum passes, loaded with ``weights_only=True`` (no
    code runs); on the CPU by default (load_state_dict copies the tensors to where the
    parameters are). PretrainError, one line, for anything else."""
    if not os.path.exists(path + CHECKSUM_SUFFIX):
        print(f"note: {path} has no {CHECKSUM_SUFFIX} file (written by an older winnow); "
              "loading it unchecked", file=sys.stderr)
    elif (problem := checksum_problem(path)) is not None:
        raise PretrainError(_corrupted_message(path, problem))
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests weights_only=False: never do that
        raise PretrainError(f"{path}: refused: it holds objects other than tensors and plain "
                            "data, so it is not a winnow checkpoint (loading it could run "
                            "code)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise PretrainError(f"{path}: cannot be loaded ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise PretrainError(f"{path}: not a winnow checkpoint of format {CHECKPOINT_FORMAT}")
    return payload


def checksum_problem(path: str) -> str | None:
    """Why ``path`` does not match the sha256 in its ``.sha256`` file; None when it does."""
    recorded_path = path + CHECKSUM_SUFFIX
    try:
        with open(recorded_path, encoding="utf-8", errors="replace") as handle:
            recorded = handle.read().split()
    except FileNotFoundError:
        return f"{os.path.basename(recorded_path)} is missing"
    if not recorded or sha256_file(path) != recorded[0]:
        return f"its sha256 differs from the one in {os.path.basename(recorded_path)}"
    return None


def _corrupted_message(path: str, problem: str) -> str:
    """The refusal of a corrupted checkpoint, naming the newest older one that still passes
    its checksum (resuming from it is the user's explicit choice, see the module docstring)."""
    folder, name = os.path.split(path)
    older = sorted((other for other in os.listdir(folder) if _CHECKPOINT_NAME.fullmatch(other)
                    and _step_of(other) < _step_of(name)), key=_step_of, reverse=True)
    valid = next((other for other in older
                  if checksum_problem(os.path.join(folder, other)) is None), None)
    pointer = os.path.join(folder, "latest")
    if valid is None:
        advice = "no older checkpoint passes its checksum"
    else:
        advice = (f"the newest valid checkpoint is {valid}: to continue from it, write "
                  f"{valid} into {pointer}")
    subject = f"{pointer} names {name}, which" if _pointed_name(pointer) == name else path
    return f"{subject} is corrupted ({problem}); refused; {advice}"


def latest_step(run_dir: str) -> int | None:
    """The step of the checkpoint ``RUN/checkpoints/latest`` names; None when there is none
    (-1 when it names no checkpoint file)."""
    name = _pointed_name(os.path.join(checkpoint_dir(run_dir), "latest"))
    return None if name is None else _step_of(name)


def _pointed_name(pointer: str) -> str | None:
    """The file name a ``latest`` pointer holds; None when there is no pointer."""
    if not os.path.exists(pointer):
        return None
    with open(pointer, encoding="utf-8", errors="replace") as handle:
        return handle.read().strip()


def _step_of(name: str) -> int:
    """The step of a checkpoint file name (``step-000123.pt`` -> 123)."""
    return int(name[len("step-"):-len(".pt")]) if _CHECKPOINT_NAME.fullmatch(name) else -1


def write_checkpoint(run_dir: str, step: int, payload: dict[str, Any]) -> str:
    """``RUN/checkpoints/step-%06d.pt`` holding ``payload``, its ``.sha256``, then the
    ``latest`` pointer to it; returns the checkpoint's path."""
    name = f"step-{step:06d}.pt"
    path = os.path.join(checkpoint_dir(run_dir), name)
    atomic_write(path, lambda temporary: _save(payload, temporary))
    write_text(path + CHECKSUM_SUFFIX, f"{sha256_file(path)}  {name}\n")
    write_text(os.path.join(checkpoint_dir(run_dir), "latest"), name + "\n")
    return path


def _save(payload: dict[str, Any], path: str) -> None:
    """torch.save through a Python file, so that a full disk raises the OSError (ENOSPC) it is:
    torch reports it as a RuntimeError ("unexpected pos") whose context is that OSError."""
    with open(path, "wb") as handle:
        try:
            torch.save(payload, handle)
        except RuntimeError as error:
            if isinstance(error.__context__, OSError):
                raise error.__context__ from None
            raise


def atomic_write(path: str, write: typing.Callable[[str], None]) -> None:
    """``write(temporary path)`` then rename over ``path``: readers never see a partial file,
    and a failed write (a full disk) leaves no temporary behind."""
    temporary = f"{path}{TEMPORARY_MARK}{os.getpid()}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_folder_atomically(target: str, write: typing.Callable[[str], None],
                            overwrite: bool) -> None:
    """``write(temporary folder)`` beside ``target``, then rename it into place: a failed or
    killed write leaves an existing ``target`` as it was. PretrainError, before anything is
    written, for a non-empty ``target`` without ``overwrite`` (see ``folder_refusal``)."""
    target = os.path.normpath(target)  # "DIR/" must not put the temporary inside DIR
    refusal = folder_refusal(target, overwrite)
    if refusal is not None:
        raise PretrainError(refusal)
    parent, name = os.path.split(os.path.abspath(target))
    remove_stray_temporaries(parent, name)
    temporary = f"{target}{TEMPORARY_MARK}{os.getpid()}"
    os.makedirs(temporary)
    try:
        write(temporary)
    except BaseException:
        shutil.rmtree(temporary)
        raise
    if os.path.isdir(target):  # POSIX cannot rename over a non-empty folder: swap in two steps
        previous = f"{temporary}-previous"
        os.rename(target, previous)
        os.rename(temporary, target)
        shutil.rmtree(previous)
    else:
        os.rename(temporary, target)


def folder_refusal(target: str, overwrite: bool) -> str | None:
    """Why ``target`` may not be (re)placed by an output folder; None when it may: it does not
    exist, is an empty folder, or is a folder and ``overwrite`` is set."""
    if os.path.lexists(target) and not os.path.isdir(target):
        return f"{target} exists and is not a folder"
    if os.path.isdir(target) and os.listdir(target) and not overwrite:
        return f"{target} is not empty; pass --overwrite to replace it"
    return None


def remove_stray_temporaries(folder: str, name: str = "") -> list[str]:
    """Remove the ``NAME.tmp-PID...`` files and folders that a killed process left in
    ``folder`` (those of ``name`` only, when given); returns their names. Called when a run or
    an export starts."""
    pattern = f"{glob.escape(name) if name else '*'}{TEMPORARY_MARK}*"
    stray = sorted(glob.glob(os.path.join(glob.escape(folder), pattern)))
    for path in stray:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return [os.path.basename(path) for path in stray]


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

