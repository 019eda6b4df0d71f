"""Files on a local disk or in Cloud Storage (``gs://bucket/key``), through the few plain calls
the shard readers and ``shards verify`` need.

Not Beam: ``schemas/`` is read by the trainer, which never imports apache_beam (pipeline-side
code uses ``pipeline.filesystem``, Beam's FileSystems, which also knows s3:// and hdfs://).
gs:// goes through google-cloud-storage (the ``gcs`` extra; ``gcp`` has it too), imported on
first use; it honours ``STORAGE_EMULATOR_HOST`` (then it connects anonymously, without a
credentials lookup).

A missing object raises ``FileNotFoundError`` like a missing local file, so callers keep one
``except OSError``; without google-cloud-storage, a gs:// path raises ``ImportError`` whose
message is the one line naming the extra to install. A "folder" on gs:// is a key prefix ending
in ``/``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
from typing import IO, Any

GCS_SCHEME = "gs://"
GCP_EXTRA_HINT = ("reading gs:// needs google-cloud-storage: pip install 'winnow[gcs]' "
                  "(or [gcp], which has it too)")


def is_remote(path: str | os.PathLike) -> bool:
    """``path`` names an object store (``scheme://...``), not the local disk."""
    return "://" in os.fspath(path) and not os.fspath(path).startswith("file://")


def join(folder: str | os.PathLike, *names: str) -> str:
    """``folder/name/...``; gs:// paths always join with ``/``."""
    folder = os.fspath(folder)
    if is_remote(folder):
        return "/".join([folder.rstrip("/"), *names])
    return os.path.join(folder, *names)


def open_read(path: str | os.PathLike) -> IO[bytes]:
    """The file's bytes as stored, as a seekable binary file object (read in chunks on gs://)."""
    path = os.fspath(path)
    if not is_remote(path):
        return open(path, "rb")
    blob = _existing_blob(path)
    return blob.open("rb", chunk_size=_READ_CHUNK_BYTES)


def read_bytes(path: str | os.PathLike) -> bytes:
    with open_read(path) as handle:
        return handle.read()


def is_file(path: str | os.PathLike) -> bool:
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.isfile(path)
    return _blob(path).exists()


def size(path: str | os.PathLike) -> int:
    """Bytes in the file; ``FileNotFoundError`` when it does not exist."""
    path = os.fspath(path)
    if not is_remote(path):
        return os.path.getsize(path)
    return int(_existing_blob(path).size)


def listdir(folder: str | os.PathLike) -> list[str]:
    """Names directly in ``folder`` (files and sub-folders), like ``os.listdir``, sorted."""
    folder = os.fspath(folder)
    if not is_remote(folder):
        return sorted(os.listdir(folder))
    bucket, prefix = _split(folder.rstrip("/") + "/")
    listing = _client().list_blobs(bucket, prefix=prefix, delimiter="/")
    names = [blob.name[len(prefix):] for blob in listing]  # consumes the pages: fills prefixes
    names += [sub[len(prefix):].rstrip("/") for sub in listing.prefixes]
    if not names:
        raise FileNotFoundError(errno.ENOENT, "No such folder", folder)
    return sorted(name for name in names if name)


def matching_files(pattern: str) -> list[str]:
    """The gs:// files a pattern names: the object itself, every object below a folder, or the
    objects a glob matches (``*``, ``?``, ``[...]`` within one path segment, as for local
    globs); sorted. Empty when nothing matches. Local patterns: ``glob``/``os.walk`` callers
    keep their own rules."""
    bucket, key = _split(pattern)
    client = _client()
    if not any(char in key for char in "*?["):
        if key and _blob(pattern).exists():
            return [pattern]
        prefix = key.rstrip("/") + "/" if key else ""
        return sorted(f"{GCS_SCHEME}{bucket}/{blob.name}"
                      for blob in client.list_blobs(bucket, prefix=prefix)
                      if not blob.name.endswith("/"))
    wanted = key.split("/")
    prefix = key[:min(key.find(char) for char in "*?[" if char in key)]
    return sorted(f"{GCS_SCHEME}{bucket}/{blob.name}"
                  for blob in client.list_blobs(bucket, prefix=prefix)
                  if _segments_match(blob.name.split("/"), wanted))


def _segments_match(names: list[str], patterns: list[str]) -> bool:
    return len(names) == len(patterns) and all(
        fnmatch.fnmatchcase(name, pattern) for name, pattern in zip(names, patterns, strict=True))


def copy_to_local(path: str | os.PathLike, local_path: str | os.PathLike) -> str:
    """Copies the file to ``local_path`` (through a temporary name, so a stop never leaves a
    partial file there); returns ``local_path``."""
    partial = f"{os.fspath(local_path)}.partial"
    with open_read(path) as source, open(partial, "wb") as target:
        shutil.copyfileobj(source, target, _READ_CHUNK_BYTES)
    os.replace(partial, local_path)
    return os.fspath(local_path)


# --- gs:// -------------------------------------------------------------------------------------

# One GET per 8 MiB: few requests for big token files, little memory.
_READ_CHUNK_BYTES = 8 << 20
# One client per emulator setting: a process that starts pointing at an emulator (tests) gets
# a client for it, not one made before.
_CLIENTS: dict[str | None, Any] = {}


def _split(path: str) -> tuple[str, str]:
    """("bucket", "key") of ``gs://bucket/key``."""
    if not path.startswith(GCS_SCHEME):
        scheme = path.split("://", 1)[0]
        raise ValueError(f"{path}: only local paths and gs:// are readable here, not {scheme}://")
    bucket, _, key = path[len(GCS_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"{path}: no bucket name after gs://")
    return bucket, key


def _client() -> Any:
    """A google-cloud-storage client with the default credentials, or anonymous (public
    buckets, the emulator: ``STORAGE_EMULATOR_HOST``) when there are none."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    client = _CLIENTS.get(emulator)
    if client is None:
        try:
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import storage
        except ImportError as error:
            raise ImportError(GCP_EXTRA_HINT, name=error.name) from None
        try:
            client = storage.Client()
        except DefaultCredentialsError:
            client = storage.Client.create_anonymous_client()
        _CLIENTS[emulator] = client
    return client


def _blob(path: str) -> Any:
    bucket, key = _split(path)
    return _client().bucket(bucket).blob(key)


def _existing_blob(path: str) -> Any:
    """The blob with its metadata (size, generation) loaded; a missing one is
    ``FileNotFoundError``, as for a local file."""
    bucket, key = _split(path)
    client = _client()
    from google.api_core.exceptions import NotFound  # installed with the client

    try:
        blob = client.bucket(bucket).get_blob(key)
    except NotFound:  # the bucket itself is missing
        blob = None
    if blob is None:
        raise FileNotFoundError(errno.ENOENT, "No such object", path)
    return blob
