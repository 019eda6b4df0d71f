"""Beam's FileSystems (local, gs://, s3://, hdfs://) as the few plain calls winnow needs.

Beam's ``FileSystems.open`` guesses a decompression from the file name unless told otherwise;
every winnow reader decides that itself (``pipeline.readers``), so files open as raw bytes.
"""

from __future__ import annotations

import glob
import os

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def open_binary(path: str):
    """The file's bytes as they are stored (no decompression), as a binary file object."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def exists(path: str) -> bool:
    """``path`` exists; False also when its filesystem cannot answer (e.g. unknown scheme)."""
    try:
        return FileSystems.exists(path)
    except Exception:  # noqa: BLE001 - a filesystem that cannot answer holds nothing for us
        return False


def stored_sizes(paths: list[str]) -> dict[str, int]:
    """path -> bytes as stored, for the files of any filesystem (local, gs://, ...) that can
    say; a file gone or a filesystem that cannot answer is left out. One listing request per
    path on object stores (``FileSystems.match`` answers a list at once)."""
    sizes = {}
    try:
        results = FileSystems.match(list(paths))
    except Exception:  # noqa: BLE001 - BeamIOError when any path is missing: ask one by one
        results = []
        for path in paths:
            try:
                results.extend(FileSystems.match([path]))
            except Exception:  # noqa: BLE001 - gone, or no such filesystem here
                continue
    for result in results:
        for metadata in result.metadata_list:
            sizes[metadata.path] = metadata.size_in_bytes
    return sizes


def stored_size(path: str) -> int:
    """The size of a file as stored, local or on gs:// (any Beam filesystem); 0 for one gone
    or a filesystem that cannot answer."""
    if "://" not in path:
        try:
            return os.path.getsize(path)
        except OSError:
            return 0
    return stored_sizes([path]).get(path, 0)


def matching_paths(pattern: str) -> list[str]:
    """Paths matching a glob, sorted; empty when nothing matches or the folder is absent."""
    try:
        results = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - Beam raises BeamIOError for "no such folder" on some FS
        return []
    return sorted(m.path for m in results)


def dangling_links(pattern: str) -> list[str]:
    """Symbolic links to nothing that a local folder or glob names, sorted; hidden names left
    out, as ``FileSystems.match`` leaves them. Beam's local listing skips them silently (it
    cannot stat them), so a file of the corpus would vanish without a reason."""
    if "://" in pattern:
        return []
    if os.path.isdir(pattern):
        candidates = [os.path.join(folder, name) for folder, _, names in os.walk(pattern)
                      for name in names]
    else:
        candidates = glob.glob(pattern, recursive=True)
    return sorted(path for path in candidates
                  if os.path.islink(path) and not os.path.exists(path)
                  and not os.path.basename(path).startswith("."))
