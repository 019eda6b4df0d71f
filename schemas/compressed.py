"""Compressed input files: which suffixes winnow reads, and a decompressing stream over any
binary stream. Curation (``pipeline/readers.py``, over Beam's filesystems) and training's text
and task files (``trainer/rows.py``, over local files) read them the same way.

Every format reports a file that ends early the same way: reading raises one of
``STREAM_ERRORS`` (``EOFError`` for a cut gzip, bz2, xz or zstd stream) after the bytes before
the cut, so a reader can keep the records it got and say where the file broke.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import IO, BinaryIO, cast

import zstandard

COMPRESSION_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2", ".xz", ".lzma")

STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, OSError, lzma.LZMAError,
                 zstandard.ZstdError)
"""What a decompressor raises on a stream that ends early or is corrupt."""


def decompressed(raw: IO[bytes], name: str) -> BinaryIO:
    """A buffered binary stream of ``raw``'s contents, decompressed by the suffix of ``name``.

    gzip, bz2 and xz readers are buffered already and are iterated directly: wrapping them in
    another buffer would drop the lines decoded just before a truncation error.
    """
    name = name.lower()
    if name.endswith(".gz"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw))
    if name.endswith(".bz2"):
        return cast(BinaryIO, bz2.BZ2File(raw))
    if name.endswith((".xz", ".lzma")):
        return cast(BinaryIO, lzma.LZMAFile(raw))
    if name.endswith((".zst", ".zstd")):
        return cast(BinaryIO, io.BufferedReader(ZstdFramesReader(raw), buffer_size=1 << 16))
    return cast(BinaryIO, io.BufferedReader(cast(io.RawIOBase, raw), buffer_size=1 << 20))


# The bytes every stream of a format starts with (.lzma, LZMA-alone, has no fixed mark).
_MAGIC = {".gz": (b"\x1f\x8b",), ".bz2": (b"BZh",), ".xz": (b"\xfd7zXZ\x00",),
          ".zst": (b"\x28\xb5\x2f\xfd",), ".zstd": (b"\x28\xb5\x2f\xfd",)}
MAGIC_BYTES = 6
"""How many first bytes ``not_in_its_format`` needs."""


def not_in_its_format(head: bytes, name: str) -> str | None:
    """Why a file whose first ``MAGIC_BYTES`` bytes are ``head`` is not in the compression
    format its name's suffix says (e.g. plain JSON named ``.jsonl.gz``); None when it may be.
    A decompressor's error on such a file reads like a corrupt stream, but nothing in it was
    ever compressed: the file is unreadable, not truncated."""
    name = name.lower()
    for suffix, marks in _MAGIC.items():
        if name.endswith(suffix) and head and not head.startswith(marks) \
                and not (suffix.startswith(".zst") and _zstd_skippable(head)):
            return f"the file does not start as {suffix} data does (its first bytes: {head!r})"
    return None


def _zstd_skippable(head: bytes) -> bool:
    """A zstd skippable frame (magic 0x184D2A50 to 0x184D2A5F, little-endian)."""
    return len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50


def without_compression_suffix(name: str) -> str:
    """``"a.jsonl.gz"`` -> ``"a.jsonl"`` (lower case)."""
    name = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


class ZstdFramesReader(io.RawIOBase):
    """The decompressed bytes of a zstd stream of one or more frames; raises ``EOFError`` when
    the input ends inside a frame, as the gzip, bz2 and xz readers do.

    zstandard's ``stream_reader`` returns end of file there instead: a cut file lost its torn
    frame without a trace (a small one-frame file read as empty). ``decompressobj`` tells
    where a frame ends (``eof``, ``unused_data``), so each frame gets its own and leftover
    input starts the next. Input goes in ``_INPUT_CHUNK`` bytes at a time, which bounds what
    one step can produce at about 32,000 times that (zstd's largest ratio, all one byte).
    """

    _INPUT_CHUNK = 1 << 10
    """1 KiB: at most about 32 MB from one step of a decompression bomb. Reading linux-doc
    (25 MB of text, 5.8 MB of zstd) this way was no slower than with stream_reader."""

    def __init__(self, compressed: IO[bytes]):
        self._compressed = compressed
        # Frames written with --long (windows up to 2 GiB) are read too.
        self._decompressor = zstandard.ZstdDecompressor(max_window_size=1 << 31)
        # The decompressobj of the frame being read; None between frames.
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._leftover = b""  # input after the end of the last frame
        self._output = memoryview(b"")  # decompressed, not yet read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._output:
            if not self._decompress_more():
                return 0
        size = min(len(buffer), len(self._output))
        buffer[:size] = self._output[:size]
        self._output = self._output[size:]
        return size

    def _decompress_more(self) -> bool:
        """Decompress the next piece of input into ``_output``; False at the end of the last
        frame."""
        data = self._leftover or self._compressed.read(self._INPUT_CHUNK)
        self._leftover = b""
        if not data:
            if self._frame is not None:
                raise EOFError("zstd input ended inside a frame: the file is truncated")
            return False
        if self._frame is None:
            self._frame = self._decompressor.decompressobj()
        self._output = memoryview(self._frame.decompress(data))
        if self._frame.eof:
            self._leftover, self._frame = self._frame.unused_data, None
        return True

    def close(self) -> None:
        self._compressed.close()
        super().close()
