"""Model files that fastText must read from a local path, named locally or by URL (gs://...).

filters/ stays free of Beam: a remote model is read with the opener the caller passes (the
pipeline passes Beam's ``FileSystems.open``), copied to a temporary file for the loader, and the
copy deleted once it is loaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def is_remote(path: str) -> bool:
    """``gs://``, ``s3://``, ``http://`` ...; ``file://`` and plain paths are local."""
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


@contextlib.contextmanager
def local_model_file(path: str, kind: str,
                     open_binary: Callable[[str], IO[bytes]] | None) -> Iterator[str]:
    """A local path holding the model ``path`` for the block: ``path`` itself, or a temporary
    copy of a remote one read with ``open_binary``. ``kind`` ("quality model") names it in the
    ValueError raised when it cannot be read."""
    if not is_remote(path):
        yield local_path(path)
        return
    if open_binary is None:
        raise ValueError(f"{kind} {path!r} is not a local file; pass open_binary to read it")
    handle, temporary = tempfile.mkstemp(prefix="winnow-model-", suffix=Path(path).suffix)
    try:
        with os.fdopen(handle, "wb") as target:
            try:
                with open_binary(path) as source:
                    shutil.copyfileobj(source, target, 16 * 1024 * 1024)
            except OSError as error:
                raise ValueError(f"{kind} {path!r} could not be read: {error}") from error
        yield temporary
    finally:
        os.unlink(temporary)
