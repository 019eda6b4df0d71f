"""Stage 5, ``near_dedup``: MinHash signatures and LSH band keys for near-duplicate documents.

Broder's MinHash (1997) estimates the Jaccard similarity of two documents' shingle sets from the
fraction of equal entries in their signatures; LSH banding (Leskovec et al., *Mining of Massive
Datasets*, ch. 3) turns that into a grouping: split the signature into ``bands`` bands of
``rows`` rows and call two documents candidates when any band is equal. ``lsh_params`` picks
``(bands, rows)`` for a threshold exactly as ``datasketch.MinHashLSH`` does. The grouping by band
key, the optional verification of candidate pairs and the connected components are the
pipeline's job; here is the text logic.

**Signatures are datasketch's.** ``MinHasher.signature`` applies datasketch's own permutations
(``a`` and ``b`` drawn from ``np.random.RandomState(seed)`` in the same order), vectorized with
numpy and processed in blocks of 128 K values (1,024 shingles x 128 permutations), so a
100,000-shingle document never holds more than 0.5 MB (2 MB for ``legacy``) of permuted values
at once. Given the same 32-bit shingle hashes it returns exactly the ``hashvalues`` of
``datasketch.MinHash(num_perm, seed, hashfunc=..., scheme=...)`` after ``update_batch``:

* ``scheme="affine32"``, datasketch >= 2.0's default: MurmurHash3 ``fmix32`` pre-mix, then
  ``a * h + b mod 2**32``; signatures are ``uint32``. Computed in ``int32`` (the same bits, but
  numpy's signed loops are about twice as fast as its unsigned ones) with ``2**31`` folded into
  ``b``, so the signed minimum is the unsigned one.
* ``scheme="legacy"``, datasketch < 2.0's only scheme (``datasketch>=1.6`` still allows those
  versions), for signatures that must match old indexes:
  ``(a * h + b) % (2**61 - 1) & (2**32 - 1)`` in wrapping ``uint64``; signatures are ``uint64``
  below ``2**32``. The modulo uses the Mersenne identity ``x = (x & p) + (x >> 61) (mod p)``
  instead of numpy's slow integer division.

An empty document (no words) has datasketch's empty signature, every entry ``2**32 - 1``: all
empty documents look identical, so the pipeline should leave them out of near-dedup.

**Shingles.** With ``lowercase`` (the default) the text is lowercased and split into ``\\w+``
tokens, exactly ``re.findall(r"\\w+", text.lower())``, so case and punctuation edits do not hide
a duplicate; without it, ``text.split()``. The tokens are joined with single spaces; a word
shingle is ``ngram`` consecutive tokens of that string (a document with fewer tokens gives one
shingle of all of them), a char shingle ``ngram`` consecutive characters of it.
``MinHasher.shingles`` returns these strings; ``shingle_hashes`` finds the same tokens with numpy
on the code points (no regex, no per-word Python objects) and hashes them without building them.

**Shingle hash.** Not SHA-1, and not xxhash either: a shingle ``s`` of code points
``c_0 .. c_{L-1}`` hashes to::

    h = sum(c_i * P**i) + L * K  (mod 2**64),   hash = (h * M mod 2**64) >> 32

(``P``, ``K`` and ``M`` odd 64-bit constants below; the last step is multiply-shift hashing to
32 bits, and datasketch's ``fmix32`` pre-mix follows in ``signature``). ``shingle_hash`` is this
definition in plain Python, usable as datasketch's ``hashfunc``. Being polynomial, the hashes of
all of a document's shingles come from one prefix sum over its code points: a few numpy passes
per document instead of a Python call per shingle. Measured side by side on the benchmark corpus,
xxhash instead (``xxh32`` per shingle string, or ``xxh3_64`` per word combined into 5-grams with
numpy) makes ``signature_of`` 3.1x or 2.3x slower. The price: a polynomial hash mod ``2**64`` is
not adversarially robust (specially built strings of thousands of characters collide for any
``P``), which does not matter for deduplicating natural text, where distinct shingles collide at
the 32-bit rate of any hash.

Measured by ``bench/minhash.py`` on 2,000 Linux kernel documents (word 5-grams, 128
permutations, one core): ``signature_of`` is about 8x faster than datasketch's default
``MinHash(num_perm=128).update_batch`` (SHA-1 per shingle) from the same text, 6x when
datasketch is handed prebuilt shingle strings, with equally good Jaccard estimates.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from dataclasses import dataclass

import numpy as np
import xxhash

from winnow.filters.base import check_fraction, check_positive

REASONS = ("near_duplicate",)

SHINGLE_KINDS = ("word", "char")
VERIFY_MODES = ("none", "estimated", "exact")
SCHEMES = ("affine32", "legacy")


@dataclass(frozen=True)
class NearDedupConfig:
    enabled: bool = True
    threshold: float = 0.8
    """Jaccard similarity of two documents' shingle sets above which they are near-duplicates;
    also sets the LSH bands and rows (see ``lsh_params``)."""
    num_perm: int = 128
    """MinHash permutations per signature: more is more accurate and slower."""
    shingle: str = "word"
    """word (``ngram`` consecutive words) or char (``ngram`` consecutive characters)."""
    ngram: int = 5
    """Words per shingle (5, as datatrove), or characters per shingle for ``char``."""
    lowercase: bool = True
    """Shingle the lowercased text split into ``\\w+`` words, so case and punctuation edits do
    not hide duplicates; false splits the text as is on whitespace."""
    false_positive_weight: float = 0.05
    """Weight of false positives when choosing LSH bands and rows (the two weights sum to 1).
    Low, because ``verify`` checks every candidate pair anyway: LSH should favour recall."""
    false_negative_weight: float = 0.95
    """Weight of false negatives when choosing LSH bands and rows. At 0.95 and threshold 0.8
    LSH picks 16 bands x 8 rows, which finds 95% of pairs at Jaccard 0.8; datasketch's equal
    weights (9 x 13) find 40%, and near-dup F1 on bench/dedup_quality.py falls from 0.96 to
    0.92."""
    verify: str = "exact"
    """Check each LSH candidate pair before it becomes an edge: none, estimated (signature
    agreement >= threshold) or exact (Jaccard of the shingle hash sets >= threshold). exact by
    default: 128-permutation estimates have a standard error of 0.03 near 0.8, so estimated
    verification let 0.8% of copies at Jaccard 0.85+ escape on bench/dedup_end_to_end.py
    (recall 0.9924 against 0.9995). It ships the shingle hashes of documents in shared buckets
    only."""
    seed: int = 1
    """Seed of the MinHash permutations (datasketch's ``seed``)."""
    max_rounds: int = 10
    """Rounds of large-star/small-star connected components unrolled in the pipeline. Real
    near-duplicate graphs converge in a few; a run that needs more stops with an error saying
    so (it never writes unconverged clusters). Each round costs three shuffles of the edges."""
    scheme: str = "affine32"
    """MinHash permutation scheme: affine32 (datasketch >= 2.0's default) or legacy
    (datasketch < 2.0, for signatures that must match old indexes)."""

    def errors(self) -> list[str]:
        problems = []
        if not 0.0 < self.threshold < 1.0:
            problems.append(f"threshold must be between 0 and 1 (exclusive), "
                            f"got {self.threshold!r}")
        problems += check_positive("num_perm", self.num_perm)
        if self.shingle not in SHINGLE_KINDS:
            problems.append(f"shingle must be word or char, got {self.shingle!r}")
        problems += check_positive("ngram", self.ngram)
        problems += check_fraction("false_positive_weight", self.false_positive_weight)
        problems += check_fraction("false_negative_weight", self.false_negative_weight)
        if not math.isclose(self.false_positive_weight + self.false_negative_weight, 1.0):
            problems.append("false_positive_weight and false_negative_weight must sum to 1, got "
                            f"{self.false_positive_weight!r} + {self.false_negative_weight!r}")
        if self.verify not in VERIFY_MODES:
            problems.append(f"verify must be none, estimated or exact, got {self.verify!r}")
        if not 0 <= self.seed < 2**32:
            problems.append(f"seed must be between 0 and 2**32 - 1, got {self.seed!r}")
        problems += check_positive("max_rounds", self.max_rounds)
        if self.scheme not in SCHEMES:
            problems.append(f"scheme must be affine32 or legacy, got {self.scheme!r}")
        return problems

    def bands_and_rows(self) -> tuple[int, int]:
        """The LSH ``(bands, rows)`` for this threshold, number of permutations and weights."""
        return lsh_params(self.threshold, self.num_perm,
                          self.false_positive_weight, self.false_negative_weight)


# ---------------------------------------------------------------------------------------------
# LSH parameters
# ---------------------------------------------------------------------------------------------

_QUADRATURE_PIECES = 32
_QUADRATURE_NODES, _QUADRATURE_WEIGHTS = np.polynomial.legendre.leggauss(24)


def _integral(curves, low: float, high: float) -> np.ndarray:
    """Integrals over ``[low, high]`` of ``curves(s)`` (s: 1-D array of points -> one row of
    values per curve), by composite Gauss-Legendre quadrature: 32 pieces of 24 nodes. The
    integrands here are smooth polynomials, and the result is within 2e-11 of scipy's ``quad``
    (checked over 128 and 512 permutations), without importing scipy (0.5 s in every worker)."""
    edges = np.linspace(low, high, _QUADRATURE_PIECES + 1)
    half, middle = (edges[1:] - edges[:-1]) / 2, (edges[1:] + edges[:-1]) / 2
    points = (middle[:, None] + half[:, None] * _QUADRATURE_NODES).ravel()
    weights = (half[:, None] * _QUADRATURE_WEIGHTS).ravel()
    return curves(points) @ weights


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
               false_negative_weight: float = 0.5) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimizing the weighted probability of
    false positives (the S-curve ``1 - (1 - s**r)**b`` integrated over ``[0, threshold]``) plus
    false negatives (its complement over ``[threshold, 1]``): ``datasketch.lsh._optimal_param``'s
    choice, scanning ``b`` then ``r`` and keeping the first minimum as it does (the tests compare
    the two on a grid). All ``r`` of one ``b`` are integrated at once. Cached."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be at least 1, got {num_perm!r}")
    min_error = float("inf")
    best = (0, 0)
    for b in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // b + 1, dtype=np.float64)[:, None]  # (r, 1)

        def candidate(s, rows=rows, b=b):  # P(a pair at similarity s is a candidate)
            return 1 - (1 - s ** rows) ** b

        false_positives = _integral(candidate, 0.0, threshold)
        false_negatives = _integral(lambda s: 1 - candidate(s), threshold, 1.0)
        errors = false_positives * false_positive_weight + false_negatives * false_negative_weight
        r = int(np.argmin(errors))
        if errors[r] < min_error:
            min_error = float(errors[r])
            best = (b, r + 1)
    return best


# ---------------------------------------------------------------------------------------------
# Shingle hashing
# ---------------------------------------------------------------------------------------------

_U64 = np.uint64
_P = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64
_P_INV = pow(_P, -1, 1 << 64)
_K = 0xC2B2AE3D27D4EB4F  # odd; adds the shingle's length
_M = 0xFF51AFD7ED558CCD  # odd; multiply-shift to 32 bits
_MASK64 = (1 << 64) - 1
_FMIX32 = (np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35))

_SEGMENT = 1 << 20
"""Code points per prefix-sum segment: bounds the working memory of hashing a huge document."""
_BLOCK_VALUES = 128 * 1024
"""Permuted values computed at once by ``signature`` (shingles per block x permutations)."""

_WORD = re.compile(r"\w+")


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash of one shingle string, in plain Python: the reference for the vectorized
    hashing in ``MinHasher.shingle_hashes`` (and a ``hashfunc`` for ``datasketch.MinHash`` that
    reproduces it)."""
    h = 0
    power = 1
    for char in shingle:
        h = (h + ord(char) * power) & _MASK64
        power = (power * _P) & _MASK64
    h = (h + len(shingle) * _K) & _MASK64
    return ((h * _M) & _MASK64) >> 32


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (datasketch's pre-mix), on a copy."""
    h = h ^ (h >> np.uint32(16))
    h *= _FMIX32[0]
    h ^= h >> np.uint32(13)
    h *= _FMIX32[1]
    h ^= h >> np.uint32(16)
    return h


def _power_table(base: int, size: int) -> np.ndarray:
    powers = np.full(size, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, out=powers)  # wraps mod 2**64


_powers_cache: tuple[np.ndarray, np.ndarray] = (np.ones(1, np.uint64), np.ones(1, np.uint64))


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``P**i`` and ``P**-i`` (mod 2**64) for ``i < size``, or longer; cached up to a segment."""
    global _powers_cache
    if size <= len(_powers_cache[0]):
        return _powers_cache
    if size > _SEGMENT:  # one giant shingle: not worth keeping
        return _power_table(_P, size), _power_table(_P_INV, size)
    grown = min(max(size, 2 * len(_powers_cache[0]), 4096), _SEGMENT)
    _powers_cache = (_power_table(_P, grown), _power_table(_P_INV, grown))
    return _powers_cache


def _polynomials(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``sum(codes[s + i] * P**i)`` (mod 2**64) for each span ``[s, e)``, from one prefix sum."""
    size = codes.size
    powers, inverse_powers = _powers(size)
    prefix = np.zeros(size + 1, dtype=np.uint64)
    np.multiply(codes, powers[:size], out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])  # wraps mod 2**64
    polynomials = prefix[ends]
    polynomials -= prefix[starts]
    polynomials *= inverse_powers[starts]
    return polynomials


def _span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``shingle_hash`` of ``codes[s:e]`` for every span; both bounds nondecreasing. A huge
    document is hashed in segments of about ``_SEGMENT`` code points to bound the memory."""
    if codes.size <= _SEGMENT:
        hashes = _polynomials(codes, starts, ends)
    else:
        parts = []
        first = 0
        while first < starts.size:
            low = int(starts[first])
            stop = max(int(np.searchsorted(ends, low + _SEGMENT, side="right")), first + 1)
            high = int(ends[stop - 1])
            parts.append(_polynomials(codes[low:high], starts[first:stop] - low,
                                      ends[first:stop] - low))
            first = stop
        hashes = np.concatenate(parts)
    lengths = (ends - starts).astype(np.uint64)
    lengths *= _U64(_K)
    hashes += lengths
    hashes *= _U64(_M)
    hashes >>= _U64(32)
    return hashes.astype(np.uint32)


# \w as Python's re defines it (str.isalnum() or "_"), per code point, filled 256 at a time.
_IS_WORD = np.zeros(0x110000, dtype=bool)
_BLOCK_FILLED = np.zeros(0x110000 >> 8, dtype=bool)


def _fill_word_block(block: int) -> None:
    first = block << 8
    _IS_WORD[first:first + 256] = [chr(c).isalnum() or c == 95 for c in range(first, first + 256)]
    _BLOCK_FILLED[block] = True


_fill_word_block(0)
_ASCII_WORD_BYTES = bytes(_IS_WORD[:256] & (np.arange(256) < 128))


def _word_mask(codes: np.ndarray) -> np.ndarray:
    if codes.size and int(codes.max()) > 0xFF:
        blocks = np.unique(codes[codes > 0xFF] >> 8)
        for block in blocks[~_BLOCK_FILLED[blocks]].tolist():
            _fill_word_block(block)
    return _IS_WORD[codes]


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _join_words(codes: np.ndarray, is_word: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """The words (runs of ``is_word``) of ``codes`` joined by single spaces, with the start and
    end of each word in the joined array."""
    padded = np.zeros(codes.size + 2, dtype=bool)
    padded[1:-1] = is_word
    bounds = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = bounds[0::2], bounds[1::2]
    if starts.size == 0:
        return codes[:0], starts, ends
    keep = padded[1:-1]
    keep[ends[:-1]] = True  # the first character after each word but the last: its separator
    joined = codes[keep]
    lengths = ends - starts
    starts = np.zeros_like(lengths)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    ends = starts + lengths
    joined[ends[:-1]] = 32
    return joined, starts, ends


def _unique_sorted(values: np.ndarray) -> np.ndarray:
    values.sort()
    if values.size > 1:
        keep = np.empty(values.size, dtype=bool)
        keep[0] = True
        np.not_equal(values[1:], values[:-1], out=keep[1:])
        values = values[keep]
    return values


# ---------------------------------------------------------------------------------------------
# MinHash
# ---------------------------------------------------------------------------------------------

class MinHasher:
    """Shingles, shingle hashes and MinHash signatures, datasketch-compatible (module docstring).

    Immutable after construction (the repeated permutation blocks are built lazily, 1 MB for
    128 permutations): safe to share between threads; pickles as its arguments.
    """

    def __init__(self, num_perm: int = 128, seed: int = 1, shingle: str = "word", ngram: int = 5,
                 lowercase: bool = True, scheme: str = "affine32") -> None:
        if num_perm < 1:
            raise ValueError(f"num_perm must be at least 1, got {num_perm!r}")
        if shingle not in SHINGLE_KINDS:
            raise ValueError(f"shingle must be word or char, got {shingle!r}")
        if ngram < 1:
            raise ValueError(f"ngram must be at least 1, got {ngram!r}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be affine32 or legacy, got {scheme!r}")
        self.num_perm = num_perm
        self.seed = seed
        self.shingle = shingle
        self.ngram = ngram
        self.lowercase = lowercase
        self.scheme = scheme
        generator = np.random.RandomState(seed)
        if scheme == "legacy":
            prime = np.uint64((1 << 61) - 1)
            pairs = [(generator.randint(1, prime, dtype=np.uint64),
                      generator.randint(0, prime, dtype=np.uint64)) for _ in range(num_perm)]
            self.permutations = np.array(pairs, dtype=np.uint64).T
            self._empty = np.full(num_perm, (1 << 32) - 1, dtype=np.uint64)
        else:
            a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2)
            a += np.uint32(1)
            b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
            self.permutations = np.array([a, b])
            self._empty = np.full(num_perm, (1 << 32) - 1, dtype=np.uint32)
        self._block = max(64, _BLOCK_VALUES // num_perm)
        self._a_block: np.ndarray | None = None  # built on first use (see _affine_blocks)
        self._b_block: np.ndarray | None = None

    @classmethod
    def from_config(cls, config: NearDedupConfig) -> MinHasher:
        return cls(num_perm=config.num_perm, seed=config.seed, shingle=config.shingle,
                   ngram=config.ngram, lowercase=config.lowercase, scheme=config.scheme)

    def __reduce__(self):
        return (MinHasher, (self.num_perm, self.seed, self.shingle, self.ngram, self.lowercase,
                            self.scheme))

    # -- shingles ---------------------------------------------------------------------------

    def _tokens(self, text: str) -> list[str]:
        return _WORD.findall(text.lower()) if self.lowercase else text.split()

    def shingles(self, text: str) -> list[str]:
        """The document's shingle strings (with repeats), in order: the reference definition that
        ``shingle_hashes`` hashes without building them. Empty text gives none."""
        tokens = self._tokens(text)
        if not tokens:
            return []
        n = self.ngram
        if self.shingle == "word":
            return [" ".join(tokens[i:i + n]) for i in range(max(1, len(tokens) - n + 1))]
        joined = " ".join(tokens)
        return [joined[i:i + n] for i in range(max(1, len(joined) - n + 1))]

    def _normalized(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Code points of the tokens joined by single spaces, and each token's start and end."""
        if self.lowercase:
            lowered = text.lower()
            if lowered.isascii():  # the common case: bytes, and a C-speed word mask
                data = lowered.encode("ascii")
                codes = np.frombuffer(data, dtype=np.uint8)
                is_word = np.frombuffer(data.translate(_ASCII_WORD_BYTES), dtype=bool)
            else:
                codes = _code_points(lowered)
                is_word = _word_mask(codes)
            return _join_words(codes, is_word)
        joined = " ".join(text.split())
        if joined.isascii():
            codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        else:
            codes = _code_points(joined)
        spaces = np.flatnonzero(codes == 32)
        starts = np.empty(spaces.size + 1, dtype=np.intp)
        starts[0] = 0
        np.add(spaces, 1, out=starts[1:])
        ends = np.empty(spaces.size + 1, dtype=np.intp)
        ends[:-1] = spaces
        ends[-1] = codes.size
        if codes.size == 0:
            return codes, starts[:0], ends[:0]
        return codes, starts, ends

    def shingle_hashes(self, text: str) -> np.ndarray:
        """Sorted unique ``uint32`` hashes (``shingle_hash``) of the document's shingles."""
        codes, starts, ends = self._normalized(text)
        if starts.size == 0:
            return np.zeros(0, dtype=np.uint32)
        n = self.ngram
        if self.shingle == "word":
            if starts.size >= n:
                starts, ends = starts[:starts.size - n + 1], ends[n - 1:]
            else:
                starts, ends = starts[:1], ends[-1:]
        elif codes.size >= n:
            starts = np.arange(codes.size - n + 1)
            ends = starts + n
        else:
            starts, ends = np.zeros(1, np.intp), np.full(1, codes.size, np.intp)
        return _unique_sorted(_span_hashes(codes, starts, ends))

    # -- signatures -------------------------------------------------------------------------

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash signature of a set of 32-bit hashes: shape ``(num_perm,)``, ``uint32`` for
        affine32, ``uint64`` (values < 2**32) for legacy; equal to datasketch's ``hashvalues``
        after ``update_batch`` of values that its ``hashfunc`` maps to these hashes. No hashes
        give datasketch's empty signature (every entry ``2**32 - 1``)."""
        values = np.asarray(hashes).reshape(-1)
        if values.size == 0:
            return self._empty.copy()
        if values.dtype != np.uint32:
            if values.dtype.kind not in "iu":
                raise TypeError(f"hashes must be integers, got {values.dtype}")
            if values.min() < 0 or values.max() > (1 << 32) - 1:
                raise ValueError("hashes must lie in [0, 2**32)")
            values = values.astype(np.uint32)
        if self.scheme == "legacy":
            return self._signature_legacy(values.astype(np.uint64))
        mixed = _fmix32(values).view(np.int32)
        a_block, b_block = self._affine_blocks()
        size = mixed.size
        if size <= self._block:  # one block: most documents
            permuted = a_block[:, :size] * mixed
            permuted += b_block[:, :size]
            result = permuted.min(axis=1)
        else:
            result = np.full(self.num_perm, 2**31 - 1, dtype=np.int32)
            permuted = np.empty((self.num_perm, self._block), dtype=np.int32)
            for first in range(0, size, self._block):
                chunk = mixed[first:first + self._block]
                block = permuted[:, :chunk.size]
                np.multiply(a_block[:, :chunk.size], chunk, out=block)
                block += b_block[:, :chunk.size]
                np.minimum(result, block.min(axis=1), out=result)
        return result.view(np.uint32) ^ np.uint32(1 << 31)

    def _affine_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """``a`` and ``b`` as ``int32`` (the same bits: numpy's signed loops are SIMD, its unsigned
        ones are not), ``b`` plus ``2**31`` so that the signed minimum is the unsigned one (the
        top bit flips back at the end), each repeated over a block's columns: numpy multiplies
        two vectors about 1.4x faster than a scalar and a vector."""
        if self._a_block is None:
            a, b = self.permutations
            shape = (self.num_perm, self._block)
            b_signed = (b + np.uint32(1 << 31)).view(np.int32)
            self._b_block = np.ascontiguousarray(np.broadcast_to(b_signed[:, None], shape))
            self._a_block = np.ascontiguousarray(np.broadcast_to(a.view(np.int32)[:, None], shape))
        assert self._b_block is not None
        return self._a_block, self._b_block

    def _signature_legacy(self, values: np.ndarray) -> np.ndarray:
        prime = np.uint64((1 << 61) - 1)
        a = self.permutations[0].reshape(-1, 1)
        b = self.permutations[1].reshape(-1, 1)
        result = self._empty.copy()
        block = np.empty((self.num_perm, min(self._block, values.size)), dtype=np.uint64)
        low = np.empty_like(block)
        for first in range(0, values.size, self._block):
            chunk = values[first:first + self._block]
            x = block[:, :chunk.size]
            lo = low[:, :chunk.size]
            np.multiply(a, chunk, out=x)  # wraps mod 2**64, as datasketch's does
            x += b
            # x % p == (x & p) + (x >> 61), less p when that reaches p; the low 32 bits of
            # r - p are those of r + 1 (p = 2**61 - 1).
            np.bitwise_and(x, prime, out=lo)
            x >>= np.uint64(61)
            x += lo
            np.greater_equal(x, prime, out=lo, casting="unsafe")
            x += lo
            x &= np.uint64((1 << 32) - 1)
            np.minimum(result, x.min(axis=1), out=result)
        return result

    def signature_of(self, text: str) -> np.ndarray:
        """``signature(shingle_hashes(text))``."""
        return self.signature(self.shingle_hashes(text))


# ---------------------------------------------------------------------------------------------
# LSH keys and similarities
# ---------------------------------------------------------------------------------------------

def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One 16-byte key per band: xxh3_128 of the band index and the band's values (as
    little-endian uint64, whatever the signature's dtype). Two documents are LSH candidates when
    they share a key; the index keeps equal values in different bands apart."""
    values = np.asarray(signature).reshape(-1)
    if bands < 1 or rows < 1 or bands * rows > values.size:
        raise ValueError(f"{bands} bands x {rows} rows do not fit a signature of {values.size}")
    data = values[:bands * rows].astype("<u8").tobytes()
    width = rows * 8
    return [xxhash.xxh3_128_digest(struct.pack("<I", band) + data[band * width:(band + 1) * width])
            for band in range(bands)]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of equal entries of two signatures: MinHash's estimate of their Jaccard."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"signatures of different or empty shapes: {a.shape}, {b.shape}")
    return float(np.count_nonzero(a == b)) / a.size


def exact_jaccard(a_hashes: np.ndarray, b_hashes: np.ndarray) -> float:
    """Jaccard similarity of two sets of shingle hashes (1.0 for two empty sets)."""
    a, b = np.unique(a_hashes), np.unique(b_hashes)
    if a.size == 0 and b.size == 0:
        return 1.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)
