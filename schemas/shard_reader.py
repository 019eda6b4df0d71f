"""Reading a token shard folder: its manifest, its examples (memory-mapped) and their provenance.

The format is specified in ``schemas.shard_format``; this module only reads what it describes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from winnow.schemas import storage
from winnow.schemas.shard_format import (
    _PROVENANCE_ROW,
    INDEX_DTYPE,
    MANIFEST_FILE,
    PACKED_OBJECTIVE,
    DocumentRef,
    ExampleProvenance,
    ShardManifest,
    _check_npy_rows,
    _load_sentencepiece,
    shard_files,
    special_tokens_per_example,
)
from winnow.schemas.shard_verify import verify_shards


def shards_folder(path: str | os.PathLike) -> str:
    """``path`` itself, or ``path/shards`` when ``path`` is a run folder holding the shards, so
    commands accept either (local or gs://)."""
    nested = storage.join(path, "shards")
    return nested if storage.is_file(storage.join(nested, MANIFEST_FILE)) else os.fspath(path)


def read_manifest(directory: str | os.PathLike) -> ShardManifest:
    return ShardManifest.from_json(storage.read_bytes(storage.join(directory, MANIFEST_FILE)))




def read_documents(path: str | os.PathLike) -> list[DocumentRef]:
    """The refs of a documents.jsonl file, in line order."""
    return [DocumentRef.from_json(line) for line in storage.read_bytes(path).split(b"\n")[:-1]]


# --- reader ------------------------------------------------------------------------------------

class ShardReader:
    """Random access to the examples of a shard folder, through memory maps.

    Each shard's tokens.bin (with the manifest's dtype) and index.npy are mapped on first use;
    ``example`` returns views into the map, so reading never copies the corpus. Pickling (e.g. to
    DataLoader workers) sends the manifest only; each process maps the files again.
    ``provenance`` reads documents.jsonl and provenance.npy, which training never opens.
    A gs:// folder is read the same way from local copies of the files a call needs, made on
    first use in a temporary folder that lives as long as the reader (``shards stats`` copies
    only the index files).
    With a ``cache`` (``schemas.shard_cache.ShardCache``, whose folder ``directory`` is), every
    file is taken through it instead: fetched and sha256-checked on first use, then held in use.
    """

    def __init__(self, directory: str | os.PathLike, verify: bool = False, *,
                 cache: Any = None):
        self.directory = os.fspath(directory)
        self.cache = cache
        if verify:
            problems = verify_shards(self.directory)
            if problems:
                raise ValueError(f"{self.directory} failed verification:\n  "
                                 + "\n  ".join(problems))
        self.manifest = read_manifest(self.directory)
        counts = np.array([shard.examples for shard in self.manifest.shards], dtype=np.int64)
        self._ends = np.cumsum(counts)
        self._starts = self._ends - counts
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._provenance: dict[int, tuple[list[DocumentRef], np.ndarray]] = {}
        self._indexes: dict[int, np.ndarray] = {}
        self._copies: tempfile.TemporaryDirectory | None = None  # of a gs:// folder's files

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}, "_provenance": {}, "_indexes": {}, "_copies": None}

    def _local_file(self, name: str) -> str:
        """A local path holding the folder's file ``name``: through the cache when the reader
        has one, else the file itself, or (gs://) a copy made on first use."""
        if self.cache is not None:
            return self.cache.acquire(name)
        path = storage.join(self.directory, name)
        if not storage.is_remote(path):
            return path
        if self._copies is None:
            self._copies = tempfile.TemporaryDirectory(prefix="winnow-shards-")
        local = os.path.join(self._copies.name, name)
        return local if os.path.exists(local) else storage.copy_to_local(path, local)

    def _index(self, shard: int) -> np.ndarray:
        """Shard ``shard``'s index.npy, mapped and checked; shape (examples,) of INDEX_DTYPE."""
        index = self._indexes.get(shard)
        if index is None:
            info = self.manifest.shards[shard]
            index_file = shard_files(info.name)[1]
            index = np.load(self._local_file(index_file), mmap_mode="r")
            _check_npy_rows(index, INDEX_DTYPE, info.examples, index_file)
            index = self._indexes[shard] = index.view(np.ndarray)
        return index

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0  # an empty set has no shard

    def tokenizer_path(self) -> str:
        """A local path of the folder's tokenizer model (see ``_local_file``)."""
        return self._local_file(self.manifest.tokenizer_file)

    def shards_of(self, indices: np.ndarray) -> list[int]:
        """The shards holding the examples ``indices``, in the order they first appear."""
        shards = np.searchsorted(self._ends, np.asarray(indices, dtype=np.int64), side="right")
        _, first = np.unique(shards, return_index=True)
        return shards[np.sort(first)].tolist()

    def prefetch(self, indices: np.ndarray) -> None:
        """With a cache, fetch in background threads the shards of the examples ``indices``
        in the order they first appear there, then the others (a training run passes its
        coming examples, so the shards arrive in the order it reads them); without, nothing."""
        if not len(self):
            return
        order = self.shards_of(indices)
        self.prefetch_shards(order + sorted(set(range(len(self.manifest.shards))) - set(order)))

    def prefetch_shards(self, shards: Sequence[int]) -> None:
        """With a cache, fetch the training files of ``shards`` in this order in background
        threads (``ShardCache.prefetch``); without, nothing."""
        if self.cache is not None:
            self.cache.prefetch(name for shard in shards
                                for name in shard_files(self.manifest.shards[shard].name)[:2])

    def open_shards(self) -> set[int]:
        """The shards whose training files this reader holds (mapped, in use in its cache)."""
        return set(self._maps) | set(self._indexes)

    def release_shard(self, shard: int) -> None:
        """Unmap shard ``shard`` and, with a cache, end this reader's use of its files, so that
        the cache may evict them (views of it already handed out stay readable: the mapping
        lives as long as they do)."""
        self._maps.pop(shard, None)
        self._indexes.pop(shard, None)
        if self.cache is not None:
            for name in shard_files(self.manifest.shards[shard].name)[:2]:
                self.cache.release(name)

    def close(self) -> None:
        """Unmap every file and end this reader's use of its cache's files (a reader read
        again maps and takes them again)."""
        self._maps, self._indexes, self._provenance = {}, {}, {}
        if self.cache is not None:
            self.cache.release_all()

    def read_through(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Copies of ``batch(indices)``, read one shard at a time, each shard released after
        its examples unless the reader held it before: the files in use stay at one shard."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        held = self.open_shards()
        shards = np.searchsorted(self._ends, wanted, side="right")
        out: list[Any] = [None] * len(wanted)
        for shard in np.unique(shards).tolist():
            positions = np.flatnonzero(shards == shard)
            self._batch_of_shard(shard, wanted[positions] - self._starts[shard],
                                 positions.tolist(), out)
            for position in positions.tolist():
                a, b, label = out[position]
                out[position] = (a.copy(), b.copy(), label)
            if shard not in held:
                self.release_shard(shard)
        return out

    def _open(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        opened = self._maps.get(shard)
        if opened is not None:
            return opened
        info = self.manifest.shards[shard]
        tokens_file = shard_files(info.name)[0]
        dtype = self.manifest.dtype
        tokens_path = self._local_file(tokens_file)
        size = os.path.getsize(tokens_path)
        if size != info.tokens * dtype.itemsize:
            raise ValueError(f"{tokens_file}: {size} bytes, the manifest says {info.tokens} "
                             f"{self.manifest.token_dtype} tokens ({info.tokens * dtype.itemsize})")
        # Plain ndarray views of the maps: slicing an np.memmap subclass costs a Python call.
        tokens = np.memmap(tokens_path, dtype=dtype, mode="r").view(np.ndarray)
        opened = (tokens, self._index(shard))
        self._maps[shard] = opened
        return opened

    def _locate(self, i: int) -> tuple[int, int]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"example {i} out of range for {n} examples")
        if i < 0:
            i += n
        shard = int(np.searchsorted(self._ends, i, side="right"))
        return shard, i - int(self._starts[shard])

    def example(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(ids of A, ids of B, label) of global example ``i``; the arrays are read-only views."""
        shard, local = self._locate(int(i))
        tokens, index = self._open(shard)
        offset, length, length_a, label = index[local].item()
        return (tokens[offset:offset + length_a], tokens[offset + length_a:offset + length],
                label)

    __getitem__ = example

    def provenance(self, i: int) -> ExampleProvenance:
        """The documents segment A and segment B of global example ``i`` came from; for packed
        (mlm) examples, its first and last document (``documents`` lists them all)."""
        shard, local = self._locate(int(i))
        documents, lines = self._open_provenance(shard)
        line_a, line_b = lines[local].tolist()
        if max(line_a, line_b) >= len(documents):
            raise ValueError(f"{shard_files(self.manifest.shards[shard].name)[3]}: row {local} "
                             f"names line {max(line_a, line_b)}, documents.jsonl has "
                             f"{len(documents)}")
        return ExampleProvenance(documents[line_a], documents[line_b])

    def documents(self, i: int) -> list[DocumentRef]:
        """Every document global example ``i`` holds, in order, each once: A's then B's (one
        when they are the same); for packed (mlm) examples the lines first..last of its
        shard's documents.jsonl."""
        first, last = self.provenance(i)
        if self.manifest.objective != PACKED_OBJECTIVE:
            return [first] if first == last else [first, last]
        shard, local = self._locate(int(i))
        documents, lines = self._open_provenance(shard)
        start, stop = lines[local].tolist()
        return documents[start:stop + 1]

    def _open_provenance(self, shard: int) -> tuple[list[DocumentRef], np.ndarray]:
        opened = self._provenance.get(shard)
        if opened is None:
            info = self.manifest.shards[shard]
            _, _, documents_file, provenance_file = shard_files(info.name)
            documents = read_documents(self._local_file(documents_file))
            if len(documents) != info.documents:
                raise ValueError(f"{documents_file}: {len(documents)} lines, the manifest says "
                                 f"{info.documents} documents")
            lines = np.load(self._local_file(provenance_file), mmap_mode="r")
            _check_npy_rows(lines, _PROVENANCE_ROW, info.examples, provenance_file)
            opened = self._provenance[shard] = (documents, lines)
        return opened

    def batch(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """``[self.example(i) for i in indices]``, with the index lookups vectorized."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if len(wanted) and (wanted.min() < -n or wanted.max() >= n):
            raise IndexError(f"an index is out of range for {n} examples")
        wanted = np.where(wanted < 0, wanted + n, wanted)
        shards = np.searchsorted(self._ends, wanted, side="right")
        local = wanted - self._starts[shards]
        if len(self._ends) == 1:
            return self._batch_of_shard(0, local, list(range(len(wanted))), [None] * len(wanted))
        out: list[Any] = [None] * len(wanted)
        for shard in np.unique(shards).tolist():
            positions = np.flatnonzero(shards == shard)
            self._batch_of_shard(shard, local[positions], positions.tolist(), out)
        return out

    def _batch_of_shard(self, shard: int, local: np.ndarray, positions: list[int],
                        out: list[Any]) -> list[Any]:
        tokens, index = self._open(shard)
        rows = index[local]
        starts = rows["offset"].astype(np.int64)
        for position, start, middle, end, label in zip(
                positions, starts.tolist(), (starts + rows["length_a"]).tolist(),
                (starts + rows["length"]).tolist(), rows["label"].tolist(), strict=True):
            out[position] = (tokens[start:middle], tokens[middle:end], label)
        return out

    def lengths(self) -> np.ndarray:
        """Tokens (A + B) of every example, in global order (for length-aware sampling)."""
        return np.concatenate([np.zeros(0, np.int64)] + [
            self._index(shard)["length"].astype(np.int64)
            for shard in range(len(self.manifest.shards))])


# --- inspection --------------------------------------------------------------------------------

def shard_stats(directory: str | os.PathLike, bin_width: int = 16) -> dict[str, Any]:
    """Counts, label balance and length distribution of a shard folder (JSON-ready).

    ``length_histogram.counts[k]`` counts examples with ``k * bin_width <= length <
    (k + 1) * bin_width``, for lengths up to ``max_seq_len``.
    """
    reader = ShardReader(directory)
    manifest = reader.manifest
    bins = manifest.max_seq_len // bin_width + 1
    histogram = np.zeros(bins, dtype=np.int64)
    sum_length = sum_a = full = 0
    per_shard: list[dict[str, Any]] = []
    rows_per_chunk = 1 << 20
    for number, shard in enumerate(manifest.shards):
        index = reader._index(number)
        labels = np.zeros(2, dtype=np.int64)
        for start in range(0, len(index), rows_per_chunk):
            rows = index[start:start + rows_per_chunk]
            lengths = rows["length"].astype(np.int64)
            histogram += np.bincount(np.minimum(lengths // bin_width, bins - 1),
                                     minlength=bins)
            sum_length += int(lengths.sum())
            sum_a += int(rows["length_a"].sum(dtype=np.int64))
            full += int((lengths == manifest.max_seq_len
                         - special_tokens_per_example(manifest.objective)).sum())
            labels += np.bincount(np.minimum(rows["label"], 1), minlength=2)
        per_shard.append({"name": shard.name, "examples": shard.examples,
                          "tokens": shard.tokens, "documents": shard.documents,
                          "label_counts": {"0": int(labels[0]), "1": int(labels[1])}})
    examples = len(reader)
    label_counts = {str(k): sum(s["label_counts"][str(k)] for s in per_shard) for k in (0, 1)}
    per_example = max(examples, 1)  # an empty set: every mean and fraction is 0
    return {
        "objective": manifest.objective,
        "max_seq_len": manifest.max_seq_len,
        "vocab_size": manifest.vocab_size,
        "token_dtype": manifest.token_dtype,
        "shards": len(manifest.shards),
        "examples": examples,
        "tokens": sum_length,
        "documents": sum(shard.documents for shard in manifest.shards),
        "label_counts": label_counts,
        "label_balance": label_counts["1"] / per_example,
        "mean_length": sum_length / per_example,
        "mean_length_a": sum_a / per_example,
        "mean_length_b": (sum_length - sum_a) / per_example,
        "full_length_fraction": full / per_example,
        "length_histogram": {
            "bin_width": bin_width,
            "edges": [k * bin_width for k in range(bins + 1)],
            "counts": histogram.tolist(),
        },
        "per_shard": per_shard,
    }


def decode_packed(processor, ids: list[int], separator: int | None) -> str:
    """Text of ``ids`` with each ``separator`` id written " [SEP] " (SentencePiece decodes its
    control pieces, [SEP] among them, to nothing, which would hide the document boundaries
    of a packed mlm example); plain ``decode`` when ``separator`` is None."""
    if separator is None or separator not in ids:
        return processor.decode(ids)
    parts, start = [], 0
    for end in [i for i, token in enumerate(ids) if token == separator] + [len(ids)]:
        parts.append(processor.decode(ids[start:end]))
        start = end + 1
    return " [SEP] ".join(parts)


def decode_examples(directory: str | os.PathLike, n: int, start: int = 0,
                    provenance: bool = False) -> Iterator[dict]:
    """The text of examples ``start .. start + n - 1``, decoded with the folder's tokenizer;
    with ``provenance``, also ``document_a`` and ``document_b``: the refs (as dicts) of the
    documents A and B came from, and ``documents``: all of the example's (for packed mlm
    examples, which are all A with label 0, every document it packs; A's first, B's last)."""
    reader = ShardReader(directory)
    if not len(reader):
        return  # an empty set, maybe without a tokenizer to load
    processor = _load_sentencepiece(
        storage.read_bytes(storage.join(reader.directory, reader.manifest.tokenizer_file)))
    separator = (reader.manifest.special_tokens["[SEP]"]
                 if reader.manifest.objective == PACKED_OBJECTIVE else None)
    vocabulary = processor.get_piece_size()
    for i in range(max(start, 0), min(start + n, len(reader))):
        a, b, label = reader.example(i)
        largest = max(int(a.max(initial=0)), int(b.max(initial=0)))
        if largest >= vocabulary:  # SentencePiece would raise a bare IndexError
            raise ValueError(f"example {i} holds token id {largest}, outside the tokenizer's "
                             f"{vocabulary} pieces: the shards and {reader.manifest.tokenizer_file}"
                             " do not belong together (winnow shards verify checks the set)")
        example = {
            "index": i,
            "segment_a": decode_packed(processor, a.tolist(), separator),
            "segment_b": processor.decode(b.tolist()),
            "label": label,
            "objective": reader.manifest.objective,
        }
        if provenance:
            documents = reader.provenance(i)
            example["document_a"] = documents.a._asdict()
            example["document_b"] = documents.b._asdict()
            example["documents"] = [ref._asdict() for ref in reader.documents(i)]
        yield example
