"""A local cache of a shard folder held elsewhere (``gs://bucket/run/shards``, a slow mount):
fetch the files training reads, check each one's sha256 against the manifest, share them
between the processes of one machine, keep the cache under a size limit, prefetch.

Layout, one folder per shard set under the cache root (default ``~/.cache/winnow/shards``,
``$XDG_CACHE_HOME`` honoured)::

    ROOT/.lock                         flock: one process at a time evicts and reserves space
    ROOT/<manifest_sha256[:16]>/       the verified files, under their names in the manifest:
        manifest.json  tokenizer.model  shard-00000.tokens.bin  shard-00000.index.npy ...
        .locks/<file>                  flock per file, shared while a process uses (maps) it;
                                       eviction takes it exclusive, without waiting
        .fetching/<file>               flock per file, exclusive while a process fetches it
        .reserved/<file>               a sparse file the size of a fetch in flight: its space
        .partial/<file>.<pid>.<thread> the bytes of a fetch in flight

A file appears under its own name only by a rename after its sha256 matched, so a present file
is a verified one, and a stop never leaves a torn one. Several processes (the DDP ranks of a
machine, DataLoader workers, two runs) share the cache: the fetch lock of a file makes one of
them fetch it while the others wait, and the shared use locks of its users keep it from
eviction. The two are separate so that no one ever waits on a lock held for a file's use (that
is, for the rest of a run).
The size limit counts the shard files of every set under the root and the reservations;
to make room the cache deletes the least recently used shard files no process uses, and refuses
clearly (``ShardCacheError``) a file larger than the limit, or a limit that the files in use
fill. Only training's files are fetched: tokens.bin and index.npy (not documents.jsonl and
provenance.npy), the tokenizer and the manifest.

The source is any function ``download(remote_path, local_path)`` that writes one file
(``schemas.storage.copy_to_local`` for gs://; a plain copy for a local folder), raising
``FileNotFoundError`` for a missing one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from winnow.schemas import storage
from winnow.schemas.shard_format import (
    _PROVENANCE_ROW,
    INDEX_DTYPE,
    MANIFEST_FILE,
    ShardManifest,
    _npy_header,
    sha256_file,
    shard_files,
)

Download = Callable[[str, str], object]
"""``download(remote_path, local_path)``: write the remote file's bytes at ``local_path``."""

_SUBFOLDERS = (".locks", ".fetching", ".reserved", ".partial")
_SHARD_FILE = re.compile(r"shard-\d{5,}\.")
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
PREFETCH_THREADS = 4
"""Fetches in flight at once: object stores serve one stream at a fraction of a VM's bandwidth."""


class ShardCacheError(OSError):
    """A file that cannot be fetched or verified, or a cache too small; the message names it
    (an OSError: the commands print I/O errors as one line)."""


class ShardCacheFullError(ShardCacheError):
    """A file that does not fit under the cache's size limit."""


@dataclass(frozen=True)
class CacheOptions:
    root: str | None = None
    """Cache root (a folder per shard set inside); None: ``default_cache_root()``."""
    limit_bytes: int | None = None
    """Most bytes of shard files under the root (every set); None: no limit."""
    prefetch_threads: int = PREFETCH_THREADS


def default_cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "winnow", "shards")


def parse_size(text: str) -> int:
    """Bytes of ``"500M"``, ``"20G"``, ``"1.5T"``, ``"4096"`` (binary units; ``GiB``/``GB``
    accepted); ValueError naming the text otherwise."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 20G, 1.5T)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def copy_file(remote_path: str, local_path: str) -> None:
    """The ``download`` of a source folder on a local (or mounted) disk."""
    shutil.copyfile(remote_path, local_path)


def download_for(location: str) -> Download:
    """The ``download`` of a location: ``schemas.storage``'s for an object store (gs://),
    a file copy for a local folder."""
    return storage.copy_to_local if storage.is_remote(location) else copy_file


def training_files(manifest: ShardManifest, shard: int) -> tuple[str, str]:
    """(tokens.bin, index.npy) of a shard: what training maps."""
    tokens_file, index_file, _, _ = shard_files(manifest.shards[shard].name)
    return tokens_file, index_file


def expected_sizes(manifest: ShardManifest) -> dict[str, int]:
    """Bytes of every shard file, from the manifest's counts (the format fixes them), so that
    space is reserved before a fetch starts."""
    sizes = {}
    for shard in manifest.shards:
        tokens_file, index_file, _, provenance_file = shard_files(shard.name)
        sizes[tokens_file] = shard.tokens * manifest.dtype.itemsize
        sizes[index_file] = len(_npy_header(INDEX_DTYPE, shard.examples)) + shard.examples * 17
        sizes[provenance_file] = (len(_npy_header(_PROVENANCE_ROW, shard.examples))
                                  + shard.examples * 8)
    return sizes


class ShardCache:
    """The verified local copies of one shard set's files (see the module docstring).

    ``acquire(name)`` returns a file's local path and holds it in use (a shared flock) until
    ``release(name)`` or the end of the process; ``prefetch(names)`` fetches files in that order
    in background threads. Pickling (to DataLoader workers) sends the settings only: each
    process takes its own locks.
    """

    def __init__(self, location: str, manifest: ShardManifest, root: str,
                 limit_bytes: int | None = None, download: Download = copy_file,
                 prefetch_threads: int = PREFETCH_THREADS):
        self.location = location.rstrip("/")
        self.manifest = manifest
        self.root = os.fspath(root)
        self.folder = os.path.join(self.root, manifest.to_obj()["manifest_sha256"][:16])
        self.limit_bytes = limit_bytes
        self.download = download
        self.prefetch_threads = prefetch_threads
        self._hashes = {name: digest for shard in manifest.shards
                        for name, digest in shard.files.items()}
        self._hashes.update(manifest.files)
        self._sizes = expected_sizes(manifest)
        self._held: dict[str, int] = {}  # name -> fd of its lock file, held shared
        self._mutex = threading.Lock()
        self._make_folders()

    def _make_folders(self) -> None:
        for sub in _SUBFOLDERS:
            os.makedirs(os.path.join(self.folder, sub), exist_ok=True)

    @classmethod
    def open(cls, location: str, options: CacheOptions | None = None,
             download: Download | None = None) -> ShardCache:
        """The cache of the shard set at ``location`` (a shard folder, or a run folder holding
        it as shards/): fetches its manifest (validated, checksum included) and places it.
        ``download`` defaults to ``download_for(location)``."""
        options = options or CacheOptions()
        download = download or download_for(location)
        root = options.root or default_cache_root()
        os.makedirs(root, exist_ok=True)
        location, raw = _fetch_manifest(location.rstrip("/"), root, download)
        try:
            manifest = ShardManifest.from_json(raw)
        except ValueError as error:
            raise ShardCacheError(f"{location}/{MANIFEST_FILE}: {error}") from None
        cache = cls(location, manifest, root, options.limit_bytes, download,
                    options.prefetch_threads)
        manifest_path = os.path.join(cache.folder, MANIFEST_FILE)
        if not os.path.isfile(manifest_path):
            _write_atomically(manifest_path, raw)
        return cache

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_held": {}, "_mutex": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._mutex = threading.Lock()

    def remote_path(self, name: str) -> str:
        return f"{self.location}/{name}"

    # Use -----------------------------------------------------------------------------------

    def acquire(self, name: str) -> str:
        """The local path of ``name`` (fetched and verified first if absent), in use until
        released: no process evicts it meanwhile."""
        with self._mutex:
            if name not in self._held:
                self._held[name] = _kept(self._place(name))
        return os.path.join(self.folder, name)

    def release(self, name: str) -> None:
        with self._mutex:
            fd = self._held.pop(name, None)
        if fd is not None:
            os.close(fd)  # drops the shared lock

    def release_all(self) -> None:
        """``release`` every file this process holds through this cache."""
        for name in list(self._held):
            self.release(name)

    def prefetch(self, names: Iterable[str]) -> list[threading.Thread]:
        """Fetch ``names`` in this order (skipping present ones) in ``prefetch_threads``
        daemon threads, without holding them in use. Stops at the first file that does not fit
        under the limit; a file that fails its checks is left to ``acquire``, which raises."""
        pending = iter(list(names))
        mutex = threading.Lock()
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                with mutex:
                    name = next(pending, None)
                if name is None:
                    return
                try:
                    _close_lock(self._place(name))
                except ShardCacheFullError:
                    stop.set()
                except ShardCacheError:
                    continue  # acquire fetches it again and raises, naming the file

        threads = [threading.Thread(target=work, name=f"shard-prefetch-{n}", daemon=True)
                   for n in range(max(1, self.prefetch_threads))]
        for thread in threads:
            thread.start()
        return threads

    # Placement -----------------------------------------------------------------------------

    def _place(self, name: str) -> int:
        """Makes ``name`` present and verified; returns the fd of its use lock, held shared
        (closing it ends the use)."""
        if name not in self._hashes:
            raise ShardCacheError(f"{self.remote_path(name)}: not listed in the manifest")
        fd = _open_lock(os.path.join(self.folder, ".locks", name))
        try:
            path = os.path.join(self.folder, name)
            fcntl.flock(fd, fcntl.LOCK_SH)  # in use before looking: eviction skips it
            if not os.path.exists(path):
                with _locked(os.path.join(self.folder, ".fetching", name)):  # one fetches
                    if not os.path.exists(path):
                        self._fetch_verified(name, path)
            # the lock file's mtime: the file's last use, for LRU eviction (an explicit time:
            # the kernel's own stamps are a jiffy coarse)
            now = time.time_ns()
            os.utime(fd, ns=(now, now))
        except BaseException:
            _close_lock(fd)
            raise
        return fd

    def _fetch_verified(self, name: str, path: str) -> None:
        """Fetch (caller holds the file's fetch lock) into .partial/, check the sha256,
        rename into place; a mismatch is fetched once more, then refused."""
        self._clear_stale(name)
        size = self._sizes.get(name, 0)
        self._reserve(name, size)
        partial = os.path.join(self.folder, ".partial",
                               f"{name}.{os.getpid()}.{threading.get_ident()}")
        try:
            for _ in range(2):
                self._download(name, partial)
                digest = sha256_file(partial)
                if digest == self._hashes[name]:
                    os.replace(partial, path)
                    return
                os.remove(partial)
            raise ShardCacheError(
                f"{self.remote_path(name)}: sha256 {digest[:12]}... does not match the "
                f"manifest's {self._hashes[name][:12]}... (fetched twice): the remote file is "
                f"corrupt or was replaced; curate the shards again or restore it")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.folder, ".reserved", name))

    def _download(self, name: str, partial: str) -> None:
        try:
            self.download(self.remote_path(name), partial)
        except FileNotFoundError:
            raise ShardCacheError(f"{self.remote_path(name)}: missing (the manifest lists it)"
                                  ) from None
        except OSError as error:
            raise ShardCacheError(f"{self.remote_path(name)}: cannot be fetched "
                                  f"({error.strerror or error})") from None

    def _clear_stale(self, name: str) -> None:
        """The reservation and partial bytes of ``name`` left by a process that died fetching
        it (the caller holds its fetch lock, so no live process owns them)."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.folder, ".reserved", name))
        partial = os.path.join(self.folder, ".partial")
        for stale in os.listdir(partial):
            if stale.startswith(name + "."):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(partial, stale))

    # Size limit ----------------------------------------------------------------------------

    def _reserve(self, name: str, size: int) -> None:
        """Room for ``size`` more bytes under the limit (evicting), claimed by a sparse file in
        .reserved/ until the fetch ends; ShardCacheError when it cannot be made."""
        if self.limit_bytes is None or not size:
            return
        if size > self.limit_bytes:
            raise ShardCacheFullError(
                f"{self.remote_path(name)}: {size:,} bytes, more than the shard cache limit "
                f"of {self.limit_bytes:,}; raise the limit (--shard-cache-limit)")
        with _locked(os.path.join(self.root, ".lock")):
            used = evict_until(self.root, self.limit_bytes - size)
            if used + size > self.limit_bytes:
                raise ShardCacheFullError(
                    f"{self.remote_path(name)}: no room in the shard cache {self.root} "
                    f"(limit {self.limit_bytes:,} bytes, {used:,} held by shard files in use "
                    f"or being fetched, {size:,} needed); raise --shard-cache-limit")
            with open(os.path.join(self.folder, ".reserved", name), "wb") as handle:
                handle.truncate(size)

    def shard_sizes(self, shard: int) -> tuple[int, int]:
        """Bytes of shard ``shard``'s (tokens.bin, index.npy): what training maps of it."""
        tokens_file, index_file = training_files(self.manifest, shard)
        return self._sizes[tokens_file], self._sizes[index_file]

    def training_bytes(self) -> int:
        """Bytes of the files training maps: tokens.bin and index.npy of every shard."""
        return sum(sum(self.shard_sizes(number)) for number in range(len(self.manifest.shards)))


def evict_until(root: str, budget: int) -> int:
    """Deletes least recently used shard files no process uses, under every set of ``root``,
    until shard files and reservations take at most ``budget`` bytes (or nothing more can go);
    returns the bytes they take then. The caller holds ROOT/.lock."""
    used = 0
    candidates = []  # (last use, bytes, folder, name)
    for folder in _set_folders(root):
        reserved = os.path.join(folder, ".reserved")
        for name in _listdir(reserved):
            if not _delete_unused(folder, name, reservation=True):  # a fetch in flight
                used += _size(os.path.join(reserved, name))
        for name in _listdir(folder):
            if not _SHARD_FILE.match(name):
                continue
            size = _size(os.path.join(folder, name))
            used += size
            lock = os.path.join(folder, ".locks", name)
            last_use = os.path.getmtime(lock) if os.path.exists(lock) else 0.0
            candidates.append((last_use, size, folder, name))
    for _, size, folder, name in sorted(candidates):
        if used <= budget:
            break
        if _delete_unused(folder, name):
            used -= size
    return used


def _delete_unused(folder: str, name: str, reservation: bool = False) -> bool:
    """Deletes ``folder/name`` when no process uses it (holds its use lock); with
    ``reservation``, its reservation when no process fetches it (one that died fetching left
    it)."""
    lock = os.path.join(folder, ".fetching" if reservation else ".locks", name)
    fd = _open_lock(lock)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, ".reserved" if reservation else "", name))
        return True
    finally:
        _close_lock(fd)


def _set_folders(root: str) -> list[str]:
    return [os.path.join(root, name) for name in _listdir(root)
            if os.path.isdir(os.path.join(root, name, ".locks"))]


def _listdir(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # deleted meanwhile by a process not holding ROOT/.lock
        return 0


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        _close_lock(fd)


# Lock files across fork ------------------------------------------------------------------------
# A flock belongs to the open file, which a forked child (a DataLoader worker) shares through
# its copy of the descriptor: a copy of a lock that a prefetch thread holds for a moment (a
# fetch, an eviction, a placement) would stay held in the child, where that thread does not
# exist to close it, and the child would wait forever on its own copy. So every lock file is
# opened through ``_open_lock``, and the child closes its copies of those not yet held for a
# use (``_kept``) as soon as it starts.

_TRANSIENT_FDS: set[int] = set()
_FDS_MUTEX = threading.Lock()  # taken around fork: no descriptor is half registered


def _open_lock(path: str) -> int:
    with _FDS_MUTEX:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        _TRANSIENT_FDS.add(fd)
    return fd


def _close_lock(fd: int) -> None:
    with _FDS_MUTEX:
        _TRANSIENT_FDS.discard(fd)
        os.close(fd)


def _kept(fd: int) -> int:
    """``fd``, now held for a use (``ShardCache.acquire``): a child keeps its copy."""
    with _FDS_MUTEX:
        _TRANSIENT_FDS.discard(fd)
    return fd


def _close_transient_in_child() -> None:
    for fd in _TRANSIENT_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _TRANSIENT_FDS.clear()
    _FDS_MUTEX.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_FDS_MUTEX.acquire, after_in_parent=_FDS_MUTEX.release,
                        after_in_child=_close_transient_in_child)


def _fetch_manifest(location: str, root: str, download: Download) -> tuple[str, bytes]:
    """(the shard folder, its manifest's bytes): ``location`` itself, or ``location/shards``
    when ``location`` is a run folder (as ``shard_reader.shards_folder``)."""
    partial = os.path.join(root, f".{MANIFEST_FILE}.{os.getpid()}.{threading.get_ident()}")
    try:
        for folder in (f"{location}/shards", location):
            try:
                download(f"{folder}/{MANIFEST_FILE}", partial)
            except FileNotFoundError:
                continue
            with open(partial, "rb") as handle:
                return folder, handle.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    raise ShardCacheError(f"{location}/{MANIFEST_FILE}: missing (nor in {location}/shards/): "
                          "not a shard folder")


def _write_atomically(path: str, data: bytes) -> None:
    partial = f"{path}.{os.getpid()}.{threading.get_ident()}.partial"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def open_shards(location: str, options: CacheOptions | None = None,
                download: Download | None = None):
    """A ``ShardReader`` of the shard set at ``location`` (or ``location/shards``) that reads
    through a cache: the manifest now, every other file on first use."""
    from winnow.schemas.shard_reader import ShardReader

    cache = ShardCache.open(location, options, download)
    return ShardReader(cache.folder, cache=cache)
