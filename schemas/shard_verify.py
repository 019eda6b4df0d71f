"""Checking a token shard folder against the format (``verify_shards``), file by file.

The format is specified in ``schemas.shard_format``; every check here is a rule stated there.
Big files are read in chunks of ``_CHUNK_BYTES``, each once.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator

import numpy as np

from winnow.schemas import storage
from winnow.schemas.shard_format import (
    _CHUNK_BYTES,
    _PROVENANCE_ROW,
    INDEX_DTYPE,
    MANIFEST_FILE,
    PACKED_OBJECTIVE,
    SPECIAL_TOKENS_PER_PACKED,
    DocumentRef,
    ShardInfo,
    ShardManifest,
    _load_sentencepiece,
    _loads,
    _manifest_from_obj,
    _npy_header,
    packed_provenance_problem,
    shard_files,
    special_tokens_per_example,
)


def verify_shards(directory: str | os.PathLike) -> list[str]:
    """Every problem of a shard folder, as ``"FILE: message"``; [] when it is valid.

    Checks the manifest (readable, valid, canonical, checksum), every listed file (present,
    sha256), tokens.bin (size, every id < vocab_size), index.npy (header, rows, contiguous
    in-bounds offsets, 1 <= length_a < length <= max_seq_len - 3, labels, label counts),
    documents.jsonl (canonical refs, sorted and distinct, count), provenance.npy (header, rows,
    every line number names a line of documents.jsonl, every line is named), the tokenizer (hash,
    piece count, special token ids) and that the folder holds no unlisted file. Big files are
    read in chunks, each once. An empty set (no shards; ``shard_format``) is valid.
    """
    directory = os.fspath(directory)
    try:
        raw = storage.read_bytes(storage.join(directory, MANIFEST_FILE))
    except OSError as error:
        return [f"{MANIFEST_FILE}: cannot be read ({error.strerror or error})"]
    try:
        manifest, manifest_problems = _manifest_from_obj(_loads(raw))
    except ValueError as error:
        return [f"{MANIFEST_FILE}: {error}"]
    problems = [f"{MANIFEST_FILE}: {problem}" for problem in manifest_problems]
    if manifest is None:
        return problems
    if not manifest_problems and raw != manifest.to_json().encode("utf-8"):
        problems.append(f"{MANIFEST_FILE}: not byte-identical to its canonical serialization "
                        "(ShardManifest.to_json)")

    listed = {MANIFEST_FILE, manifest.tokenizer_file} - {None}  # an empty set may have none
    for shard in manifest.shards:
        listed.update(shard.files)
        tokens_file, index_file, documents_file, provenance_file = shard_files(shard.name)
        problems.extend(_check_tokens(directory, tokens_file, shard, manifest))
        problems.extend(_check_index(directory, index_file, shard, manifest))
        packed = manifest.objective == PACKED_OBJECTIVE
        problems.extend(_check_documents(directory, documents_file, shard, packed))
        problems.extend(_check_provenance(directory, provenance_file, shard, packed))
    if manifest.tokenizer_file is not None:
        problems.extend(_check_tokenizer(directory, manifest))
    try:
        present = storage.listdir(directory)
    except OSError as error:
        present = []
        problems.append(f"{directory}: cannot be listed ({error})")
    for name in present:
        if name not in listed:
            problems.append(f"{name}: not listed in {MANIFEST_FILE}")
    return problems


def _chunks(directory: str, name: str, problems: list[str], digest,
            chunk_bytes: int = _CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes in chunks, each also fed to ``digest``; a missing file is a problem."""
    path = storage.join(directory, name)
    try:
        handle = storage.open_read(path)
    except OSError as error:
        problems.append(f"{name}: missing ({error.strerror or error})")
        return
    with handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
            yield chunk


def _check_digest(name: str, digest, expected: str, problems: list[str]) -> None:
    actual = digest.hexdigest()
    if actual != expected:
        problems.append(f"{name}: sha256 {actual} does not match the manifest's {expected}")


def _check_tokens(directory: str, name: str, shard: ShardInfo,
                  manifest: ShardManifest) -> list[str]:
    problems: list[str] = []
    dtype = manifest.dtype
    digest = hashlib.sha256()
    size = 0
    largest = -1
    found = False
    for chunk in _chunks(directory, name, problems, digest):
        found = True
        size += len(chunk)
        usable = len(chunk) - len(chunk) % dtype.itemsize  # only the last chunk can be ragged
        if usable:
            largest = max(largest, int(np.frombuffer(chunk, dtype=dtype, count=usable
                                                     // dtype.itemsize).max()))
    if not found and problems:
        return problems
    _check_digest(name, digest, shard.files[name], problems)
    expected = shard.tokens * dtype.itemsize
    if size != expected:
        problems.append(f"{name}: {size} bytes, expected {shard.tokens} tokens of "
                        f"{manifest.token_dtype} = {expected} bytes")
    if largest >= manifest.vocab_size:
        problems.append(f"{name}: token id {largest} >= vocab_size {manifest.vocab_size}")
    return problems


class _NpyScan:
    """One pass over a ``.npy`` file of ``count`` rows of ``row``: ``rows()`` yields its rows in
    chunks (every byte hashed, also after a wrong header); ``problems(sha256)`` then gives the
    file's own problems: missing, sha256, header, trailing bytes, row count."""

    def __init__(self, directory: str, name: str, row: np.dtype, row_name: str, count: int):
        self.path = storage.join(directory, name)
        self.name, self.row, self.row_name, self.count = name, row, row_name, count
        self.digest = hashlib.sha256()
        self.missing: str | None = None
        self.header_ok = False
        self.rows_read = self.trailing = 0
        self.header_problem = ""

    def rows(self) -> Iterator[np.ndarray]:
        try:
            handle = storage.open_read(self.path)
        except OSError as error:
            self.missing = f"{self.name}: missing ({error.strerror or error})"
            return
        header = _npy_header(self.row, self.count)
        with handle:
            head = handle.read(len(header))
            self.digest.update(head)
            self.header_ok = head == header
            if not self.header_ok:
                head += handle.read(1 << 16)
                self.header_problem = (f"{self.name}: not the .npy 1.0 header of {self.count} "
                                       f"rows of {self.row_name} ({_describe_npy(head)})")
                self.digest.update(head[len(header):])
            step = max(_CHUNK_BYTES // self.row.itemsize, 1) * self.row.itemsize
            while chunk := handle.read(step):
                self.digest.update(chunk)
                if self.header_ok:
                    self.trailing = len(chunk) % self.row.itemsize  # only in the last chunk
                    rows = np.frombuffer(chunk, dtype=self.row,
                                         count=len(chunk) // self.row.itemsize)
                    if len(rows):
                        yield rows
                        self.rows_read += len(rows)

    def problems(self, sha256: str, content: list[str]) -> list[str]:
        """The file's problems, with ``content`` (what the caller found in the rows, at most 20
        shown) after the sha256 and header ones."""
        if self.missing:
            return [self.missing]
        problems: list[str] = []
        _check_digest(self.name, self.digest, sha256, problems)
        if self.header_problem:
            problems.append(self.header_problem)
        problems.extend(content[:20])
        if len(content) > 20:
            problems.append(f"{self.name}: ... and {len(content) - 20} more row problems")
        if self.trailing:
            problems.append(f"{self.name}: {self.trailing} bytes after the last whole row")
        if self.header_ok and self.rows_read != self.count:
            problems.append(f"{self.name}: {self.rows_read} rows, the manifest says "
                            f"{self.count} examples")
        return problems

    @property
    def complete(self) -> bool:
        """Every row was read and checked."""
        return self.header_ok and not self.trailing and self.rows_read == self.count


def _check_index(directory: str, name: str, shard: ShardInfo,
                 manifest: ShardManifest) -> list[str]:
    scan = _NpyScan(directory, name, INDEX_DTYPE, "INDEX_DTYPE", shard.examples)
    specials = special_tokens_per_example(manifest.objective)
    limit = manifest.max_seq_len - specials
    content: list[str] = []
    next_offset = 0
    labels = np.zeros(2, dtype=np.int64)
    for rows in scan.rows():
        next_offset = _check_rows(rows, scan.rows_read, next_offset, (limit, specials),
                                  shard.tokens, name, content)
        labels += np.bincount(np.minimum(rows["label"], 2), minlength=3)[:2]
    problems = scan.problems(shard.files[name], content)
    if not scan.complete:
        return problems
    if next_offset != shard.tokens:
        problems.append(f"{name}: the examples cover {next_offset} tokens, the manifest says "
                        f"{shard.tokens}")
    counted = {0: int(labels[0]), 1: int(labels[1])}
    if counted != shard.label_counts:
        problems.append(f"{name}: label counts {counted} != the manifest's {shard.label_counts}")
    return problems


def _check_provenance(directory: str, name: str, shard: ShardInfo,
                      packed: bool = False) -> list[str]:
    """Every row names two lines of documents.jsonl, and every line is named; ``packed``
    (mlm): the rows are (first, last) spans running forward over all the lines."""
    scan = _NpyScan(directory, name, _PROVENANCE_ROW, "two <u4", shard.examples)
    content: list[str] = []
    named = np.zeros(shard.documents, dtype=bool)
    spans = []
    for rows in scan.rows():
        if packed:
            spans.append(rows.copy())
        outside = np.flatnonzero(rows.max(axis=1) >= shard.documents)
        for position in outside[:5].tolist():
            content.append(f"{name}: row {scan.rows_read + position}: names line "
                           f"{int(rows[position].max())}, documents.jsonl has {shard.documents}")
        lines = rows.reshape(-1)
        named[lines[lines < shard.documents]] = True
    problems = scan.problems(shard.files[name], content)
    if scan.complete and packed and spans:
        span_problem = packed_provenance_problem(np.concatenate(spans), shard.documents)
        problems += [f"{name}: {span_problem}"] if span_problem else []
    if scan.complete and not packed and not named.all():  # packed: the spans cover every line
        problems.append(f"{name}: no example names line {int(np.argmin(named))} of "
                        f"documents.jsonl ({int((~named).sum())} lines unnamed)")
    return problems


def _check_rows(rows: np.ndarray, first: int, expected_offset: int, limits: tuple[int, int],
                tokens: int, name: str, content: list[str]) -> int:
    """Appends the problems of ``rows`` (global row numbers from ``first``) to ``content``;
    returns the offset the next row must have. ``limits``: (longest example, special tokens
    per example); with 2 (mlm) an example is all A and has label 0."""
    limit, specials = limits
    packed = specials == SPECIAL_TOKENS_PER_PACKED
    offsets = rows["offset"].astype(np.int64)
    lengths = rows["length"].astype(np.int64)
    lengths_a = rows["length_a"].astype(np.int64)
    starts = np.concatenate([[expected_offset], offsets[:-1] + lengths[:-1]])
    checks = (
        (offsets != starts, "offset {offset} is not where the previous example ends "
         "(offsets start at 0 and are contiguous)"),
        (offsets + lengths > tokens, f"offset {{offset}} + length {{length}} runs past the "
         f"{tokens} tokens of the shard"),
        (lengths_a < 1, "length_a {length_a}: segment A is empty"),
        (lengths_a >= lengths, "length_a {length_a} >= length {length}: segment B is empty")
        if not packed else
        (lengths_a != lengths, "length_a {length_a} != length {length}: a packed example is "
         "all A"),
        (lengths > limit, f"length {{length}} > max_seq_len - {specials} = {limit}"),
        (rows["label"] > (0 if packed else 1),
         "label {label} not in " + ("{{0}} (packed)" if packed else "{{0, 1}}")),
    )
    for bad, message in checks:
        for position in np.flatnonzero(bad)[:5].tolist():
            row = rows[position]
            content.append(f"{name}: row {first + position}: " + message.format(
                offset=int(row["offset"]), length=int(row["length"]),
                length_a=int(row["length_a"]), label=int(row["label"])))
    return int(offsets[-1] + lengths[-1])


def _describe_npy(data: bytes) -> str:
    try:
        handle = io.BytesIO(data)
        version = np.lib.format.read_magic(handle)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(handle)
        return f"found version {version}, shape {shape}, dtype {dtype}, fortran {fortran}"
    except Exception as error:  # any parse failure is the description
        return f"unreadable: {error}"


def _check_documents(directory: str, name: str, shard: ShardInfo,
                     packed: bool = False) -> list[str]:
    """Canonical refs, sorted and distinct; ``packed`` (mlm): in use order, distinct."""
    problems: list[str] = []
    digest = hashlib.sha256()
    content: list[str] = []
    count = 0
    previous: DocumentRef | set | None = set() if packed else None
    pending = b""
    found = False
    for chunk in _chunks(directory, name, problems, digest):
        found = True
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            count += 1
            if len(content) < 10:
                previous = _check_document_line(line, previous, f"{name}: line {count}", content)
    if not found and problems:
        return problems
    _check_digest(name, digest, shard.files[name], problems)
    problems.extend(content)
    if pending:
        problems.append(f"{name}: the last line has no newline")
    if count != shard.documents:
        problems.append(f"{name}: {count} lines, the manifest says {shard.documents} documents")
    return problems


def _check_document_line(line: bytes, previous: DocumentRef | None, where: str,
                         content: list[str]) -> DocumentRef | None:
    """Appends what is wrong with ``line`` (after the line holding ``previous``) to ``content``;
    returns its ref (``previous`` when it has none)."""
    try:
        ref = DocumentRef.from_json(line)
    except ValueError as error:
        content.append(f"{where}: {error}")
        return previous
    if ref.to_json().encode("ascii") != line:
        content.append(f"{where}: not the canonical serialization (DocumentRef.to_json)")
    if isinstance(previous, set):  # packed: any order, each once
        if ref in previous:
            content.append(f"{where}: the document is listed twice")
        previous.add(ref)
        return previous
    if previous is not None and ref <= previous:
        content.append(f"{where}: refs are not sorted and distinct")
    return ref


def _check_tokenizer(directory: str, manifest: ShardManifest) -> list[str]:
    name = manifest.tokenizer_file
    problems: list[str] = []
    digest = hashlib.sha256()
    model = b"".join(_chunks(directory, name, problems, digest))
    if problems:
        return problems
    _check_digest(name, digest, manifest.tokenizer_sha256, problems)
    if problems:
        return problems
    try:
        processor = _load_sentencepiece(model)
    except Exception as error:  # sentencepiece raises RuntimeError/OSError variants
        return [f"{name}: not a SentencePiece model ({error})"]
    if processor.get_piece_size() != manifest.vocab_size:
        problems.append(f"{name}: {processor.get_piece_size()} pieces, the manifest's "
                        f"vocab_size is {manifest.vocab_size}")
    for token, token_id in manifest.special_tokens.items():
        expected = processor.unk_id() if token == "[UNK]" else processor.piece_to_id(token)
        if token != "[UNK]" and expected == processor.unk_id():
            problems.append(f"{name}: has no piece {token}")
        elif expected != token_id:
            problems.append(f"{name}: {token} is id {expected}, the manifest says {token_id}")
    return problems

