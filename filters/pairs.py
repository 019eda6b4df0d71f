"""BERT/ALBERT sentence-pair examples from tokenized sentences.

The algorithm is google-research/bert ``create_pretraining_data.py``
(``create_instances_from_document`` and ``truncate_seq_pair``), with the sentence-order
prediction (SOP) objective of ALBERT, minus ALBERT's bug:

* Per document, the target length is ``max_tokens`` (``max_seq_len - 3``: room for
  ``[CLS] A [SEP] B [SEP]``), or, with probability ``short_seq_prob``, a random length in
  ``[2, max_tokens]``. As in BERT this is drawn once per document, not per chunk.
* Whole sentences accumulate into a chunk until its token count reaches the target or the
  document ends. ``A`` is a random number (1 .. len(chunk) - 1) of the chunk's leading
  sentences, ``B`` the rest; the pair is then truncated to ``max_tokens`` by ``truncate_pair``
  (the longer side loses a token from a random end until the pair fits).
* **SOP** (``sop_examples``): with probability 0.5 ``A`` and ``B`` are swapped (label 1), else
  kept in order (label 0). A chunk of one sentence cannot make two segments: ALBERT then takes
  ``B`` from a random *other document* and labels the pair 1 (albert issue 234), which mixes
  NSP-style negatives, detectable from topic alone, into SOP data. Here such a chunk is skipped
  and counted in ``PairStats.skipped_single_segment``.
* **NSP** (``nsp_examples``): with probability 0.5, and only when the group holds another
  document, ``B`` is taken from a random other document of the group, from a random sentence on,
  until it fills the rest of the target (label 1), and the chunk's sentences that did not go
  into ``A`` return to the stream (BERT's ``i -= num_unused_segments``); otherwise ``B`` is the
  rest of the chunk (label 0). A one-sentence chunk is skipped as for SOP by default. BERT
  instead always gives it a random ``B``, label 1; ``nsp_random_single=True`` does that (counted
  in ``forced_random_next``). On random documents of 2-30 sentences of 3-40 tokens with
  ``max_seq_len=128``, that turns 15% of the examples into forced negatives and 58% of all
  labels into 1, and "``A`` is one whole sentence" becomes a cue for label 1.

Every example has ``1 <= len(A)``, ``1 <= len(B)`` and ``len(A) + len(B) <= max_tokens``.
Sentences with no tokens are ignored.

* **MLM** (``packed_examples``, objective ``"mlm"``): no pair at all, RoBERTa's FULL-SENTENCES.
  A group's documents, in ref order, are one stream of whole sentences cut into examples of at
  most ``max_seq_len - 2`` ids (``[CLS] ... [SEP]``), with the [SEP] id between two documents
  of one example; a sentence longer than that is cut. Each example lists the documents it
  packs (``PackedBlock``: a (first, last) span of its documents, in packing order).

Provenance: documents are named by ``DocumentRef`` (id, input file, position), unique even when
inputs repeat ids, and every example records the document of ``A`` and the document of ``B``
(the same for SOP and NSP label 0, the random other document for NSP label 1).

Determinism: each document draws from its own ``random.Random`` seeded with the xxhash of
``(seed, doc id)`` (``document_rng``; the id and not the whole ref, so that moving the input
files does not change the examples), and NSP groups are sorted by ref before anything is drawn,
so the examples depend only on the inputs and the seed - not on the order documents arrive in,
the runner or the number of workers. (``random.Random``'s ``random`` and ``randrange``-based
methods have produced the same sequences for a seed since Python 3.2.)
"""

from __future__ import annotations

import array
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import xxhash

from winnow.filters.base import check_fraction
from winnow.schemas.shard_format import (
    MAX_SEQ_LEN_LIMIT,
    UINT32_ARRAY_CODE,
    DocumentRef,
    canonical_documents,
)

OBJECTIVES = ("sop", "nsp", "mlm")
PACKINGS = ("full_sentences", "fill")


@dataclass(frozen=True)
class PairsConfig:
    """How sentence-pair examples are cut from tokenized documents."""

    objective: str = "sop"
    """``"sop"`` (ALBERT sentence-order prediction), ``"nsp"`` (BERT next-sentence
    prediction, random ``B`` from another document of the group) or ``"mlm"`` (RoBERTa
    FULL-SENTENCES: no pair, full sentences packed up to max_seq_len across documents, a [SEP]
    between documents; ``short_seq_prob`` and ``nsp_random_single`` do not apply)."""
    max_seq_len: int = 128
    """Sequence length including ``[CLS] A [SEP] B [SEP]``: ``A`` and ``B`` together hold at most
    ``max_seq_len - 3`` tokens. 5 to 8192 (``schemas.shard_format.MAX_SEQ_LEN_LIMIT``)."""
    short_seq_prob: float = 0.1
    """Probability that a document's target length is a random length in
    ``[2, max_seq_len - 3]`` instead of the full length (BERT's default, 0.1)."""
    seed: int = 12345
    """Seed of every document's random generator (mixed with the document id)."""
    nsp_random_single: bool = False
    """NSP only: give a one-sentence chunk a random ``B`` (label 1), as BERT does, instead of
    skipping it. Skews labels towards 1; see the module docstring."""
    packing: str = "full_sentences"
    """mlm only: ``"full_sentences"`` (RoBERTa: an example ends before the sentence that would
    overflow it, so it stops short of ``max_seq_len``) or ``"fill"`` (MosaicBERT's and
    cramming's concatenate-and-chunk: every example but the last of a shard group is exactly
    ``max_seq_len``, sentences cut at the row's end and continued in the next example)."""

    def errors(self) -> list[str]:
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not isinstance(self.max_seq_len, int) or isinstance(self.max_seq_len, bool) or not (
            5 <= self.max_seq_len <= MAX_SEQ_LEN_LIMIT
        ):
            problems.append(
                f"max_seq_len must be an integer in [5, {MAX_SEQ_LEN_LIMIT}] (two special tokens"
                f" and a token for each segment, plus [CLS]; at most the trainer's limit, see"
                f" schemas.shard_format.MAX_SEQ_LEN_LIMIT), got {self.max_seq_len!r}"
            )
        problems += check_fraction("short_seq_prob", self.short_seq_prob)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.nsp_random_single, bool):
            problems.append(
                f"nsp_random_single must be true or false, got {self.nsp_random_single!r}"
            )
        if self.packing not in PACKINGS:
            problems.append(f"packing must be one of {PACKINGS}, got {self.packing!r}")
        return problems

    @property
    def max_tokens(self) -> int:
        """Tokens of ``A`` and ``B`` together: ``max_seq_len - 3``."""
        return self.max_seq_len - 3


@dataclass(frozen=True)
class PairExample:
    """One sentence pair, before masking and special tokens. The segments are ``array("I")``
    of ids (any sequence of ints is accepted): joined from sentence arrays by memcpy, they never
    become one Python int per token."""

    tokens_a: Sequence[int]
    tokens_b: Sequence[int]
    label: int
    """0: original order (SOP) / true next (NSP); 1: swapped (SOP) / random ``B`` (NSP)."""
    doc_a: DocumentRef
    """The document ``A`` came from."""
    doc_b: DocumentRef
    """The document ``B`` came from: ``doc_a`` but for an NSP random ``B``."""
    index: int
    """0-based number of the example within ``doc_a`` (ordering key)."""


@dataclass(frozen=True, eq=False)
class ExampleBlock:
    """Consecutive examples in columns, so that thousands move, slice and join as a few arrays
    instead of thousands of objects. Row ``i`` is ``tokens[starts[i]:starts[i] + lengths[i]]``,
    ``A`` being its first ``lengths_a[i]`` ids; shapes ``(tokens,)`` uint32 and ``(rows,)``.
    Provenance is held as the shard files hold it (``schemas.shard_format``): ``documents`` once
    each, and two uint32 positions in it per row, so a block carries a ref per document, not per
    row."""

    tokens: np.ndarray
    lengths_a: np.ndarray
    """int64: ids of ``A`` in each example."""
    lengths: np.ndarray
    """int64: ids of ``A`` and ``B`` together."""
    labels: np.ndarray
    """uint8: 0 or 1."""
    documents: tuple[DocumentRef, ...]
    """The documents the rows came from, sorted, each once, each named by a row."""
    provenance: np.ndarray
    """uint32, ``(rows, 2)``: positions in ``documents`` of each row's ``A`` and ``B``
    document."""

    @classmethod
    def of(cls, examples: Sequence[PairExample]) -> ExampleBlock:
        tokens = array.array(UINT32_ARRAY_CODE)
        for example in examples:
            tokens.extend(example.tokens_a)
            tokens.extend(example.tokens_b)
        lengths_a = np.fromiter((len(e.tokens_a) for e in examples), np.int64, len(examples))
        lengths_b = np.fromiter((len(e.tokens_b) for e in examples), np.int64, len(examples))
        labels = np.fromiter((e.label for e in examples), np.uint8, len(examples))
        documents = [ref for e in examples for ref in (e.doc_a, e.doc_b)]
        return cls(np.frombuffer(tokens, np.uint32), lengths_a, lengths_a + lengths_b, labels,
                   *canonical_documents(documents, np.arange(len(documents)).reshape(-1, 2)))

    @classmethod
    def concat(cls, blocks: Sequence[ExampleBlock]) -> ExampleBlock:
        if not blocks:
            return cls.of([])
        firsts = np.cumsum([0] + [len(b.documents) for b in blocks[:-1]])
        provenance = np.concatenate([b.provenance.astype(np.int64) + first
                                     for b, first in zip(blocks, firsts.tolist(), strict=True)])
        documents, rows = canonical_documents(
            [ref for b in blocks for ref in b.documents], provenance)
        return cls(np.concatenate([b.tokens for b in blocks]),
                   np.concatenate([b.lengths_a for b in blocks]),
                   np.concatenate([b.lengths for b in blocks]),
                   np.concatenate([b.labels for b in blocks]), documents, rows)

    def __len__(self) -> int:
        return len(self.lengths)

    def documents_with_a(self) -> set[DocumentRef]:
        """The documents that gave an example its ``A`` (the shards stage's documents_out; the
        others gave no example)."""
        return {self.documents[position] for position in np.unique(self.provenance[:, 0])}

    def _starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths

    def slice(self, start: int, stop: int) -> ExampleBlock:
        """Rows ``start`` to ``stop`` (exclusive)."""
        starts = self._starts()
        first = int(starts[start]) if start < len(self) else int(self.lengths.sum())
        last = int(starts[stop - 1] + self.lengths[stop - 1]) if stop > start else first
        return ExampleBlock(self.tokens[first:last], self.lengths_a[start:stop],
                            self.lengths[start:stop], self.labels[start:stop],
                            *canonical_documents(self.documents, self.provenance[start:stop]))

    def rows(self) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """``(ids of A, ids of B, label)`` of each example, in order."""
        for start, length_a, length, label in zip(
                self._starts().tolist(), self.lengths_a.tolist(), self.lengths.tolist(),
                self.labels.tolist(), strict=True):
            yield (self.tokens[start:start + length_a],
                   self.tokens[start + length_a:start + length], label)


@dataclass(frozen=True, eq=False)
class PackedBlock(ExampleBlock):
    """MLM examples (objective ``"mlm"``) in columns: a row is one packed sequence, all of it
    in ``A`` (``lengths_a == lengths``, ``B`` empty, label 0). ``documents`` are in packing
    order, each once, and a row's provenance is ``(first, last)``: the row holds
    ``documents[first..last]`` (inclusive), so a row lists all its documents in two numbers
    however many it packs. Consecutive rows share at most their boundary document."""

    @classmethod
    def of(cls, examples: Sequence[PairExample]) -> PackedBlock:
        if examples:
            raise TypeError("packed rows come from packed_examples, not pair examples")
        return cls(np.zeros(0, np.uint32), *(np.zeros(0, np.int64),) * 2, np.zeros(0, np.uint8),
                   (), np.zeros((0, 2), np.uint32))

    @classmethod
    def concat(cls, blocks: Sequence[ExampleBlock]) -> PackedBlock:
        documents: list[DocumentRef] = []
        provenance = []
        for block in blocks:
            shared = bool(documents and block.documents and documents[-1] == block.documents[0])
            provenance.append(block.provenance.astype(np.int64) + len(documents) - shared)
            documents.extend(block.documents[shared:])
        if not blocks:
            return cls.of([])
        return cls(np.concatenate([b.tokens for b in blocks]),
                   np.concatenate([b.lengths_a for b in blocks]),
                   np.concatenate([b.lengths for b in blocks]),
                   np.concatenate([b.labels for b in blocks]), tuple(documents),
                   np.concatenate(provenance).astype(np.uint32))

    def documents_with_a(self) -> set[DocumentRef]:
        return set(self.documents)  # every document of a packed block is in an example

    def slice(self, start: int, stop: int) -> PackedBlock:
        if stop <= start:
            return self.of([])
        starts = self._starts()
        first_token = int(starts[start])
        last_token = int(starts[stop - 1] + self.lengths[stop - 1])
        first, last = int(self.provenance[start, 0]), int(self.provenance[stop - 1, 1])
        return PackedBlock(self.tokens[first_token:last_token], self.lengths_a[start:stop],
                           self.lengths[start:stop], self.labels[start:stop],
                           self.documents[first:last + 1],
                           (self.provenance[start:stop].astype(np.int64) - first)
                           .astype(np.uint32))


def pack_sentences(sentence_ids: list[list[int]]) -> tuple[bytes, bytes]:
    """Token ids of a document's non-empty sentences -> (uint32 ids, uint32 sentence lengths),
    as bytes: what crosses the shuffle is then a few bytes per token, not a list per sentence."""
    tokens, lengths = array.array(UINT32_ARRAY_CODE), array.array(UINT32_ARRAY_CODE)
    for ids in sentence_ids:
        if ids:
            tokens.extend(ids)
            lengths.append(len(ids))
    return tokens.tobytes(), lengths.tobytes()


def unpack_sentences(tokens: bytes, lengths: bytes) -> list[array.array]:
    """The inverse of ``pack_sentences``: one array of ids per sentence. Arrays hold no Python
    objects, so unlike lists of ints they give the garbage collector nothing to scan."""
    ids, sizes = array.array(UINT32_ARRAY_CODE), array.array(UINT32_ARRAY_CODE)
    ids.frombytes(tokens)
    sizes.frombytes(lengths)
    sentences, start = [], 0
    for size in sizes:
        sentences.append(ids[start:start + size])
        start += size
    return sentences


@dataclass
class PairStats:
    """Counters for the run report; ``merge`` adds another's."""

    documents: int = 0
    """Documents seen (with at least one non-empty sentence)."""
    empty_documents: int = 0
    """Documents without a non-empty sentence: no examples."""
    short_target_documents: int = 0
    """Documents whose target length was drawn short (``short_seq_prob``)."""
    examples: int = 0
    label_1: int = 0
    """Examples with label 1 (SOP swapped / NSP random next)."""
    skipped_single_segment: int = 0
    """One-sentence chunks dropped (a pair needs two segments)."""
    forced_random_next: int = 0
    """NSP with ``nsp_random_single``: one-sentence chunks given a random ``B`` (BERT), included
    in label_1."""
    returned_sentences: int = 0
    """NSP: sentences of a chunk put back into the stream after a random ``B``."""
    truncated: int = 0
    """Examples that lost tokens to ``truncate_pair``."""
    truncated_tokens: int = 0
    tokens: int = 0
    """Tokens in examples (``A`` plus ``B``), special tokens excluded (but MLM's document
    separators, which the shards store)."""
    separators: int = 0
    """MLM: document separators stored between packed documents."""
    split_sentences: int = 0
    """MLM: sentences longer than ``max_seq_len - 2`` cut across examples."""

    def merge(self, other: PairStats) -> PairStats:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def document_rng(seed: int, doc_id: str) -> random.Random:
    """A generator for one document, seeded from the xxhash of ``(seed, doc_id)``."""
    key = f"{seed}\x00{doc_id}".encode("utf-8", "surrogatepass")
    return random.Random(xxhash.xxh64_intdigest(key))


def joined(sentences: Sequence[Sequence[int]]) -> array.array:
    """The ids of ``sentences``, one after another, as one ``array("I")``."""
    ids = array.array(UINT32_ARRAY_CODE)
    for sentence in sentences:
        ids.extend(sentence)  # a memcpy when the sentence is an array("I") too
    return ids


def truncate_pair(tokens_a, tokens_b, max_tokens: int, rng) -> None:
    """BERT's ``truncate_seq_pair``, in place on two lists or arrays: until
    ``len(a) + len(b) <= max_tokens``, the longer side (``b`` on a tie) loses its first or its
    last token, at random (``rng.random() < 0.5``: the first).

    Draws the same random numbers as BERT and gives the same result, but cuts each side once
    instead of deleting from the front of a list token by token. With ``max_tokens >= 2`` and
    both sides non-empty, both stay non-empty.
    """
    len_a, len_b = len(tokens_a), len(tokens_b)
    front_a = back_a = front_b = back_b = 0
    while len_a + len_b > max_tokens:
        if len_a > len_b:
            len_a -= 1
            if rng.random() < 0.5:
                front_a += 1
            else:
                back_a += 1
        else:
            len_b -= 1
            if rng.random() < 0.5:
                front_b += 1
            else:
                back_b += 1
    if front_a or back_a:
        tokens_a[:] = tokens_a[front_a : len(tokens_a) - back_a]
    if front_b or back_b:
        tokens_b[:] = tokens_b[front_b : len(tokens_b) - back_b]


def sop_examples(
    doc: DocumentRef,
    sentences: Sequence[Sequence[int]],
    config: PairsConfig,
    stats: PairStats | None = None,
) -> list[PairExample]:
    """Sentence-order examples of one document (its tokenized sentences, in order)."""
    return _document_examples(doc, sentences, None, config, stats, nsp=False)


def nsp_examples(
    documents: Sequence[tuple[DocumentRef, Sequence[Sequence[int]]]],
    config: PairsConfig,
    stats: PairStats | None = None,
) -> list[PairExample]:
    """Next-sentence examples of a group of ``(ref, sentences)`` documents.

    Random ``B`` segments come from the other documents of the group. The group is sorted by
    ref first, so its order does not matter; the examples come out by ref, then ``index``.
    Refs must be unique within the group (ids may repeat).
    """
    group = []
    refs = set()
    for doc, sentences in sorted(documents, key=lambda document: document[0]):
        if doc in refs:
            raise ValueError(f"document {doc!r} appears twice in the NSP group")
        refs.add(doc)
        group.append((doc, [s for s in sentences if len(s)]))
    pool = [(doc, sentences) for doc, sentences in group if sentences]
    examples: list[PairExample] = []
    position = 0  # of the current document in ``pool``
    for doc, sentences in group:
        others = _Others(pool, position if sentences else -1)
        examples += _document_examples(doc, sentences, others, config, stats, nsp=True)
        position += bool(sentences)
    return examples


def group_examples(
    documents: Sequence[tuple[DocumentRef, Sequence[Sequence[int]]]],
    config: PairsConfig,
    stats: PairStats | None = None,
) -> list[PairExample]:
    """The examples of a group of ``(ref, sentences)`` documents under ``config.objective``:
    NSP across the group (``nsp_examples``), SOP one document at a time (``sop_examples``).
    Not for ``"mlm"``, whose examples are packed, not pairs: ``packed_examples``."""
    if config.objective == "mlm":
        raise ValueError("mlm examples are packed: use packed_examples")
    if config.objective == "nsp":
        return nsp_examples(documents, config, stats)
    return [example for doc, sentences in documents
            for example in sop_examples(doc, sentences, config, stats)]


def packed_examples(
    documents: Sequence[tuple[DocumentRef, Sequence[Sequence[int]]]],
    config: PairsConfig,
    separator: int,
    stats: PairStats | None = None,
) -> PackedBlock:
    """MLM examples of a group of ``(ref, sentences)`` documents, RoBERTa's FULL-SENTENCES:
    the group's documents in ref order (so the result does not depend on the order they
    arrive in, the runner or the number of workers), their sentences appended to the open
    example until the next one would take it over ``max_seq_len - 2`` stored tokens (room for
    ``[CLS] ... [SEP]``), then a new example starts. Between two documents in one example goes
    the ``separator`` id ([SEP]); an example never starts or ends with one. A sentence longer
    than the budget is cut into budget-sized pieces (no token lost). With ``packing: fill``
    every sentence is cut where the example is full, so only the group's last example is
    shorter. Nothing is random."""
    stats = stats if stats is not None else PairStats()
    packer = _Packer(config.max_seq_len - 2, separator, fill=config.packing == "fill")
    refs: list[DocumentRef] = []
    for doc, sentences in sorted(documents, key=lambda document: document[0]):
        document = [s for s in sentences if len(s)]
        if not document:
            stats.empty_documents += 1
            continue
        stats.documents += 1
        refs.append(doc)
        stats.separators += packer.start_document(len(refs) - 1, len(document[0]))
        for sentence in document:
            stats.split_sentences += packer.add(sentence)
    packer.close()
    lengths = np.asarray(packer.lengths, np.int64)
    stats.examples += len(lengths)
    stats.tokens += len(packer.tokens)
    return PackedBlock(np.frombuffer(packer.tokens, np.uint32), lengths, lengths,
                       np.zeros(len(lengths), np.uint8), tuple(refs),
                       np.asarray(packer.spans, np.uint32).reshape(-1, 2))


class _Packer:
    """The open example of ``packed_examples`` and the closed ones, as columns. ``fill``: cut
    sentences at the budget instead of closing the example before them."""

    def __init__(self, budget: int, separator: int, fill: bool = False):
        self.budget, self.separator, self.fill = budget, separator, fill
        self.tokens = array.array(UINT32_ARRAY_CODE)
        self.lengths: list[int] = []
        self.spans: list[tuple[int, int]] = []  # (first, last) document of each example
        self.open = 0  # tokens in the open example
        self.first = self.last = 0  # its first and current document

    def start_document(self, position: int, first_sentence: int) -> int:
        """A new document begins; 1 when a separator went into the open example, else 0. The
        open example closes first when the separator and the document's first sentence (under
        ``fill``: the separator and one token) would not fit."""
        wanted = 1 + (1 if self.fill else first_sentence)
        if self.open and self.open + wanted > self.budget:
            self.close()
        self.last = position
        if not self.open:
            self.first = position
            return 0
        self.tokens.append(self.separator)
        self.open += 1
        return 1

    def add(self, sentence: Sequence[int]) -> int:
        """Append a sentence, closing the open example first when it would not fit (not under
        ``fill``); 1 when the sentence was cut across examples, else 0."""
        if not self.fill and self.open and self.open + len(sentence) > self.budget:
            self.close()
            self.first = self.last
        start, cut = 0, 0
        while start < len(sentence):
            if self.open == self.budget:
                self.close()
                self.first = self.last
                cut = int(start > 0)
            piece = sentence[start:start + self.budget - self.open]
            self.tokens.extend(piece)
            self.open += len(piece)
            start += len(piece)
        return cut

    def close(self) -> None:
        if self.open:
            self.lengths.append(self.open)
            self.spans.append((self.first, self.last))
            self.open = 0


class _Others:
    """The non-empty documents of an NSP group except one, without copying the list."""

    def __init__(self, pool: list[tuple[DocumentRef, list[Sequence[int]]]],
                 excluded: int) -> None:
        self.pool = pool
        self.excluded = excluded
        self.size = len(pool) - (excluded >= 0)

    def __bool__(self) -> bool:
        return self.size > 0

    def pick(self, rng: random.Random) -> tuple[DocumentRef, list[Sequence[int]]]:
        """(ref, sentences) of a random other document."""
        index = rng.randrange(self.size)
        if 0 <= self.excluded <= index:
            index += 1
        return self.pool[index]


def _document_examples(
    doc: DocumentRef,
    sentences: Sequence[Sequence[int]],
    others: _Others | None,
    config: PairsConfig,
    stats: PairStats | None,
    nsp: bool,
) -> list[PairExample]:
    stats = stats if stats is not None else PairStats()
    document = [s for s in sentences if len(s)]
    if not document:
        stats.empty_documents += 1
        return []
    stats.documents += 1
    rng = document_rng(config.seed, doc.id)
    max_tokens = config.max_tokens
    target = max_tokens
    if rng.random() < config.short_seq_prob:
        target = rng.randint(2, max_tokens)
        stats.short_target_documents += 1

    examples: list[PairExample] = []
    chunk: list[Sequence[int]] = []
    chunk_tokens = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_tokens += len(document[i])
        if i == len(document) - 1 or chunk_tokens >= target:
            example = None
            if len(chunk) == 1 and not (others and config.nsp_random_single):
                stats.skipped_single_segment += 1
            else:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = joined(chunk[:a_end])
                doc_b = doc
                if others and (len(chunk) == 1 or rng.random() < 0.5):
                    if len(chunk) == 1:
                        stats.forced_random_next += 1
                    doc_b, other = others.pick(rng)
                    tokens_b = joined([])
                    for sentence in other[rng.randrange(len(other)) :]:
                        tokens_b.extend(sentence)
                        if len(tokens_b) >= target - len(tokens_a):
                            break
                    unused = len(chunk) - a_end
                    stats.returned_sentences += unused
                    i -= unused
                    label = 1
                else:
                    tokens_b = joined(chunk[a_end:])
                    label = 0
                    if not nsp and rng.random() < 0.5:
                        tokens_a, tokens_b = tokens_b, tokens_a
                        label = 1
                before = len(tokens_a) + len(tokens_b)
                truncate_pair(tokens_a, tokens_b, max_tokens, rng)
                after = len(tokens_a) + len(tokens_b)
                if after < before:
                    stats.truncated += 1
                    stats.truncated_tokens += before - after
                assert tokens_a and tokens_b and after <= max_tokens
                example = PairExample(tokens_a, tokens_b, label, doc, doc_b, len(examples))
            if example is not None:
                examples.append(example)
                stats.examples += 1
                stats.label_1 += example.label
                stats.tokens += len(example.tokens_a) + len(example.tokens_b)
            chunk = []
            chunk_tokens = 0
        i += 1
    return examples
