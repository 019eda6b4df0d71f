"""Token shards: the on-disk format of pretraining examples (format_version 2).

This docstring is the specification of the format; this module holds its constants, records
and encoder, ``schemas.shard_reader`` reads a folder and ``schemas.shard_verify`` checks one.

Folder
======
A shard folder (``DIR/shards/``) holds exactly these files and nothing else::

    manifest.json                 what the folder holds, with the sha256 of every other file
    tokenizer.model               the SentencePiece model the ids come from (name in the manifest)
    shard-00000.tokens.bin        token ids of shard 0
    shard-00000.index.npy         one row per example of shard 0
    shard-00000.documents.jsonl   the documents that fed shard 0, one DocumentRef a line
    shard-00000.provenance.npy    per example: its A's and its B's line in documents.jsonl
    shard-00001.tokens.bin        ... and so on for every shard

Shards are named ``shard-%05d`` (``shard_prefix``) and numbered 0..n-1 with no gap, so that a
lost shard is noticed. Every shard holds at least one example: an empty shard is never written.
The folder is self-contained: it can be copied anywhere and checked with ``verify_shards``.

A folder may hold no shard at all: a curation that kept no document with two sentences to pair
still writes a complete, empty set, so that "the manifest is there" keeps meaning "the run
finished". Its manifest lists no shards and counts 0 examples, 0 tokens and 0 of each label.
When a tokenizer was trained or given, it is in the folder and named as usual; when there was
none (no document was kept, and no ``tokenizer.model`` configured) ``tokenizer_file`` and
``tokenizer_sha256`` are ``null``, ``vocab_size`` is 0, ``token_dtype`` ``"uint16"``, and
``special_tokens`` and ``files`` are ``{}``: the folder holds manifest.json alone. An empty set
is valid; a trainer has nothing to learn from it and says so.

Examples
========
An example is a segment pair (A, B) and a label, for BERT-style pretraining. The trainer builds
``[CLS] A [SEP] B [SEP]``; special tokens are never stored, so every example satisfies
``1 <= len(A)``, ``1 <= len(B)`` and ``len(A) + len(B) <= max_seq_len - 3``.
``label`` is 0 when B is the text that follows A in its document, and 1 otherwise: for
``objective = "sop"`` A and B were swapped (ALBERT sentence order), for ``"nsp"`` B comes from
another document (BERT next sentence).

MLM examples
============
With ``objective = "mlm"`` (RoBERTa FULL-SENTENCES, no pair objective) an example is one packed
sequence: whole sentences of one or more documents, taken in order, with the ``[SEP]`` id stored
between two documents (never first or last). The trainer builds ``[CLS] tokens [SEP]``, so
``1 <= length <= max_seq_len - 2``. In index.npy it is all segment A: ``length_a == length``
(B is empty) and ``label`` is 0, a sentinel (every label count "1" is 0). documents.jsonl then
lists the shard's documents in the order the examples use them (not sorted), each once, and
provenance row ``i`` is ``(first, last)``: example ``i`` holds the documents on lines
``first..last`` inclusive, so every document of an example is listed however many it packs.
Rows run forward: the first row starts at line 0, the last ends on the last line, and each row
starts on the line the previous one ended on (a document cut between two examples) or the next.

``<prefix>.tokens.bin``
=======================
The token ids of the shard's examples in index order, for each example the ids of A then the ids
of B, all concatenated, with no header, padding or separator. Each id is an unsigned
little-endian integer of the manifest's ``token_dtype``: ``uint16`` (2 bytes) when
``vocab_size <= 65,536`` (every id < 65,536), else ``uint32`` (4 bytes); see ``token_dtype``.
The file is exactly ``tokens * itemsize`` bytes. A reader MUST take the dtype from the manifest.

``<prefix>.index.npy``
======================
A NumPy ``.npy`` file (format version 1.0) holding a 1-D, C-order array of ``examples`` rows of
``INDEX_DTYPE``, a packed structured dtype of 17 bytes per row (no alignment padding)::

    bytes 0..7    offset    <u8  first token of the example in tokens.bin, counted in tokens
    bytes 8..11   length    <u4  tokens of A + B
    bytes 12..15  length_a  <u4  tokens of A; B starts at offset + length_a
    byte  16      label     u1   0 or 1

Byte layout: the 6 bytes ``\\x93NUMPY``, the version bytes ``\\x01 \\x00``, the header length
as <u2, then the ASCII header::

    {'descr': [('offset', '<u8'), ('length', '<u4'), ('length_a', '<u4'), ('label', '|u1')],
     'fortran_order': False, 'shape': (N,), }

(one line, exactly as ``numpy.save`` writes it) padded with spaces and ended by ``\\n`` so that
the rows start at a multiple of 64 bytes; then ``N * 17`` bytes of rows. It loads with
``np.load(path, mmap_mode="r")``. Rows are contiguous: ``offset[0] == 0``,
``offset[i + 1] == offset[i] + length[i]`` and ``offset[N - 1] + length[N - 1] == tokens``.

``<prefix>.documents.jsonl``
============================
One line per document that fed the shard (through segment A or B of an example), each a JSON
object with exactly these keys, in this order, then ``\\n``::

    {"id":"doc-17","input_file":"data/part-3.jsonl.gz","input_position":41}

That is ``DocumentRef.to_json``: ``json.dumps`` with ``separators=(",", ":")`` and
``ensure_ascii=True``, so a line is ASCII (other characters, lone surrogates included, are
``\\uXXXX`` escapes) and byte-identical to the serialization of its parsed value. The triple
``(id, input_file, input_position)`` is a ``DocumentRef``: the document's id, the input file it
was read from and its 0-based record index in that file (``Document.sort_key``), unique even
when inputs repeat ids. With the pii stage on, id and input_file are written redacted, exactly
as kept/ writes them, so that the triple still joins kept/ and stays unique
(``filters.pii_names``). Lines are sorted by that triple as written (strings by code point),
without repeats, and every line is named by at least one row of provenance.npy.

``<prefix>.provenance.npy``
===========================
A ``.npy`` 1.0 file of a C-order ``<u4`` array of shape ``(examples, 2)``: row ``i`` holds the
0-based line numbers in documents.jsonl of the document segment A of example ``i`` came from
and of the one B came from. winnow writes the same line twice for SOP examples and for NSP
label 0 (B follows A in its document), and two different lines for NSP label 1 (B taken from
another document). The header, padded like index.npy's, is::

    {'descr': '<u4', 'fortran_order': False, 'shape': (N, 2), }

then ``N * 8`` bytes. It loads with ``np.load(path, mmap_mode="r")``. It is a file of its own
so that training, which never reads it, reads exactly what it would without it.

``manifest.json``
=================
A JSON object, written by ``ShardManifest.to_json`` (2-space indent, ASCII, this key order,
trailing newline; a valid folder's manifest is byte-identical to that serialization)::

    format_version    2 (1 had sources.txt, the distinct ids of a shard's documents, instead of
                      documents.jsonl and provenance.npy)
    objective         "sop" | "nsp" | "mlm"
    max_seq_len       int in [5, MAX_SEQ_LEN_LIMIT = 8192]; the trainer's sequence length,
                      special tokens included
    vocab_size        int; every id < vocab_size; the tokenizer's piece count (0: no tokenizer)
    token_dtype       "uint16" | "uint32", always token_dtype(vocab_size) ("uint16" for 0)
    tokenizer_file    file name of the SentencePiece model in the folder, e.g. "tokenizer.model";
                      null only in an empty set without a tokenizer
    tokenizer_sha256  sha256 (64 lowercase hex digits) of that file; null when it is
    special_tokens    {"[PAD]": id, "[UNK]": id, "[CLS]": id, "[SEP]": id, "[MASK]": id}
    examples          int, sum over shards
    tokens            int, sum over shards
    label_counts      {"0": int, "1": int}, sum over shards
    files             {tokenizer_file: its sha256}
    shards            [{"name": "shard-00000", "examples": int, "tokens": int,
                        "documents": int (lines of documents.jsonl),
                        "label_counts": {"0": int, "1": int},
                        "files": {"shard-00000.tokens.bin": sha256,
                                  "shard-00000.index.npy": sha256,
                                  "shard-00000.documents.jsonl": sha256,
                                  "shard-00000.provenance.npy": sha256}}, ...]
    manifest_sha256   sha256 of the UTF-8 bytes of json.dumps(the object without this key,
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True)

``manifest_sha256`` makes an edit or corruption of the manifest itself detectable, the way the
other hashes do for the other files.
"""

from __future__ import annotations

import array
import hashlib
import io
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
OBJECTIVES = ("sop", "nsp", "mlm")
PACKED_OBJECTIVE = "mlm"
"""The objective whose examples are packed sequences, not pairs (see "MLM examples")."""
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
SPECIAL_TOKENS_PER_EXAMPLE = 3
"""``[CLS] A [SEP] B [SEP]``: an example holds at most ``max_seq_len - 3`` stored tokens."""
SPECIAL_TOKENS_PER_PACKED = 2
"""``[CLS] tokens [SEP]``: an MLM example holds at most ``max_seq_len - 2`` stored tokens."""


def special_tokens_per_example(objective: str) -> int:
    """Special tokens the trainer adds to an example of ``objective``: 2 for mlm, else 3."""
    return SPECIAL_TOKENS_PER_PACKED if objective == PACKED_OBJECTIVE else (
        SPECIAL_TOKENS_PER_EXAMPLE)
MAX_SEQ_LEN_LIMIT = 8192
"""The longest sequence curation writes and the trainer accepts. BERT and ALBERT train at 128
and 512; ModernBERT's 8192 is the longest encoder context in use. The encoder has learned
absolute positions and full attention, whose scores take batch x heads x T^2 floats: at 8192
that is already 256 MB per example and head, so a longer setting is a typo, not a plan (it
used to pass curation and fail in pretraining allocating the position table)."""
SHARD_SUFFIXES = ("tokens.bin", "index.npy", "documents.jsonl", "provenance.npy")
"""The four files of a shard, ``<prefix>.<suffix>``, and the keys of ``encode_shard``'s result."""

INDEX_DTYPE = np.dtype(
    [("offset", "<u8"), ("length", "<u4"), ("length_a", "<u4"), ("label", "u1")])
"""One row of ``index.npy``: 17 bytes, packed."""
PROVENANCE_DTYPE = np.dtype("<u4")
"""The line numbers in provenance.npy, two per example (A's document, B's document)."""
_PROVENANCE_ROW = np.dtype((PROVENANCE_DTYPE, (2,)))

_TOKEN_DTYPES: dict[str, np.dtype] = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
_ARRAY_CODES = {2: "H", 4: "I" if array.array("I").itemsize == 4 else "L"}
UINT32_ARRAY_CODE = _ARRAY_CODES[4]
"""``array.array`` type code of 4-byte unsigned ids: ``extend`` from a list of ints runs in C."""
_CHUNK_BYTES = 8 << 20
"""Read size of the streaming checks (a multiple of 4: token chunks hold whole ids)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHARD_NAME = re.compile(r"shard-(\d{5,})\.")
_NPY_MAGIC = b"\x93NUMPY\x01\x00"
_NPY_ALIGN = 64


def token_dtype(vocab_size: int) -> np.dtype:
    """Little-endian uint16 when every id fits (vocab_size <= 65,536), else uint32."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if not 1 <= vocab_size <= 1 << 32:
        raise ValueError(f"vocab_size must be between 1 and 2**32, got {vocab_size}")
    return _TOKEN_DTYPES["uint16" if vocab_size <= 1 << 16 else "uint32"]


def shard_prefix(index: int) -> str:
    """``shard_prefix(3) == "shard-00003"``; a shard's files are ``<prefix>.<suffix>``."""
    if index < 0:
        raise ValueError(f"shard index must be 0 or more, got {index}")
    return f"shard-{index:05d}"


def shard_files(prefix: str) -> tuple[str, str, str, str]:
    """The file names of a shard: tokens.bin, index.npy, documents.jsonl, provenance.npy."""
    return tuple(f"{prefix}.{suffix}" for suffix in SHARD_SUFFIXES)  # type: ignore[return-value]


# --- documents.jsonl and provenance.npy -------------------------------------------------------

class DocumentRef(NamedTuple):
    """Which input record a document is: unique even when inputs repeat ids. A tuple equal to
    ``Document.sort_key`` (``DocumentRef(*doc.sort_key)``), so refs sort as documents do, and the
    key of the document's row in the run's kept/ records (the ``id``, ``input_file`` and
    ``input_position`` columns): from there, its text and the input record's fields (licence).
    With the pii stage on, documents.jsonl holds id and input_file redacted as kept/ does."""

    id: str
    """The document's id (``Document.id``)."""
    input_file: str
    """The file it was read from (``Document.source``)."""
    input_position: int
    """Its 0-based record index in that file (``Document.position``)."""

    def to_json(self) -> str:
        """Its line of documents.jsonl, without the newline: what ``json.dumps`` of the object
        writes with ``ensure_ascii=True, separators=(",", ":")``, built from json's own string
        encoder (about a third of the time of ``json.dumps``; a shard calls it per document)."""
        return (f'{{"id":{_json_string(self.id)},"input_file":{_json_string(self.input_file)},'
                f'"input_position":{int(self.input_position)}}}')

    @classmethod
    def from_json(cls, line: str | bytes) -> DocumentRef:
        """Parse a line of documents.jsonl; ValueError saying what is wrong with it."""
        obj = _loads(line)
        if not isinstance(obj, dict) or list(obj) != list(cls._fields):
            raise ValueError(f"expected an object with the keys {list(cls._fields)}, got "
                             f"{obj!r}"[:200])
        return document_ref(tuple(obj.values()))


_json_string = json.encoder.encode_basestring_ascii
"""A str as a JSON string literal, non-ASCII as \\uXXXX: the function ``json.dumps`` uses."""


def document_ref(value: Sequence) -> DocumentRef:
    """``value`` (a DocumentRef or an ``(id, input file, position)`` tuple such as
    ``Document.sort_key``) as a DocumentRef; ValueError when a field has the wrong type."""
    if not isinstance(value, tuple) or len(value) != 3:
        raise ValueError(f"a document ref is (id, input_file, input_position), got {value!r}")
    doc_id, input_file, position = value
    if not (isinstance(doc_id, str) and isinstance(input_file, str)
            and isinstance(position, (int, np.integer)) and not isinstance(position, bool)
            and position >= 0):
        raise ValueError(f"a document ref is (str id, str input_file, int input_position >= 0),"
                         f" got {value!r}")
    return value if type(value) is DocumentRef and type(position) is int else DocumentRef(
        doc_id, input_file, int(position))


class ExampleProvenance(NamedTuple):
    """The documents an example's segments came from (``ShardReader.provenance``)."""

    a: DocumentRef
    b: DocumentRef
    """``a`` for SOP and NSP label 0; another document for NSP label 1."""


def canonical_documents(documents: Sequence[DocumentRef], provenance: np.ndarray,
                        ) -> tuple[tuple[DocumentRef, ...], np.ndarray]:
    """The refs that ``provenance`` (``(examples, 2)`` integer positions in ``documents``) names,
    sorted and without repeats, and ``provenance`` renumbered into them (uint32): the
    documents.jsonl and provenance.npy of those examples. Refs are checked once each, after
    equal ones are merged: a ref per example costs a hash and a lookup, a document the rest.
    ValueError on a position outside ``documents`` or a malformed ref."""
    provenance = np.asarray(provenance)
    if provenance.ndim != 2 or provenance.shape[1] != 2 or provenance.dtype.kind not in "iu":
        raise ValueError(f"provenance must be integers of shape (examples, 2), got "
                         f"{provenance.dtype} {provenance.shape}")
    if len(provenance) and (provenance.min() < 0 or provenance.max() >= len(documents)):
        raise ValueError(f"provenance names a document outside the {len(documents)} given")
    named = np.zeros(len(documents), dtype=bool)
    named[provenance.reshape(-1)] = True
    used = np.flatnonzero(named)  # sorted, distinct; O(examples), unlike np.unique
    refs = [documents[position] for position in used.tolist()]
    try:
        distinct = set(refs)
    except TypeError:  # an unhashable value (a list): not a ref
        raise ValueError("a document ref is an (id, input_file, input_position) tuple, got "
                         f"{next(ref for ref in refs if not isinstance(ref, tuple))!r}") from None
    table = sorted(document_ref(ref) for ref in distinct)
    line_of = {ref: line for line, ref in enumerate(table)}  # equal tuples hash alike
    renumber = np.zeros(len(documents), dtype=PROVENANCE_DTYPE)
    renumber[used] = [line_of[ref] for ref in refs]
    return tuple(table), renumber[provenance]


def packed_documents(documents: Sequence[DocumentRef], provenance: np.ndarray,
                     ) -> tuple[tuple[DocumentRef, ...], np.ndarray]:
    """documents.jsonl and provenance.npy of packed (mlm) examples, as given: ``documents`` in
    file order, ``provenance`` ``(examples, 2)`` ``(first, last)`` lines. ValueError unless
    they follow "MLM examples" (refs distinct and well-formed, rows running forward)."""
    table = tuple(document_ref(ref) for ref in documents)
    problem = packed_provenance_problem(provenance, len(table))
    if problem:
        raise ValueError(problem)
    if len(set(table)) != len(table):
        raise ValueError("a packed shard lists a document twice")
    return table, np.asarray(provenance).astype(PROVENANCE_DTYPE)


def packed_provenance_problem(provenance: np.ndarray, documents: int) -> str:
    """What breaks "MLM examples" in ``(first, last)`` rows over ``documents`` lines, or ""."""
    spans = np.asarray(provenance).astype(np.int64)
    if spans.ndim != 2 or spans.shape[1] != 2 or not len(spans):
        return f"provenance must be (examples >= 1, 2) rows, got shape {spans.shape}"
    first, last = spans[:, 0], spans[:, 1]
    step = first[1:] - last[:-1]
    if first[0] != 0 or last[-1] != documents - 1 or (first > last).any() or (
            (step < 0) | (step > 1)).any():
        return (f"packed provenance rows must run forward over lines 0..{documents - 1} "
                f"(first <= last, each row starting on the previous row's last line or the "
                f"next)")
    return ""


# --- index.npy and provenance.npy -------------------------------------------------------------

def _npy_layout(row: np.dtype, rows: int) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) of an array of ``rows`` rows of ``row``: INDEX_DTYPE gives a 1-D array,
    _PROVENANCE_ROW (a subarray of two ids) a second dimension."""
    return (row.base, (rows, *row.shape)) if row.subdtype else (row, (rows,))


def _npy_header(row: np.dtype, rows: int) -> bytes:
    """The .npy 1.0 preamble of ``rows`` rows of ``row``, byte for byte as numpy writes it."""
    descr, shape = _npy_layout(row, rows)
    text = (f"{{'descr': {np.lib.format.dtype_to_descr(descr)!r}, 'fortran_order': False, "
            f"'shape': {shape!r}, }}")
    padding = -(len(_NPY_MAGIC) + 2 + len(text) + 1) % _NPY_ALIGN
    text = text + " " * padding + "\n"
    return _NPY_MAGIC + len(text).to_bytes(2, "little") + text.encode("ascii")


def _npy_bytes(rows: np.ndarray, row: np.dtype) -> bytes:
    rows = np.ascontiguousarray(rows, dtype=_npy_layout(row, len(rows))[0])
    return _npy_header(row, len(rows)) + rows.tobytes()


def _load_npy_bytes(data: bytes, row: np.dtype) -> np.ndarray:
    rows = np.load(io.BytesIO(data), allow_pickle=False)
    _check_npy_rows(rows, row, len(rows), "the .npy bytes")
    return rows


def _check_npy_rows(rows: np.ndarray, row: np.dtype, count: int, name: str) -> None:
    """ValueError unless ``rows`` holds ``count`` rows of ``row`` (as ``_npy_header`` says)."""
    dtype, shape = _npy_layout(row, count)
    if rows.dtype != dtype or rows.shape != shape:
        raise ValueError(f"{name}: holds {rows.dtype} {rows.shape}, expected {dtype} {shape}")


# --- encoder -----------------------------------------------------------------------------------

def encode_shard(
    examples: Iterable[tuple[Sequence[int], Sequence[int], int]],
    example_documents: Sequence[tuple[DocumentRef, DocumentRef]],
    vocab_size: int,
    *,
    max_seq_len: int | None = None,
) -> dict[str, bytes]:
    """The bytes of one shard's four files, keyed by ``SHARD_SUFFIXES``.

    Pure and deterministic (same input, same bytes, on any machine); the caller writes the files
    as ``<prefix>.<key>``, e.g. under a temporary name renamed when complete. ``examples`` are
    ``(ids of A, ids of B, label)``; ``example_documents`` has one ``(A's document, B's
    document)`` per example. Raises ValueError on an empty shard, an empty segment, a label other
    than 0/1, an id outside ``[0, vocab_size)``, a missing or malformed document ref, or, when
    ``max_seq_len`` is given, an example longer than ``max_seq_len - 3``.
    """
    dtype = token_dtype(vocab_size)
    # array.array holds 2 or 4 bytes per id (a list of ints would take about 36) and refuses
    # floats (TypeError) and negative or oversized ids (OverflowError) as it converts them.
    tokens = array.array(_ARRAY_CODES[dtype.itemsize])
    lengths_a = array.array("q")
    lengths = array.array("q")
    labels = array.array("B")
    for number, (a, b, label) in enumerate(examples):
        if isinstance(a, np.ndarray):
            a = a.tolist()
        if isinstance(b, np.ndarray):
            b = b.tolist()
        length_a, length_b = len(a), len(b)
        if length_a == 0 or length_b == 0:
            raise ValueError(f"example {number}: segment {'A' if not length_a else 'B'} is empty")
        if label not in (0, 1) or isinstance(label, float):
            raise ValueError(f"example {number}: label must be 0 or 1, got {label!r}")
        try:
            tokens.extend(a)
            tokens.extend(b)
        except (TypeError, OverflowError) as error:
            raise ValueError(f"example {number}: a token id is not an integer or is outside "
                             f"[0, vocab_size={vocab_size}) ({error})") from None
        lengths_a.append(length_a)
        lengths.append(length_a + length_b)
        labels.append(int(label))
    if sys.byteorder == "big":
        tokens.byteswap()  # the columns hold little-endian ids, as tokens.bin does
    if any(len(pair) != 2 for pair in example_documents):
        raise ValueError("example_documents: give (A's document, B's document) per example")
    documents = [ref for pair in example_documents for ref in pair]
    return encode_shard_columns(
        np.frombuffer(tokens, dtype=dtype), np.frombuffer(lengths_a, dtype=np.int64),
        np.frombuffer(lengths, dtype=np.int64), np.frombuffer(labels, dtype=np.uint8),
        documents, np.arange(len(documents)).reshape(-1, 2), vocab_size,
        max_seq_len=max_seq_len)


def encode_shard_columns(
    tokens: np.ndarray,
    lengths_a: np.ndarray,
    lengths: np.ndarray,
    labels: np.ndarray,
    documents: Sequence[DocumentRef],
    provenance: np.ndarray,
    vocab_size: int,
    *,
    max_seq_len: int | None = None,
    packed: bool = False,
) -> dict[str, bytes]:
    """``encode_shard`` for examples already in columns, checked and packed with numpy:
    ``tokens`` (all ids, example after example; any unsigned integer dtype), per example
    ``lengths_a`` (ids of ``A``), ``lengths`` (``A`` and ``B``) and ``labels``, and
    ``provenance``, ``(examples, 2)`` positions in ``documents`` of A's and B's document (any
    order, repeats and unused refs allowed: ``canonical_documents`` settles them). The pipeline's
    ``ExampleBlock`` is this shape, so a shard of 60,000 examples is packed in milliseconds
    rather than the half second a Python loop over its rows takes. Same checks, same bytes.
    ``packed``: MLM examples (see "MLM examples"): B empty, labels 0, ``documents`` already
    in file order and ``provenance`` their ``(first, last)`` lines."""
    dtype = token_dtype(vocab_size)
    if tokens.dtype.kind != "u":
        raise ValueError(f"token ids must be unsigned integers, got {tokens.dtype}")
    lengths_a, lengths = np.asarray(lengths_a, np.int64), np.asarray(lengths, np.int64)
    labels = np.asarray(labels)
    if not len(lengths):
        raise ValueError("a shard needs at least one example (empty shards are not written)")
    if int(lengths.sum()) != len(tokens):
        raise ValueError(f"the lengths add up to {int(lengths.sum())} ids, tokens holds "
                         f"{len(tokens)}")
    empty = np.flatnonzero((lengths_a <= 0) | (
        (lengths != lengths_a) | (labels != 0) if packed else lengths <= lengths_a))
    if len(empty) and packed:
        raise ValueError(f"example {int(empty[0])}: a packed example is all A, label 0")
    if len(empty):
        number = int(empty[0])
        raise ValueError(f"example {number}: segment "
                         f"{'A' if lengths_a[number] <= 0 else 'B'} is empty")
    bad_labels = np.flatnonzero(labels > 1)
    if len(bad_labels):
        number = int(bad_labels[0])
        raise ValueError(f"example {number}: label must be 0 or 1, got {int(labels[number])}")
    high = int(tokens.max())
    if high >= vocab_size:
        raise ValueError(f"token id {high} outside [0, vocab_size={vocab_size})")
    if max_seq_len is not None:
        specials = SPECIAL_TOKENS_PER_PACKED if packed else SPECIAL_TOKENS_PER_EXAMPLE
        limit = max_seq_len - specials
        too_long = np.flatnonzero(lengths > limit)
        if len(too_long):
            raise ValueError(f"example {int(too_long[0])}: {int(lengths[too_long[0]])} tokens > "
                             f"max_seq_len - {specials} = {limit}")
    if int(lengths.max()) >= 1 << 32:
        raise ValueError("an example has 2**32 tokens or more")
    rows = np.empty(len(lengths), dtype=INDEX_DTYPE)
    rows["offset"] = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    rows["length"] = lengths
    rows["length_a"] = lengths_a
    rows["label"] = labels
    if len(provenance) != len(lengths):
        raise ValueError(f"{len(lengths)} examples but {len(provenance)} rows of provenance "
                         "(one (A's document, B's document) per example)")
    if packed:
        table, lines = packed_documents(documents, provenance)
    else:
        table, lines = canonical_documents(documents, provenance)
    return {
        "tokens.bin": tokens.astype(dtype, copy=False).tobytes(),
        "index.npy": _npy_bytes(rows, INDEX_DTYPE),
        "documents.jsonl": "".join(ref.to_json() + "\n" for ref in table).encode("ascii"),
        "provenance.npy": _npy_bytes(lines, _PROVENANCE_ROW),
    }


# --- manifest ----------------------------------------------------------------------------------

def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ShardInfo:
    name: str
    """The prefix of the shard's files, ``shard_prefix(i)`` for the i-th shard."""
    examples: int
    tokens: int
    documents: int
    """Documents that fed the shard (lines of documents.jsonl)."""
    label_counts: dict[int, int]
    """``{0: examples with label 0, 1: examples with label 1}``."""
    files: dict[str, str]
    """``{"<name>.<suffix>": sha256}`` for each of ``SHARD_SUFFIXES``."""

    def to_obj(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "examples": self.examples,
            "tokens": self.tokens,
            "documents": self.documents,
            "label_counts": {str(label): self.label_counts[label] for label in (0, 1)},
            "files": {name: self.files[name] for name in shard_files(self.name)},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_obj(), indent=2, ensure_ascii=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardInfo:
        info, problems = _shard_from_obj(_loads(text), "shard")
        _raise_problems(problems, "shard info")
        return info  # type: ignore[return-value]

    def problems(self, where: str = "shard", packed: bool = False) -> list[str]:
        """``packed``: the shard holds MLM examples (one segment, any number of documents)."""
        problems = []
        if not _SHARD_NAME.fullmatch(self.name + "."):
            problems.append(f"{where}.name: expected shard-NNNNN, got {self.name!r}")
        if self.examples < 1:
            problems.append(f"{where}.examples: a shard holds at least one example")
        segments = 1 if packed else 2
        if self.tokens < segments * self.examples:
            problems.append(f"{where}.tokens: {self.tokens} < {segments} * examples "
                            f"({self.examples}); every segment has a token")
        if packed and not 1 <= self.documents <= self.tokens:
            problems.append(f"{where}.documents: {self.documents} not in [1, tokens]: every "
                            "document gives a token")
        if packed and self.label_counts.get(1):
            problems.append(f"{where}.label_counts: packed examples all have label 0")
        if not packed and not 1 <= self.documents <= 2 * self.examples:
            problems.append(f"{where}.documents: {self.documents} not in [1, 2 * examples]: an "
                            "example comes from one or two documents")
        if set(self.label_counts) != {0, 1}:
            problems.append(f"{where}.label_counts: expected labels 0 and 1")
        elif sum(self.label_counts.values()) != self.examples:
            problems.append(f"{where}.label_counts: sum {sum(self.label_counts.values())} != "
                            f"examples {self.examples}")
        expected = set(shard_files(self.name))
        if set(self.files) != expected:
            problems.append(f"{where}.files: expected {sorted(expected)}, got {sorted(self.files)}")
        for name, digest in self.files.items():
            if not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
                problems.append(f"{where}.files.{name}: not a sha256 hex digest")
        return problems


def shard_info(prefix: str, encoded: dict[str, bytes], examples: int, tokens: int,
               documents: int) -> ShardInfo:
    """The manifest entry of a shard from ``encode_shard``'s bytes: sha256 of each file and the
    label counts; the counts given are checked against the bytes (ValueError on a mismatch)."""
    if set(encoded) != set(SHARD_SUFFIXES):
        raise ValueError(f"expected the files {SHARD_SUFFIXES}, got {sorted(encoded)}")
    rows = _load_npy_bytes(encoded["index.npy"], INDEX_DTYPE)
    actual_tokens = int(rows["length"].sum(dtype=np.uint64))
    size = len(encoded["tokens.bin"])
    actual_documents = encoded["documents.jsonl"].count(b"\n")
    provenance_rows = len(_load_npy_bytes(encoded["provenance.npy"], _PROVENANCE_ROW))
    if len(rows) != examples or provenance_rows != examples:
        raise ValueError(f"{prefix}: index.npy has {len(rows)} rows, provenance.npy "
                         f"{provenance_rows}, examples={examples}")
    if actual_tokens != tokens or size not in (2 * tokens, 4 * tokens):
        raise ValueError(f"{prefix}: index.npy and tokens.bin ({size} bytes) hold "
                         f"{actual_tokens} tokens, tokens={tokens}")
    if actual_documents != documents:
        raise ValueError(f"{prefix}: documents.jsonl lists {actual_documents} documents, "
                         f"documents={documents}")
    counts = np.bincount(rows["label"], minlength=2)
    return ShardInfo(
        name=prefix,
        examples=examples,
        tokens=tokens,
        documents=documents,
        label_counts={0: int(counts[0]), 1: int(counts[1])},
        files={f"{prefix}.{suffix}": sha256_bytes(encoded[suffix]) for suffix in SHARD_SUFFIXES},
    )


@dataclass(frozen=True)
class ShardManifest:
    objective: str
    max_seq_len: int
    vocab_size: int
    token_dtype: str
    """``"uint16"`` or ``"uint32"``; always ``token_dtype(vocab_size)``."""
    tokenizer_file: str | None
    """None only in an empty set that has no tokenizer (``without_tokenizer``)."""
    tokenizer_sha256: str | None
    special_tokens: dict[str, int]
    examples: int
    tokens: int
    label_counts: dict[int, int]
    shards: tuple[ShardInfo, ...]
    files: dict[str, str] = field(default_factory=dict)
    """``{tokenizer_file: tokenizer_sha256}``; filled in by ``create``."""
    format_version: int = FORMAT_VERSION

    @classmethod
    def create(cls, *, objective: str, max_seq_len: int, vocab_size: int, tokenizer_file: str,
               tokenizer_sha256: str, special_tokens: dict[str, int],
               shards: Sequence[ShardInfo]) -> ShardManifest:
        """A manifest whose totals, dtype and top-level files are derived from the shards;
        ValueError listing every problem if it is not valid."""
        manifest = cls(
            objective=objective,
            max_seq_len=max_seq_len,
            vocab_size=vocab_size,
            token_dtype=token_dtype(vocab_size).name,
            tokenizer_file=tokenizer_file,
            tokenizer_sha256=tokenizer_sha256,
            special_tokens={name: special_tokens[name] for name in SPECIAL_TOKENS
                            if name in special_tokens},
            examples=sum(shard.examples for shard in shards),
            tokens=sum(shard.tokens for shard in shards),
            label_counts={label: sum(shard.label_counts.get(label, 0) for shard in shards)
                          for label in (0, 1)},
            shards=tuple(shards),
            files={tokenizer_file: tokenizer_sha256},
        )
        _raise_problems(manifest.problems(), "manifest")
        return manifest

    @classmethod
    def without_tokenizer(cls, *, objective: str, max_seq_len: int) -> ShardManifest:
        """The manifest of an empty set that has no tokenizer: nothing was kept to train one
        on."""
        manifest = cls(objective=objective, max_seq_len=max_seq_len, vocab_size=0,
                       token_dtype="uint16", tokenizer_file=None, tokenizer_sha256=None,
                       special_tokens={}, examples=0, tokens=0, label_counts={0: 0, 1: 0},
                       shards=())
        _raise_problems(manifest.problems(), "manifest")
        return manifest

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of tokens.bin (little-endian)."""
        return _TOKEN_DTYPES[self.token_dtype]

    def to_obj(self) -> dict[str, Any]:
        obj = {
            "format_version": self.format_version,
            "objective": self.objective,
            "max_seq_len": self.max_seq_len,
            "vocab_size": self.vocab_size,
            "token_dtype": self.token_dtype,
            "tokenizer_file": self.tokenizer_file,
            "tokenizer_sha256": self.tokenizer_sha256,
            "special_tokens": dict(self.special_tokens),
            "examples": self.examples,
            "tokens": self.tokens,
            "label_counts": {str(label): count for label, count in self.label_counts.items()},
            "files": dict(self.files),
            "shards": [shard.to_obj() for shard in self.shards],
        }
        obj["manifest_sha256"] = _manifest_checksum(obj)
        return obj

    def to_json(self) -> str:
        """The canonical manifest.json text."""
        return json.dumps(self.to_obj(), indent=2, ensure_ascii=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardManifest:
        """Parse and validate; ValueError listing every problem as ``field: message``."""
        manifest, problems = _manifest_from_obj(_loads(text))
        _raise_problems(problems, "manifest.json")
        return manifest  # type: ignore[return-value]

    def _no_tokenizer_problems(self) -> list[str]:
        """An empty set without a tokenizer has nothing that a tokenizer would give."""
        expected = {"shards": (), "vocab_size": 0, "token_dtype": "uint16",
                    "tokenizer_sha256": None, "special_tokens": {}, "files": {}}
        return [f"{name}: must be {value!r} when tokenizer_file is null (an empty set without "
                f"a tokenizer), got {getattr(self, name)!r}"
                for name, value in expected.items() if getattr(self, name) != value]

    def _tokenizer_problems(self) -> list[str]:
        tokenizer_file, tokenizer_sha256 = self.tokenizer_file or "", self.tokenizer_sha256 or ""
        problems = []
        try:
            expected_dtype = token_dtype(self.vocab_size).name
        except (TypeError, ValueError) as error:
            problems.append(f"vocab_size: {error}")
        else:
            if self.token_dtype != expected_dtype:
                problems.append(f"token_dtype: vocab_size {self.vocab_size} needs "
                                f"{expected_dtype!r}, got {self.token_dtype!r}")
        if not _plain_file_name(tokenizer_file):
            problems.append(f"tokenizer_file: must be a plain file name other than "
                            f"{MANIFEST_FILE} and shard files, got {tokenizer_file!r}")
        if not _SHA256.fullmatch(tokenizer_sha256):
            problems.append("tokenizer_sha256: not a sha256 hex digest")
        if self.files != {self.tokenizer_file: self.tokenizer_sha256}:
            problems.append("files: expected {tokenizer_file: tokenizer_sha256}")
        if set(self.special_tokens) != set(SPECIAL_TOKENS):
            problems.append(f"special_tokens: expected exactly {list(SPECIAL_TOKENS)}, "
                            f"got {list(self.special_tokens)}")
        for name, token_id in self.special_tokens.items():
            if not 0 <= token_id < self.vocab_size:
                problems.append(f"special_tokens.{name}: id {token_id} outside "
                                f"[0, vocab_size={self.vocab_size})")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            problems.append("special_tokens: two tokens share an id")
        return problems

    def problems(self) -> list[str]:
        """What is inconsistent in this manifest (not in the files it describes)."""
        problems = []
        if self.format_version != FORMAT_VERSION:
            problems.append(_version_problem(self.format_version))
        if self.objective not in OBJECTIVES:
            problems.append(f"objective: expected one of {OBJECTIVES}, got {self.objective!r}")
        if not SPECIAL_TOKENS_PER_EXAMPLE + 2 <= self.max_seq_len <= MAX_SEQ_LEN_LIMIT:
            problems.append(f"max_seq_len: must be in [5, {MAX_SEQ_LEN_LIMIT}], "
                            f"got {self.max_seq_len}")
        if self.tokenizer_file is None:
            problems.extend(self._no_tokenizer_problems())
        else:
            problems.extend(self._tokenizer_problems())
        for number, shard in enumerate(self.shards):
            where = f"shards[{number}]"
            problems.extend(shard.problems(where, self.objective == PACKED_OBJECTIVE))
            if shard.name != shard_prefix(number):
                problems.append(f"{where}.name: expected {shard_prefix(number)!r} (shards are "
                                f"numbered without gaps), got {shard.name!r}")
        for total in ("examples", "tokens"):
            summed = sum(getattr(shard, total) for shard in self.shards)
            if getattr(self, total) != summed:
                problems.append(f"{total}: {getattr(self, total)} != sum over shards {summed}")
        summed_labels = {label: sum(shard.label_counts.get(label, 0) for shard in self.shards)
                         for label in (0, 1)}
        if self.label_counts != summed_labels:
            problems.append(f"label_counts: {self.label_counts} != sum over shards "
                            f"{summed_labels}")
        return problems


def _version_problem(version: int) -> str:
    older = (" (format 1 named a shard's documents by id only, without per-example provenance: "
             "write the shards again)" if version == 1 else "")
    return f"format_version: this reader knows {FORMAT_VERSION}, got {version}{older}"


def _plain_file_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not (
        name in (MANIFEST_FILE, ".", "..") or _SHARD_NAME.match(name))


def _manifest_checksum(obj: dict[str, Any]) -> str:
    body = {key: value for key, value in obj.items() if key != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return sha256_bytes(text.encode("utf-8"))


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"not valid JSON: {error}") from None


def _raise_problems(problems: list[str], what: str) -> None:
    if problems:
        raise ValueError(f"invalid {what}:\n  " + "\n  ".join(problems))


class _Fields:
    """Typed field access on a parsed JSON object, collecting problems instead of raising."""

    def __init__(self, obj: Any, where: str, problems: list[str], keys: Sequence[str]):
        self.obj = obj if isinstance(obj, dict) else {}
        self.where = where
        self.problems = problems
        if not isinstance(obj, dict):
            problems.append(f"{where}: expected a JSON object")
            return
        for key in obj:
            if key not in keys:
                problems.append(f"{self._name(key)}: unknown field")
        for key in keys:
            if key not in obj:
                problems.append(f"{self._name(key)}: missing")

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type) -> Any:
        if key not in self.obj:
            return None
        value = self.obj[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.problems.append(f"{self._name(key)}: expected an integer, got {value!r}")
            return None
        if kind is int and value < 0:
            self.problems.append(f"{self._name(key)}: must be 0 or more, got {value}")
            return None
        if kind is not int and not isinstance(value, kind):
            self.problems.append(f"{self._name(key)}: expected {kind.__name__}, got {value!r}")
            return None
        return value

    def get_nullable(self, key: str, kind: type) -> Any:
        """``get``, where a JSON null is a value (None) rather than a problem."""
        return None if self.obj.get(key) is None else self.get(key, kind)

    def counts(self, key: str) -> dict[int, int] | None:
        value = self.get(key, dict)
        if value is None:
            return None
        inner = _Fields(value, self._name(key), self.problems, ("0", "1"))
        zero, one = inner.get("0", int), inner.get("1", int)
        return None if zero is None or one is None else {0: zero, 1: one}

    def digests(self, key: str) -> dict[str, str] | None:
        value = self.get(key, dict)
        if value is None:
            return None
        for name, digest in value.items():
            if not isinstance(digest, str):
                self.problems.append(f"{self._name(key)}.{name}: expected a sha256 string")
                return None
        return value


_SHARD_KEYS = ("name", "examples", "tokens", "documents", "label_counts", "files")
_MANIFEST_KEYS = ("format_version", "objective", "max_seq_len", "vocab_size", "token_dtype",
                  "tokenizer_file", "tokenizer_sha256", "special_tokens", "examples", "tokens",
                  "label_counts", "files", "shards", "manifest_sha256")


def _shard_from_obj(obj: Any, where: str, packed: bool = False,
                    ) -> tuple[ShardInfo | None, list[str]]:
    problems: list[str] = []
    fields = _Fields(obj, where, problems, _SHARD_KEYS)
    values = {
        "name": fields.get("name", str),
        "examples": fields.get("examples", int),
        "tokens": fields.get("tokens", int),
        "documents": fields.get("documents", int),
        "label_counts": fields.counts("label_counts"),
        "files": fields.digests("files"),
    }
    if problems or any(value is None for value in values.values()):
        return None, problems
    info = ShardInfo(**values)
    return info, info.problems(where, packed)


def _manifest_from_obj(obj: Any) -> tuple[ShardManifest | None, list[str]]:
    """The manifest and its problems; the manifest is None when it could not be built at all."""
    problems: list[str] = []
    fields = _Fields(obj, "", problems, _MANIFEST_KEYS)
    values = {
        "format_version": fields.get("format_version", int),
        "objective": fields.get("objective", str),
        "max_seq_len": fields.get("max_seq_len", int),
        "vocab_size": fields.get("vocab_size", int),
        "token_dtype": fields.get("token_dtype", str),
        "special_tokens": fields.get("special_tokens", dict),
        "examples": fields.get("examples", int),
        "tokens": fields.get("tokens", int),
        "label_counts": fields.counts("label_counts"),
        "files": fields.digests("files"),
    }
    version = values["format_version"]
    if version is not None and version != FORMAT_VERSION:  # its other fields mean other things
        return None, [_version_problem(version)]
    # null in an empty set without a tokenizer (checked by ``ShardManifest.problems``)
    nullable = {key: fields.get_nullable(key, str)
                for key in ("tokenizer_file", "tokenizer_sha256")}
    checksum = fields.get("manifest_sha256", str)
    special = values["special_tokens"]
    if special is not None:
        for name, token_id in special.items():
            if isinstance(token_id, bool) or not isinstance(token_id, int):
                problems.append(f"special_tokens.{name}: expected an integer id, got {token_id!r}")
    shards: list[ShardInfo] = []
    raw_shards = fields.get("shards", list)
    for number, raw in enumerate(raw_shards or []):
        shard, shard_problems = _shard_from_obj(raw, f"shards[{number}]",
                                                values["objective"] == PACKED_OBJECTIVE)
        problems.extend(shard_problems)
        if shard is not None:
            shards.append(shard)
    if problems or any(value is None for value in values.values()) or raw_shards is None:
        return None, problems
    # What later checks cannot work without (or must not touch) is fatal here.
    if values["token_dtype"] not in _TOKEN_DTYPES:
        return None, [f"token_dtype: expected one of {list(_TOKEN_DTYPES)}, "
                      f"got {values['token_dtype']!r}"]
    tokenizer_file = nullable["tokenizer_file"]
    if tokenizer_file is not None and not _plain_file_name(tokenizer_file):
        return None, [f"tokenizer_file: must be a plain file name other than {MANIFEST_FILE} "
                      f"and shard files, got {tokenizer_file!r}"]
    manifest = ShardManifest(shards=tuple(shards), **values, **nullable)
    problems.extend(manifest.problems())
    if checksum is not None and checksum != _manifest_checksum(obj):
        problems.append("manifest_sha256: does not match the manifest's content "
                        "(edited or corrupted)")
    return manifest, problems


def special_tokens_from_model(model: str | os.PathLike | bytes) -> dict[str, int]:
    """``{"[PAD]": id, ...}`` from a SentencePiece model (a path or its bytes): [UNK] is the
    model's unk id, the others must be pieces of the model (``user_defined_symbols``)."""
    processor = _load_sentencepiece(model)
    ids = {}
    for name in SPECIAL_TOKENS:
        token_id = processor.unk_id() if name == "[UNK]" else processor.piece_to_id(name)
        if name != "[UNK]" and token_id == processor.unk_id():
            raise ValueError(f"the tokenizer has no piece {name}; train it with "
                             f"user_defined_symbols={[n for n in SPECIAL_TOKENS if n != '[UNK]']}")
        ids[name] = token_id
    return ids


def _load_sentencepiece(model: str | os.PathLike | bytes):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    if isinstance(model, bytes):
        processor.LoadFromSerializedProto(model)
    else:
        processor.Load(os.fspath(model))
    return processor




# --- writing a folder -------------------------------------------------------------------------

def write_shard_set(directory: str | os.PathLike,
                    examples: Sequence[tuple[Sequence[int], Sequence[int], int]],
                    tokenizer_model: bytes, *, objective: str = "sop", max_seq_len: int = 128,
                    examples_per_shard: int | None = None,
                    example_documents: Sequence[tuple[DocumentRef, DocumentRef]] | None = None,
                    ) -> ShardManifest:
    """Write ``examples`` as a complete shard folder on local disk (plain writes, manifest
    last): for tools, tests and benchmarks. Curation writes through Beam instead
    (``pipeline.shards``), atomically and to any filesystem. ``example_documents``: (A's
    document, B's document) per example; by default a stand-in document per shard (always, for
    ``objective="mlm"``, whose examples are ``(ids, [], 0)``)."""
    os.makedirs(directory, exist_ok=True)
    special_tokens = special_tokens_from_model(tokenizer_model)
    vocab_size = _piece_count(tokenizer_model)
    per_shard = examples_per_shard or max(len(examples), 1)
    infos = []
    for number, start in enumerate(range(0, len(examples), per_shard)):
        chunk = examples[start:start + per_shard]
        stand_in = DocumentRef(f"doc-{number}", "write_shard_set", number)
        documents = (example_documents[start:start + per_shard] if example_documents
                     else [(stand_in, stand_in)] * len(chunk))
        prefix = shard_prefix(number)
        if objective == PACKED_OBJECTIVE:
            encoded = _encode_packed_stand_in(chunk, stand_in, vocab_size, max_seq_len)
        else:
            encoded = encode_shard(chunk, documents, vocab_size, max_seq_len=max_seq_len)
        tokens = sum(len(a) + len(b) for a, b, _ in chunk)
        infos.append(shard_info(prefix, encoded, len(chunk), tokens,
                                len({ref for pair in documents for ref in pair})))
        for suffix, data in encoded.items():
            with open(os.path.join(directory, f"{prefix}.{suffix}"), "wb") as handle:
                handle.write(data)
    tokenizer_file = "tokenizer.model"
    with open(os.path.join(directory, tokenizer_file), "wb") as handle:
        handle.write(tokenizer_model)
    manifest = ShardManifest.create(
        objective=objective, max_seq_len=max_seq_len, vocab_size=vocab_size,
        tokenizer_file=tokenizer_file, tokenizer_sha256=sha256_bytes(tokenizer_model),
        special_tokens=special_tokens, shards=infos)
    with open(os.path.join(directory, MANIFEST_FILE), "w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
    return manifest


def _encode_packed_stand_in(chunk: Sequence[tuple[Sequence[int], Sequence[int], int]],
                            document: DocumentRef, vocab_size: int,
                            max_seq_len: int) -> dict[str, bytes]:
    """A packed (mlm) shard of ``(ids, [], 0)`` examples, all from one stand-in document."""
    lengths = np.array([len(a) + len(b) for a, b, _ in chunk], np.int64)
    tokens = np.concatenate([np.asarray(a, np.int64) for a, _, _ in chunk]).astype(np.uint32)
    return encode_shard_columns(
        tokens, np.array([len(a) for a, _, _ in chunk], np.int64), lengths,
        np.array([label for _, _, label in chunk], np.uint8), (document,),
        np.zeros((len(chunk), 2), np.int64), vocab_size, max_seq_len=max_seq_len, packed=True)


def _piece_count(tokenizer_model: bytes) -> int:
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=tokenizer_model).get_piece_size()
