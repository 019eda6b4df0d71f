"""The data path of pretraining: shard examples -> masked, padded batches of tensors.

Read top to bottom: masking config, the index permutation, layout and masking
(``ExampleBatcher``, shared with held-out evaluation), the dataset, collate, the batch iterator.
Shapes: B examples in a batch, T = the manifest's max_seq_len.

Choices made here, and why:

* **Fixed length.** Every sequence is padded to the manifest's ``max_seq_len``: static shapes
  suit torch.compile and CUDA graphs, and the shards already pack examples close to that length.
  The model, not the batch, drops the padding (``PreTrainingModel(unpad=True)``), so evaluation
  and training share one layout. Metrics report both real (non-pad) and padded tokens.
* **Order from (seed, epoch, position), in O(1) memory.** The training stream is an endless
  sequence of positions 0, 1, 2, ...; position ``p`` falls in epoch ``p // N`` and maps to
  example ``split(shuffle_epoch(p % N))``, where both maps are seeded bijections on ``[0, n)``
  built from a Feistel network with cycle walking (``IndexPermutation``). Nothing of size N is
  ever held, so resuming at step k is instant: position ``k * global_batch``.
* **Or windows of shards** (``shuffle: shards``, ``ShardWindowOrder``): each epoch permutes the
  shards and walks them in windows of a few, permuting the examples within a window, so that a
  shard cache smaller than the set holds the window read and the next one (a set larger than
  the local disk). Also a function of (seed, epoch, position) only, by the same permutations.
* **Train/eval split.** ``split`` is one fixed bijection of the corpus (its key does not depend
  on the training seed, so runs with different seeds evaluate on the same examples): its last
  ``eval_examples`` outputs are held out for evaluation, the rest is the training set. Under
  ``shuffle: shards`` the held-out examples come from a few reserved shards instead
  (``reserved_eval_split``): the shortest prefix of a fixed shard permutation holding at least
  ``EVAL_POOL_FACTOR x eval_examples`` examples, of which a fixed permutation picks
  ``eval_examples`` (so about a tenth of each reserved shard is held out, the rest trains), so
  the first evaluation of a set larger than the disk fetches those shards, not the whole set.
* **DDP.** Step s covers positions ``[s * G, (s + 1) * G)`` of the stream (G the global batch);
  rank r of w takes positions ``s * G + r, s * G + r + w, ...``, so the union over ranks is the
  single-process batch exactly (``step_positions``).
* **Dynamic masking, counter-based.** Masking draws every random number from a hash of
  ``(seed, epoch, example index, token position, purpose)`` (SplitMix64 finalizer, the way
  Philox/Random123 are counter-based generators): the masks of an example depend on nothing else,
  so a resumed run, any number of workers or ranks, and any batch composition mask identically.
  It is the per-example generator that the design asks for, vectorized over the whole batch:
  constructing a numpy Generator per example costs 40 to 60 us here, more than the rest of the
  batch's work.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from winnow.schemas.shard_reader import ShardReader
from winnow.schemas.typed_config import ConfigError

WORD_BOUNDARY = "\u2581"
"""SentencePiece's word-boundary mark: a piece starting with it begins a word (ALBERT's
whole-word masking)."""
IGNORE_INDEX = -100
"""mlm_labels value of a position that is not predicted (PyTorch's cross_entropy default)."""
SPLIT_KEY = 0x5EED_5B11_7000_0001
"""Key of the train/eval split permutation; fixed, so that the eval set does not move with the
training seed."""
_RESERVED_SHARDS_KEY = 0x5EED_5B11_7000_0002
"""Key of the shard permutation whose prefix holds the held-out examples under "shards"."""
EVAL_POOL_FACTOR = 10
"""Under "shards", the reserved shards hold at least this many times ``eval_examples``: at most
about 1 / EVAL_POOL_FACTOR of each is held out, the rest trains."""
PREFETCH_ORDER_EXAMPLES = 1 << 16
"""Coming examples whose shards set the prefetch order (about 0.1 s of index arithmetic; with
one permutation over the corpus they read every shard of a set of up to thousands); the shards
none of them reads follow in index order."""
BATCH_KEYS = ("input_ids", "token_type_ids", "attention_mask", "mlm_labels", "pair_labels")


class DataConfigError(ConfigError):
    """Every problem of a data config, one per line (``problems`` holds them as a list)."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "invalid data config")


@dataclass(frozen=True)
class MaskingConfig:
    mlm_probability: float = 0.15
    """Fraction of the non-special tokens of an example selected for prediction, rounded, at
    least one (BERT 0.15; MosaicBERT and ModernBERT use 0.3)."""
    mask_token_prob: float = 0.8
    """Of the selected tokens, the fraction replaced by [MASK]."""
    random_token_prob: float = 0.1
    """Of the selected tokens, the fraction replaced by a random non-special piece; the rest
    (1 - mask_token_prob - random_token_prob) stay unchanged but are still predicted."""
    whole_word: bool = False
    """Select whole words: a word is a piece starting with SentencePiece's U+2581 mark (or the
    first piece of a segment) and the pieces after it up to the next such piece. Words are taken
    in random order, skipping any that would exceed the budget of ``mlm_probability`` tokens
    (BERT's rule); the first word is always taken."""

    def errors(self) -> list[str]:
        problems = []
        for name in ("mlm_probability", "mask_token_prob", "random_token_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{name}: expected a number, got {value!r}")
        if problems:
            return problems
        if not 0.0 < self.mlm_probability <= 1.0:
            problems.append(f"mlm_probability: must be in (0, 1], got {self.mlm_probability}")
        for name in ("mask_token_prob", "random_token_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.mask_token_prob + self.random_token_prob > 1.0 + 1e-9:
            problems.append(f"mask_token_prob + random_token_prob must be at most 1, got "
                            f"{self.mask_token_prob} + {self.random_token_prob}")
        if not isinstance(self.whole_word, bool):
            problems.append(f"whole_word: expected true or false, got {self.whole_word!r}")
        return problems

    def __post_init__(self) -> None:
        problems = self.errors()
        if problems:
            raise DataConfigError(problems)


# --- counter-based random numbers --------------------------------------------------------------

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer on a uint64 array (wrapping arithmetic): a bijection of 64-bit
    words whose output bits all depend on all input bits."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _u64(values: Any) -> np.ndarray:
    """Python ints (any sign and size) or an integer array as a 1-D uint64 array."""
    if isinstance(values, np.ndarray):
        return np.atleast_1d(values.astype(np.uint64, copy=False))
    return np.atleast_1d(np.array([int(v) & _MASK64 for v in np.atleast_1d(values)],
                                  dtype=np.uint64))


def hash_keys(*parts: Any) -> np.ndarray:
    """One 64-bit hash per element of the broadcast ``parts`` (ints or integer arrays)."""
    z = np.zeros(1, dtype=np.uint64)
    for part in parts:
        z = _mix64((z + _GOLDEN) ^ _u64(part))
    return z


def _stream(key: np.ndarray, position: np.ndarray, purpose: int) -> np.ndarray:
    """Element ``3 * position + purpose`` of the SplitMix64 stream seeded with ``key``
    (broadcast): one 64-bit random word per (key, position, purpose)."""
    counter = np.asarray(position).astype(np.uint64) * np.uint64(3) + np.uint64(purpose + 1)
    return _mix64(key + counter * _GOLDEN)


def _uniform(h: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits of 64-bit hashes."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# --- the index permutation ---------------------------------------------------------------------

class IndexPermutation:
    """A seeded bijection of ``[0, n)`` computed per element, in O(1) memory.

    A Feistel network permutes the b-bit words, ``b = max(2, bit_length(n - 1))`` so that
    ``2**b < 2 n``; cycle walking (apply again while the output is ``>= n``) restricts it to
    ``[0, n)`` (Black & Rogaway 2002), fewer than 2 applications on average. The word is split
    into a high and a low part (widths differ by at most one bit) and the rounds alternate which
    part is XORed with a SplitMix64 hash of the other and a round key: each round is its own
    inverse, so the whole network is a bijection.
    """

    ROUNDS = 6

    def __init__(self, n: int, key: int):
        if n < 1:
            raise ValueError(f"a permutation needs n >= 1, got {n}")
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        self._low_bits = np.uint64(bits // 2)
        self._low = np.uint64((1 << (bits // 2)) - 1)
        self._high = np.uint64((1 << (bits - bits // 2)) - 1)
        self._round_keys = hash_keys(key, np.arange(self.ROUNDS, dtype=np.uint64))

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        high, low = x >> self._low_bits, x & self._low
        for number, key in enumerate(self._round_keys):
            if number % 2:
                low = low ^ (_mix64(high ^ key) & self._low)
            else:
                high = high ^ (_mix64(low ^ key) & self._high)
        return (high << self._low_bits) | low

    def __call__(self, values: np.ndarray | Sequence[int] | int) -> np.ndarray:
        x = np.atleast_1d(np.asarray(values, dtype=np.int64))
        if len(x) and (x.min() < 0 or x.max() >= self.n):
            raise IndexError(f"values outside [0, {self.n})")
        if self.n == 1:
            return np.zeros(len(x), dtype=np.int64)
        out = self._feistel(x.astype(np.uint64))
        outside = np.flatnonzero(out >= np.uint64(self.n))
        while len(outside):
            out[outside] = self._feistel(out[outside])
            outside = outside[out[outside] >= np.uint64(self.n)]
        return out.astype(np.int64)


SHUFFLES = ("global", "shards")
"""The train orders: "global", one permutation of the whole training set per epoch (every step
reads from every shard); "shards", windows of shards (``ShardWindowOrder``)."""
DEFAULT_WINDOW_SHARDS = 16
"""Shards of a window under "shards" unless the config says otherwise."""
_SHARD_ORDER_KEY = 0x5EED_5BAD_0000_0002
_WINDOW_KEY = 0x5EED_5BAD_0000_0003
_EPOCH_LAYOUTS_KEPT = 4


class ShardWindowOrder:
    """The train order of ``shuffle: shards``: a bijection of the training set per epoch that
    reads few shards at a time, computed per position from (seed, epoch, position) alone.

    Epoch e permutes the shards (``IndexPermutation`` keyed by (seed, e)) and cuts that order
    into windows of ``window_shards`` consecutive shards (the last may hold fewer). The epoch's
    positions walk the windows in turn; window w takes as many positions as its shards hold
    training examples, and inside it a second permutation, keyed by (seed, e, w), shuffles those
    examples (MosaicML streaming's py1s, WebDataset's shard shuffle with a buffer of whole
    shards). So positions in a window read only its shards, and a cache needs about two windows
    of files: the one read and the next one, prefetched.

    The held-out examples (``held_out``, sorted corpus indices) are not in it: a shard's training
    examples are its indices without them, and the k-th training example of the corpus, in
    ascending order, is ``k + #{i: held_out[i] - i <= k}`` (the gaps ``held_out[i] - i`` do not
    decrease), so nothing of the corpus' size is built. Per epoch it keeps the shard order and
    the windows' ends, O(shards).
    """

    def __init__(self, shard_examples: Sequence[int], held_out: np.ndarray, seed: int,
                 window_shards: int):
        if window_shards < 1:
            raise ValueError(f"window_shards must be at least 1, got {window_shards}")
        counts = np.asarray(shard_examples, dtype=np.int64)  # (S,)
        held_out = np.sort(np.asarray(held_out, dtype=np.int64))  # (E,)
        held_per_shard = np.bincount(np.searchsorted(np.cumsum(counts), held_out, side="right"),
                                     minlength=len(counts))
        self.train_counts = counts - held_per_shard  # (S,) training examples of each shard
        # rank, among all training examples in ascending corpus order, of each shard's first
        self._train_starts = np.cumsum(self.train_counts) - self.train_counts  # (S,)
        self._gaps = held_out - np.arange(len(held_out), dtype=np.int64)  # (E,)
        self.seed = int(seed)
        self.window_shards = int(window_shards)
        self.size = int(self.train_counts.sum())
        self._layouts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def shard_order(self, epoch: int) -> np.ndarray:
        """(S,) the shards in epoch ``epoch``'s order."""
        return self._layout(epoch)[0]

    def _layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(shard order (S,), end position of each window within the epoch (W,))."""
        layout = self._layouts.get(epoch)
        if layout is None:
            shards = len(self.train_counts)
            order = IndexPermutation(shards, int(hash_keys(_SHARD_ORDER_KEY, self.seed,
                                                           epoch)[0]))(np.arange(shards))
            sizes = np.add.reduceat(self.train_counts[order],
                                    np.arange(0, shards, self.window_shards))
            layout = (order, np.cumsum(sizes))
            if len(self._layouts) >= _EPOCH_LAYOUTS_KEPT:
                self._layouts.pop(next(iter(self._layouts)))
            self._layouts[epoch] = layout
        return layout

    def windows(self) -> int:
        return -(-len(self.train_counts) // self.window_shards)

    def window_of(self, epoch: int, within: np.ndarray) -> np.ndarray:
        """The window of each position ``within`` the epoch (0 <= within < size)."""
        return np.searchsorted(self._layout(epoch)[1], within, side="right")

    def window_shards_of(self, epoch: int, window: int) -> np.ndarray:
        """The shards of window ``window`` of epoch ``epoch``, in the epoch's shard order."""
        start = window * self.window_shards
        return self.shard_order(epoch)[start:start + self.window_shards]

    def window_span(self, epoch: int, window: int) -> tuple[int, int]:
        """[start, end) positions of window ``window`` within the epoch."""
        ends = self._layout(epoch)[1]
        return (int(ends[window - 1]) if window else 0), int(ends[window])

    def __call__(self, epoch: int, within: np.ndarray) -> np.ndarray:
        """Corpus example index of each position ``within`` epoch ``epoch``."""
        within = np.asarray(within, dtype=np.int64)
        windows = self.window_of(epoch, within)
        train_rank = np.empty_like(within)
        for window in np.unique(windows).tolist():
            chosen = windows == window
            start, end = self.window_span(epoch, window)
            offset = IndexPermutation(end - start, int(hash_keys(
                _WINDOW_KEY, self.seed, epoch, window)[0]))(within[chosen] - start)
            shards = self.window_shards_of(epoch, window)
            ends = np.cumsum(self.train_counts[shards])
            slot = np.searchsorted(ends, offset, side="right")
            train_rank[chosen] = (self._train_starts[shards[slot]]
                                  + offset - (ends[slot] - self.train_counts[shards[slot]]))
        return train_rank + np.searchsorted(self._gaps, train_rank, side="right")


def step_positions(step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Stream positions of rank ``rank``'s part of global step ``step``: ``step * batch_size +
    rank, + world_size, ...`` (batch_size / world_size positions; the ranks' union is the
    global batch)."""
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not a multiple of world_size {world_size}")
    return step * batch_size + np.arange(rank, batch_size, world_size, dtype=np.int64)


# --- vocabulary tables -------------------------------------------------------------------------

def word_start_mask(tokenizer_path: str | os.PathLike, vocab_size: int) -> np.ndarray:
    """``(vocab_size,)`` bool: True for the pieces that begin a word (start with U+2581)."""
    processor = _load_tokenizer(tokenizer_path)
    if processor.get_piece_size() != vocab_size:
        raise ValueError(f"{tokenizer_path}: {processor.get_piece_size()} pieces, expected "
                         f"vocab_size {vocab_size}")
    return np.array([processor.id_to_piece(i).startswith(WORD_BOUNDARY)
                     for i in range(vocab_size)], dtype=bool)


def random_replacement_ids(tokenizer_path: str | os.PathLike,
                           special_tokens: dict[str, int]) -> np.ndarray:
    """Ids a selected token may be replaced with: every piece except the special tokens and
    SentencePiece's control, unknown and unused pieces (e.g. <s>, </s>)."""
    processor = _load_tokenizer(tokenizer_path)
    special = set(special_tokens.values())
    return np.array([i for i in range(processor.get_piece_size())
                     if i not in special and not (processor.is_control(i)
                                                  or processor.is_unknown(i)
                                                  or processor.is_unused(i))], dtype=np.int64)


def _load_tokenizer(path: str | os.PathLike):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    processor.Load(os.fspath(path))
    return processor


# --- layout and masking ------------------------------------------------------------------------

class ExampleBatcher:
    """(A ids, B ids, label) examples -> masked, padded numpy arrays (``collate``'s layout): the
    layout and masking that pretraining (``PretrainingData``) and held-out evaluation
    (``trainer.evaluate``) share. The masks of an example depend only on (seed, epoch, example
    index), never on the batch it is in."""

    def __init__(self, tokenizer_path: str | os.PathLike, special_tokens: dict[str, int],
                 vocab_size: int, max_seq_len: int, seed: int,
                 masking: MaskingConfig | None = None, word_start_ids: np.ndarray | None = None):
        """``special_tokens``: ``{"[PAD]": id, ...}`` (the manifest's); ``word_start_ids``: a
        (vocab_size,) bool mask of the pieces that begin a word, for whole-word masking
        (default: ``word_start_mask`` of the tokenizer)."""
        self.seed = int(seed)
        self.masking = masking or MaskingConfig()
        self.max_seq_len = max_seq_len
        special = special_tokens
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (
            special["[PAD]"], special["[CLS]"], special["[SEP]"], special["[MASK]"])
        # Never selected for masking: every special token but [UNK] (a real, unknown piece).
        self._never_masked = np.zeros(vocab_size, dtype=bool)
        self._never_masked[[i for name, i in special.items() if name != "[UNK]"]] = True
        self._replacements = random_replacement_ids(tokenizer_path, special)
        if self.masking.whole_word and word_start_ids is None:
            word_start_ids = word_start_mask(tokenizer_path, vocab_size)
        if word_start_ids is not None and np.shape(word_start_ids) != (vocab_size,):
            raise ValueError(f"word_start_ids must be a ({vocab_size},) bool mask, "
                             f"got shape {np.shape(word_start_ids)}")
        self._word_starts = (None if word_start_ids is None or not self.masking.whole_word
                             else np.asarray(word_start_ids, dtype=bool))

    def build(self, examples: Sequence[tuple[Sequence[int], Sequence[int], int]],
              epochs: np.ndarray, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Numpy arrays of ``examples`` (each ``len(A) + len(B) <= max_seq_len - 3``): ``[CLS] A
        [SEP] B [SEP]`` then [PAD] to max_seq_len; token types 0 for [CLS] A [SEP] and 1 for B
        [SEP]; masked with the random numbers of (seed, ``epochs[i]``, ``indices[i]``). An
        example with an empty B (packed mlm shards, ``len(A) <= max_seq_len - 2``) is ``[CLS]
        A [SEP]``, all token type 0."""
        epochs = np.atleast_1d(np.asarray(epochs, dtype=np.int64))
        indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        batch, content, segment_start = self._layout(examples)
        self._mask(batch, content, segment_start, epochs, indices)
        return batch

    def _layout(self, examples: Sequence[tuple[Sequence[int], Sequence[int], int]]
                ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(the unmasked batch, (B, T) bool content tokens, (B, T) bool first token of A and
        of B). Vectorized over the batch: boolean masks place A and B, and the row-major order
        of a mask matches the concatenation order A0 B0 A1 B1 ..."""
        b, t = len(examples), self.max_seq_len
        len_a = np.fromiter((len(a) for a, _, _ in examples), dtype=np.int64, count=b)[:, None]
        len_b = np.fromiter((len(x) for _, x, _ in examples), dtype=np.int64, count=b)[:, None]
        column = np.arange(t, dtype=np.int64)[None, :]  # (1, T)
        in_a = (column >= 1) & (column <= len_a)  # (B, T)
        in_b = (column >= len_a + 2) & (column <= len_a + len_b + 1)
        # the last real column: B's [SEP], or A's when B is empty (no second [SEP])
        end = len_a + 1 + np.where(len_b > 0, len_b + 1, 0)  # (B, 1)
        input_ids = np.full((b, t), self.pad_id, dtype=np.int64)
        input_ids[:, 0] = self.cls_id
        input_ids[in_a | in_b] = np.concatenate([x for a, bb, _ in examples for x in (a, bb)])
        rows = np.arange(b)
        input_ids[rows, len_a[:, 0] + 1] = self.sep_id
        input_ids[rows, end[:, 0]] = self.sep_id
        token_type_ids = ((column >= len_a + 2) & (column <= end)).astype(np.int64)
        batch = {
            "input_ids": input_ids,  # (B, T)
            "token_type_ids": token_type_ids,  # (B, T)
            "attention_mask": column <= end,  # (B, T) bool
            "pair_labels": np.fromiter((label for _, _, label in examples), dtype=np.int64,
                                       count=b),  # (B,)
        }
        return batch, in_a | in_b, (column == 1) | (column == len_a + 2)

    def _mask(self, batch: dict[str, np.ndarray], content: np.ndarray,
              segment_start: np.ndarray, epochs: np.ndarray, indices: np.ndarray) -> None:
        """Dynamic masking in place: adds mlm_labels, rewrites input_ids at selected tokens."""
        config = self.masking
        input_ids = batch["input_ids"]  # (B, T)
        t = input_ids.shape[1]
        candidates = content & ~self._never_masked[input_ids]  # (B, T)
        # Every random number of an example is element (position, purpose) of a SplitMix64
        # stream keyed by hash(seed, epoch, index); purposes: 0 selection order, 1 replacement
        # kind, 2 random id (1 and 2 only at the selected tokens).
        example_key = hash_keys(self.seed, epochs, indices)  # (B,)
        order = _uniform(_stream(example_key[:, None], np.arange(t)[None, :], 0))  # (B, T)

        budget = np.maximum(1, np.floor(config.mlm_probability * candidates.sum(axis=1)
                                        + 0.5)).astype(np.int64)  # (B,)
        if self._word_starts is None:
            selected = _select_tokens(candidates, order, budget)
        else:
            starts = candidates & (self._word_starts[input_ids] | segment_start)
            # A candidate after a non-candidate (e.g. a literal [MASK] piece) starts a word too.
            starts[:, 1:] |= candidates[:, 1:] & ~candidates[:, :-1]
            starts[:, 0] |= candidates[:, 0]
            selected = _select_words(candidates, starts, order, budget)

        batch["mlm_labels"] = np.where(selected, input_ids, IGNORE_INDEX)  # (B, T)
        rows, columns = np.nonzero(selected)  # (S,) each
        kind = _uniform(_stream(example_key[rows], columns, 1))  # (S,)
        replace = kind < config.mask_token_prob + config.random_token_prob
        random_ids = self._replacements[
            (_stream(example_key[rows], columns, 2) % np.uint64(len(self._replacements)))
            .astype(np.int64)]  # (S,)
        input_ids[rows[replace], columns[replace]] = np.where(
            kind < config.mask_token_prob, self.mask_id, random_ids)[replace]


# --- the dataset -------------------------------------------------------------------------------

class PretrainingData:
    """Masked, padded examples of one split of a shard folder, addressed by stream position.

    ``data[p]`` is the example at position ``p`` of the stream (every position is valid: the
    stream repeats the split once per epoch, reshuffled), as a dict of numpy arrays (see
    ``BATCH_KEYS``); ``data.batch(positions)`` builds the tensors of many at once. Examples are
    read from the shards' memory maps (the corpus is never copied); pickling (to DataLoader
    workers) sends the manifest and the vocabulary tables only.
    """

    def __init__(self, shards_dir: str | os.PathLike | ShardReader, seed: int,
                 split: str = "train",
                 eval_examples: int = 0, masking: MaskingConfig | None = None,
                 word_start_ids: np.ndarray | None = None, shuffle: str = "global",
                 window_shards: int = DEFAULT_WINDOW_SHARDS):
        """``shards_dir``: a shard folder, or a reader of one (e.g. through a shard cache);
        ``seed`` fixes the epoch orders and the masks; ``split`` is "train" or "eval";
        ``eval_examples`` (at most a tenth of the corpus, see ``held_out_examples``) are held
        out for "eval" and never seen by "train" (give both splits the same number);
        ``word_start_ids`` is a (vocab_size,) bool mask of the pieces that begin a word, for
        whole-word masking (default: ``word_start_mask`` of the folder's tokenizer);
        ``shuffle`` ("global" or "shards", see ``SHUFFLES``) and ``window_shards`` choose the
        train order. Under "shards", a reader through a bounded cache holds only the shards of
        the window being read, and the held-out examples lie in a few reserved shards
        (``reserved_eval_split``), which "eval" reads one at a time (see ``_read``)."""
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        if shuffle not in SHUFFLES:
            raise ValueError(f"shuffle must be one of {', '.join(SHUFFLES)}, got {shuffle!r}")
        self.reader = (shards_dir if isinstance(shards_dir, ShardReader)
                       else ShardReader(shards_dir))
        self.manifest = self.reader.manifest
        self.seed = int(seed)
        self.split = split
        self.masking = masking or MaskingConfig()
        self.max_seq_len = self.manifest.max_seq_len
        corpus = len(self.reader)
        self.eval_examples = held_out_examples(corpus, eval_examples)
        self.train_examples = corpus - self.eval_examples
        if split == "eval" and not self.eval_examples:
            raise ValueError("the eval split is empty (eval_examples = 0)")
        self._size = self.train_examples if split == "train" else self.eval_examples
        self._offset = 0 if split == "train" else self.train_examples
        self._corpus_order = IndexPermutation(corpus, SPLIT_KEY)
        self.shuffle = shuffle
        self.windows = None  # the ShardWindowOrder of a "shards" train split
        self.reserved_shards = None  # under "shards": the shards holding the held-out examples
        self._eval_order = None  # under "shards": (E,) held-out corpus indices, eval order
        if shuffle == "shards":
            shard_examples = [shard.examples for shard in self.manifest.shards]
            self.reserved_shards, self._eval_order = reserved_eval_split(shard_examples,
                                                                         self.eval_examples)
            if split == "train":
                self.windows = ShardWindowOrder(shard_examples, self._eval_order, self.seed,
                                                window_shards)
        self._reading_window: tuple[int, int] | None = None  # (epoch, window) last read
        self._examples: dict[int, tuple] = {}  # eval under "shards": examples read, kept
        if shuffle == "shards" and split == "eval" and self.reader.cache is not None:
            # its own reader (and cache handle): releasing its shards leaves train's held
            self.reader = copy.deepcopy(self.reader)

        self.batcher = ExampleBatcher(
            self.reader.tokenizer_path(),
            self.manifest.special_tokens, self.manifest.vocab_size, self.max_seq_len, self.seed,
            self.masking, word_start_ids)
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (
            self.batcher.pad_id, self.batcher.cls_id, self.batcher.sep_id, self.batcher.mask_id)

    def __len__(self) -> int:
        """Examples in the split (one epoch)."""
        return self._size

    # Order ---------------------------------------------------------------------------------

    def epoch_of(self, positions: np.ndarray | int) -> np.ndarray:
        return np.atleast_1d(np.asarray(positions, dtype=np.int64)) // self._size

    def example_indices(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        """Corpus example index of each stream position (train: reshuffled every epoch; eval:
        one fixed order)."""
        positions = np.atleast_1d(np.asarray(positions, dtype=np.int64))
        if len(positions) and positions.min() < 0:
            raise IndexError("stream positions start at 0")
        epochs, within = np.divmod(positions, self._size)
        if self.windows is not None:
            indices = np.empty_like(within)
            for epoch in np.unique(epochs).tolist():
                chosen = epochs == epoch
                indices[chosen] = self.windows(epoch, within[chosen])
            return indices
        if self.split == "eval" and self._eval_order is not None:  # under "shards"
            return self._eval_order[within]
        if self.split == "train":
            shuffled = np.empty_like(within)
            for epoch in np.unique(epochs).tolist():
                chosen = epochs == epoch
                shuffled[chosen] = IndexPermutation(
                    self._size, int(hash_keys(self.seed, epoch)[0]))(within[chosen])
            within = shuffled
        return self._corpus_order(within + self._offset)

    # Examples ------------------------------------------------------------------------------

    def __getitem__(self, position: int) -> dict[str, np.ndarray]:
        """One example: (T,) input_ids, token_type_ids, attention_mask, mlm_labels and a ()
        pair_labels; ``collate`` stacks a list of them."""
        batch = self.build([position])
        return {key: value[0] for key, value in batch.items()}

    def batch(self, positions: np.ndarray | Sequence[int]) -> dict[str, Any]:
        """The tensors of the examples at ``positions`` (see ``collate``)."""
        return to_tensors(self.build(positions))

    def build(self, positions: np.ndarray | Sequence[int]) -> dict[str, np.ndarray]:
        """Numpy arrays of the examples at ``positions``: ``[CLS] A [SEP] B [SEP]`` then [PAD]
        to max_seq_len; token types 0 for [CLS] A [SEP] and 1 for B [SEP]; masked."""
        positions = np.atleast_1d(np.asarray(positions, dtype=np.int64))
        indices = self.example_indices(positions)
        follow = self.windows is not None and self.reader.cache is not None
        if follow:
            self._release_other_windows(positions)
        batch = self.batcher.build(self._read(indices), self.epoch_of(positions), indices)
        if follow:
            self._prefetch_next_window(positions)
        return batch

    def _read(self, indices: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """The examples at corpus ``indices``. The eval split under "shards" through a cache
        reads them one shard at a time, releasing each (its examples lie in the reserved shards,
        which the windows being trained may not hold; the cache holds two windows and one shard
        more), and keeps them: every evaluation reads the same ones."""
        if not (self.shuffle == "shards" and self.split == "eval"
                and self.reader.cache is not None):
            return self.reader.batch(indices)
        missing = sorted(set(indices.tolist()) - set(self._examples))
        self._examples.update(zip(missing, self.reader.read_through(missing), strict=True))
        return [self._examples[i] for i in indices.tolist()]

    # Windows under a cache -----------------------------------------------------------------

    def coming_shards(self, start: int) -> list[int]:
        """Shards in the order the stream reads them from position ``start`` on: under
        "shards", those of the window of ``start`` then of the next window; else those of the
        next PREFETCH_ORDER_EXAMPLES positions, then every other shard in index order."""
        if self.windows is None:
            coming = start + np.arange(min(self._size, PREFETCH_ORDER_EXAMPLES))
            order = self.reader.shards_of(self.example_indices(coming))
            return order + sorted(set(range(len(self.manifest.shards))) - set(order))
        epoch, window = self._window_at(start)
        return self._window_read_order(epoch, window) + self._window_read_order(
            *self._next_window(epoch, window))

    def prefetch(self, start: int) -> None:
        """With a cached reader, fetch in background threads the shards the stream reads from
        position ``start`` on (``coming_shards``); nothing for a local folder."""
        if self.reader.cache is None:
            return
        self.reader.prefetch_shards(self.coming_shards(start))
        if self.windows is not None:
            self._reading_window = self._window_at(start)

    def _window_at(self, position: int) -> tuple[int, int]:
        epoch, within = divmod(int(position), self._size)
        return epoch, int(self.windows.window_of(epoch, np.array([within]))[0])

    def _next_window(self, epoch: int, window: int) -> tuple[int, int]:
        """The window read after (epoch, window), skipping windows without examples."""
        start, end = self.windows.window_span(epoch, window)
        return self._window_at(epoch * self._size + end)

    def _window_read_order(self, epoch: int, window: int) -> list[int]:
        """The window's shards in the order its first positions read them, then the rest."""
        start, end = self.windows.window_span(epoch, window)
        first = epoch * self._size + start + np.arange(min(end - start, PREFETCH_ORDER_EXAMPLES))
        order = self.reader.shards_of(self.example_indices(first))
        return order + [s for s in self.windows.window_shards_of(epoch, window).tolist()
                        if s not in order]

    def _release_other_windows(self, positions: np.ndarray) -> None:
        """Before reading ``positions``: release the shards of windows they leave behind, so
        that the cache may evict them (the files in use: the windows of one batch)."""
        epochs, within = np.divmod(positions, self._size)
        keep: set[int] = set()
        for epoch in np.unique(epochs).tolist():
            for window in np.unique(self.windows.window_of(
                    epoch, within[epochs == epoch])).tolist():
                keep.update(self.windows.window_shards_of(epoch, window).tolist())
        for shard in self.reader.open_shards() - keep:
            self.reader.release_shard(shard)

    def _prefetch_next_window(self, positions: np.ndarray) -> None:
        """After reading ``positions``: on entering a window, prefetch the next one's shards."""
        latest = self._window_at(int(positions.max()))
        if self._reading_window is None or latest > self._reading_window:
            self._reading_window = latest
            self.reader.prefetch_shards(self._window_read_order(*self._next_window(*latest)))


def _select_tokens(candidates: np.ndarray, uniform: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """(B, T) bool: the ``budget[b]`` candidates of each row with the smallest random numbers."""
    priority = np.where(candidates, uniform, np.inf)  # (B, T)
    rank = np.argsort(np.argsort(priority, axis=1), axis=1)  # (B, T) rank of each token
    return candidates & (rank < budget[:, None])


def _select_words(candidates: np.ndarray, starts: np.ndarray, uniform: np.ndarray,
                  budget: np.ndarray) -> np.ndarray:
    """(B, T) bool: whole words in random order (each ranked by its first token's number),
    skipping a word that would exceed the budget, as BERT's create_pretraining_data does; the
    first word is always taken. A word is a start and the candidates after it up to the next
    start."""
    b, t = candidates.shape
    rows = np.arange(b)
    word = np.maximum(np.cumsum(starts, axis=1) - 1, 0)  # (B, T) word number of each token
    word_length = np.zeros((b, t + 1), dtype=np.int64)  # column t collects non-candidates
    np.add.at(word_length, (rows[:, None], np.where(candidates, word, t)), 1)
    word_priority = np.full((b, t), np.inf)
    word_priority[np.nonzero(starts)[0], word[starts]] = uniform[starts]
    order = np.argsort(word_priority, axis=1)  # (B, T) words by rank; non-words last
    taken = np.zeros(b, dtype=np.int64)
    chosen = np.zeros((b, t), dtype=bool)
    for rank in range(int(starts.sum(axis=1).max(initial=0))):
        if (taken >= budget).all():
            break
        words = order[:, rank]  # (B,)
        length = word_length[rows, words]
        take = (length > 0) & ((taken + length <= budget) | (rank == 0))
        chosen[rows, words] = take
        taken += np.where(take, length, 0)
    return candidates & np.take_along_axis(chosen, word, axis=1)


def reserved_eval_split(shard_examples: Sequence[int], eval_examples: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The held-out examples under ``shuffle: shards``: (the reserved shards (K,), in the order
    of a fixed permutation of the shards; the held-out corpus indices in evaluation order (E,)).

    The reserved shards are the shortest prefix of the permutation (keyed by a constant, not the
    training seed, so runs with different seeds evaluate on the same examples) whose examples
    number at least ``EVAL_POOL_FACTOR x eval_examples`` (every shard when the corpus holds
    fewer). Their R examples, laid out in ascending corpus order, go through a fixed bijection
    of ``[0, R)`` (``SPLIT_KEY``) whose last ``eval_examples`` outputs are held out, as the
    global split does over the whole corpus (with every shard reserved, it is the global
    split). A function of the shards' sizes and ``eval_examples`` only; O(shards + E) memory."""
    counts = np.asarray(shard_examples, dtype=np.int64)  # (S,)
    if not eval_examples:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = IndexPermutation(len(counts), _RESERVED_SHARDS_KEY)(np.arange(len(counts)))
    taken = min(len(counts), int(np.searchsorted(
        np.cumsum(counts[order]), EVAL_POOL_FACTOR * eval_examples, side="left")) + 1)
    reserved = order[:taken]  # (K,)
    shards = np.sort(reserved)
    sizes = counts[shards]  # (K,)
    pool = int(sizes.sum())
    rank = IndexPermutation(pool, SPLIT_KEY)(np.arange(pool - eval_examples, pool))  # (E,)
    slot = np.searchsorted(np.cumsum(sizes), rank, side="right")  # (E,) of the K shards
    first_of = np.cumsum(counts) - counts  # (S,) corpus index of each shard's first example
    held_out = first_of[shards[slot]] + rank - (np.cumsum(sizes) - sizes)[slot]
    return reserved, held_out


def held_out_examples(corpus_examples: int, eval_examples: int) -> int:
    """Examples held out for evaluation: ``eval_examples``, but at most a tenth of the corpus
    (a small corpus keeps 90% for training)."""
    if eval_examples < 0:
        raise ValueError(f"eval_examples must be 0 or more, got {eval_examples}")
    return min(int(eval_examples), corpus_examples // 10)


# --- collate -----------------------------------------------------------------------------------

def collate(examples: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Stack examples (``PretrainingData[p]``) into a batch of tensors::

        input_ids       (B, T) int64    [CLS] A [SEP] B [SEP] [PAD]..., some tokens masked
        token_type_ids  (B, T) int64    0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding
        attention_mask  (B, T) bool     True on real tokens, False on padding
        mlm_labels      (B, T) int64    the original id at selected tokens, -100 elsewhere
        pair_labels     (B,)   int64    0 in order / same document, 1 swapped / other document
    """
    return to_tensors({key: np.stack([example[key] for example in examples])
                        for key in BATCH_KEYS})


def to_tensors(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    return {key: torch.from_numpy(np.ascontiguousarray(batch[key])) for key in BATCH_KEYS}


# --- batches -----------------------------------------------------------------------------------

class _StepBatches:
    """Map-style dataset over step numbers: item s is this rank's part of global step s."""

    def __init__(self, data: PretrainingData, batch_size: int, rank: int, world_size: int):
        self.data, self.batch_size, self.rank, self.world_size = (
            data, batch_size, rank, world_size)

    def __getitem__(self, step: int) -> dict[str, Any]:
        return self.data.batch(step_positions(step, self.batch_size, self.rank,
                                              self.world_size))


class Batches:
    """This rank's batches of steps ``start_step, start_step + 1, ...`` (endless).

    Each is a dict of tensors (``collate``'s layout) of ``batch_size / world_size`` examples.
    With ``num_workers > 0`` a torch DataLoader builds whole batches in worker processes, each
    worker a different step, ``prefetch_factor`` steps ahead per worker; with 0 they are built
    in the calling thread.
    """

    def __init__(self, data: PretrainingData, batch_size: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 pin_memory: bool = False, prefetch_factor: int = 4):
        step_positions(0, batch_size, rank, world_size)  # validates the division
        self.steps = _StepBatches(data, batch_size, rank, world_size)
        self.start_step = start_step
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor

    def __iter__(self) -> Iterator[dict[str, Any]]:
        steps = itertools.count(self.start_step)
        if self.num_workers == 0:
            return (self.steps[step] for step in steps)
        from torch.utils.data import DataLoader

        return iter(DataLoader(self.steps, sampler=steps, batch_size=None,
                               num_workers=self.num_workers, pin_memory=self.pin_memory,
                               prefetch_factor=self.prefetch_factor))
