"""Tests for filters.minhash: datasketch compatibility, shingling, LSH keys and the config."""

from __future__ import annotations

import inspect
import pickle
import random
import re

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from winnow.filters import minhash
from winnow.filters.minhash import (
    MinHasher,
    NearDedupConfig,
    band_keys,
    estimated_jaccard,
    exact_jaccard,
    lsh_params,
    shingle_hash,
)

HAS_SCHEMES = "scheme" in inspect.signature(MinHash.__init__).parameters

VOCABULARY = ("the kernel driver module memory page device file system lock thread queue buffer "
              "interrupt register value table entry list node tree user process signal timer "
              "cache flush write read open close map unmap scheduler task cpu core").split()


def random_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCABULARY) + str(rng.randrange(50)) for _ in range(words))


def datasketch_minhash(num_perm: int, seed: int, hashfunc, scheme: str) -> MinHash:
    if HAS_SCHEMES:
        return MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc, scheme=scheme)
    if scheme != "legacy":
        pytest.skip("datasketch < 2.0 has only the legacy scheme")
    return MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc)


# ---------------------------------------------------------------------------------------------
# LSH parameters
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_lsh_params_equal_datasketch_on_a_grid(num_perm):
    for step in range(18):
        threshold = round(0.1 + 0.05 * step, 2)
        assert lsh_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5), \
            (threshold, num_perm)


@pytest.mark.parametrize("weights", [(0.3, 0.7), (0.7, 0.3), (0.1, 0.9)])
def test_lsh_params_equal_datasketch_with_weights(weights):
    for threshold in (0.6, 0.8, 0.9):
        assert lsh_params(threshold, 128, *weights) == _optimal_param(threshold, 128, *weights)


def test_config_bands_and_rows():
    config = NearDedupConfig()
    bands, rows = config.bands_and_rows()
    # Recall-leaning weights: verification removes the extra false positives.
    assert (bands, rows) == lsh_params(0.8, 128, 0.05, 0.95) == (16, 8)
    assert lsh_params(0.8, 128) == (9, 13)  # datasketch's equal weights
    assert bands * rows <= config.num_perm


# ---------------------------------------------------------------------------------------------
# Signatures: exactly datasketch's
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_permutations_equal_datasketch(scheme):
    for num_perm, seed in ((128, 1), (64, 7), (256, 12345)):
        ours = MinHasher(num_perm=num_perm, seed=seed, scheme=scheme).permutations
        theirs = datasketch_minhash(num_perm, seed, None, scheme).permutations
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 3), (200, 42)])
def test_signature_equals_datasketch_given_the_same_hash_values(scheme, num_perm, seed):
    hasher = MinHasher(num_perm=num_perm, seed=seed, scheme=scheme)
    rng = np.random.default_rng(seed)
    for size in (1, 2, 37, 500, 3000):  # 3000 shingles: several blocks
        hashes = rng.integers(0, 2**32, size, dtype=np.uint64)
        hashes[:2] = [0, 2**32 - 1][:size]  # the extremes
        reference = datasketch_minhash(num_perm, seed, lambda value: value, scheme)
        reference.update_batch([int(value) for value in hashes])
        ours = hasher.signature(hashes.astype(np.uint32))
        assert ours.dtype == reference.hashvalues.dtype
        assert np.array_equal(ours, reference.hashvalues), size
        assert np.array_equal(hasher.signature(hashes), ours)  # uint64 input, same values


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signature_of_random_texts_equals_datasketch_with_our_shingle_hash(scheme):
    rng = random.Random(5)
    hasher = MinHasher(scheme=scheme)
    for words in (1, 3, 5, 6, 80, 1500):
        text = random_text(rng, words)
        reference = datasketch_minhash(128, 1, shingle_hash, scheme)
        reference.update_batch(hasher.shingles(text))
        assert np.array_equal(hasher.signature_of(text), reference.hashvalues), words


def test_signature_of_nothing_is_datasketchs_empty_signature():
    for scheme in ("affine32", "legacy"):
        empty = MinHasher(scheme=scheme).signature(np.zeros(0, np.uint32))
        reference = datasketch_minhash(128, 1, None, scheme)
        assert empty.dtype == reference.hashvalues.dtype
        assert np.array_equal(empty, reference.hashvalues)


def test_signature_rejects_values_outside_32_bits():
    hasher = MinHasher()
    with pytest.raises(ValueError):
        hasher.signature(np.array([2**32], dtype=np.uint64))
    with pytest.raises(ValueError):
        hasher.signature(np.array([-1], dtype=np.int64))
    with pytest.raises(TypeError):
        hasher.signature(np.array([0.5]))


def test_signature_order_and_duplicates_do_not_matter():
    hasher = MinHasher()
    hashes = np.random.default_rng(0).integers(0, 2**32, 1000, dtype=np.uint64).astype(np.uint32)
    shuffled = np.concatenate([hashes[::-1], hashes[:100]])
    assert np.array_equal(hasher.signature(hashes), hasher.signature(shuffled))


# ---------------------------------------------------------------------------------------------
# Shingle hashes
# ---------------------------------------------------------------------------------------------

UNICODE_TEXTS = [
    "Héllo, WÖRLD!  Ça va? naïve café; İstanbul ß",
    "日本語のテキスト、漢字とかな。 English words too",
    "snake_case and__dunder__ names, x1 2x ½ ² ٣ — “quoted” ‘text’",
    "tabs\tand\nnewlines\r\n\u2028line separator\u00a0nbsp \x00nul \ud800 lone surrogate",
    "Ünïcödé ŒUVRE ǅ ǈ ﬁ ligature ΣΑΣ σας",
    "emoji 🙂 in 🙃 text 👍🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
]


@pytest.mark.parametrize("shingle,ngram", [("word", 5), ("word", 1), ("word", 3), ("char", 5),
                                           ("char", 1)])
@pytest.mark.parametrize("lowercase", [True, False])
def test_shingle_hashes_are_the_hashes_of_the_shingle_strings(shingle, ngram, lowercase):
    hasher = MinHasher(shingle=shingle, ngram=ngram, lowercase=lowercase)
    rng = random.Random(11)
    texts = UNICODE_TEXTS + [random_text(rng, n) for n in (0, 1, 4, 5, 30, 400)] + [
        "", "   ", "...!?", "a", "A b", "one two three four five six"]
    for text in texts:
        expected = np.unique(np.array([shingle_hash(s) for s in hasher.shingles(text)],
                                      dtype=np.uint32))
        got = hasher.shingle_hashes(text)
        assert got.dtype == np.uint32
        assert np.array_equal(got, expected), text


def test_words_are_exactly_re_w_tokens_of_the_lowercased_text():
    rng = random.Random(3)
    alphabet = [chr(c) for c in range(0x20, 0x250)] + list("日本語のテキスト٣½²🙂𝔘\u00a0\u2028_")
    hasher = MinHasher(shingle="word", ngram=1)
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        words = re.findall(r"\w+", text.lower())
        expected = np.unique(np.array([shingle_hash(w) for w in words], dtype=np.uint32))
        assert np.array_equal(hasher.shingle_hashes(text), expected), text


def test_huge_documents_are_hashed_in_segments(monkeypatch):
    rng = random.Random(8)
    text = random_text(rng, 3000)
    hasher = MinHasher()
    whole = hasher.shingle_hashes(text)
    monkeypatch.setattr(minhash, "_SEGMENT", 64)  # forces ~400 segments
    monkeypatch.setattr(minhash, "_powers_cache", (np.ones(1, np.uint64),) * 2)  # regrown
    assert np.array_equal(hasher.shingle_hashes(text), whole)
    giant = "x" * 200 + " " + text[:500]  # a word longer than a segment
    monkeypatch.setattr(minhash, "_SEGMENT", 1 << 20)
    expected = hasher.shingle_hashes(giant)
    monkeypatch.setattr(minhash, "_SEGMENT", 64)
    assert np.array_equal(hasher.shingle_hashes(giant), expected)


def test_short_texts_give_one_shingle_of_all_their_words():
    hasher = MinHasher(ngram=5)
    assert hasher.shingles("Hello, world!") == ["hello world"]
    hashes = hasher.shingle_hashes("Hello, world!")
    assert hashes.tolist() == [shingle_hash("hello world")]
    assert hasher.shingles("a b c d e") == ["a b c d e"]
    assert hasher.shingles("a b c d e f") == ["a b c d e", "b c d e f"]


def test_empty_text_gives_no_hashes_and_the_empty_signature():
    hasher = MinHasher()
    for text in ("", "   \n\t", "!!! ... ---"):
        hashes = hasher.shingle_hashes(text)
        assert hashes.size == 0 and hashes.dtype == np.uint32
        assert (hasher.signature_of(text) == 2**32 - 1).all()


def test_char_shingles():
    hasher = MinHasher(shingle="char", ngram=3)
    assert hasher.shingles("Ab, cd!") == ["ab ", "b c", " cd"]
    assert hasher.shingles("Ab") == ["ab"]
    assert hasher.shingles("") == []
    assert hasher.shingle_hashes("Ab, cd!").tolist() == sorted(
        {shingle_hash(s) for s in ("ab ", "b c", " cd")})
    # character n-grams see a one-letter typo as a small change
    text = random_text(random.Random(1), 100)
    typo = text.replace("kernel", "kernle", 1) if "kernel" in text else text + "x"
    assert exact_jaccard(hasher.shingle_hashes(text), hasher.shingle_hashes(typo)) > 0.95


def test_lowercase_ignores_case_and_punctuation_only_when_on():
    a = "The Kernel, the DRIVER; and the module's memory pages (see below)."
    b = "the kernel the driver and the module s memory pages see below"
    on, off = MinHasher(lowercase=True), MinHasher(lowercase=False)
    assert np.array_equal(on.shingle_hashes(a), on.shingle_hashes(b))
    assert np.array_equal(on.signature_of(a), on.signature_of(b))
    assert exact_jaccard(off.shingle_hashes(a), off.shingle_hashes(b)) == 0.0
    assert off.shingles("Foo  Bar,\nbaz") == ["Foo Bar, baz"]
    # whitespace never matters
    assert np.array_equal(off.shingle_hashes("a  b\n\nc d e f"), off.shingle_hashes("a b c d e f"))


# ---------------------------------------------------------------------------------------------
# Similarities and band keys
# ---------------------------------------------------------------------------------------------

def test_identical_texts_give_identical_signatures_and_band_keys():
    hasher = MinHasher()
    text = random_text(random.Random(2), 300)
    first, second = hasher.signature_of(text), hasher.signature_of(str(text))
    assert np.array_equal(first, second)
    assert estimated_jaccard(first, second) == 1.0
    assert band_keys(first, 9, 13) == band_keys(second, 9, 13)


def test_one_word_changed_in_200_estimates_close_to_exact():
    rng = random.Random(4)
    hasher = MinHasher()
    for _ in range(5):
        words = random_text(rng, 200).split()
        changed = list(words)
        changed[rng.randrange(200)] = "replacement"
        a, b = " ".join(words), " ".join(changed)
        exact = exact_jaccard(hasher.shingle_hashes(a), hasher.shingle_hashes(b))
        assert 0.9 < exact < 1.0
        estimate = estimated_jaccard(hasher.signature_of(a), hasher.signature_of(b))
        assert abs(estimate - exact) < 0.1


def test_disjoint_texts_estimate_about_zero():
    hasher = MinHasher()
    a = " ".join(f"alpha{i}" for i in range(300))
    b = " ".join(f"beta{i}" for i in range(300))
    assert exact_jaccard(hasher.shingle_hashes(a), hasher.shingle_hashes(b)) == 0.0
    assert estimated_jaccard(hasher.signature_of(a), hasher.signature_of(b)) < 0.05


def test_exact_jaccard():
    assert exact_jaccard(np.array([1, 2, 3]), np.array([2, 3, 4])) == 0.5
    assert exact_jaccard(np.array([1, 1, 2]), np.array([2, 1])) == 1.0
    assert exact_jaccard(np.array([], np.uint32), np.array([1], np.uint32)) == 0.0
    assert exact_jaccard(np.array([], np.uint32), np.array([], np.uint32)) == 1.0


def test_estimated_jaccard_needs_equal_shapes():
    assert estimated_jaccard(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5
    with pytest.raises(ValueError):
        estimated_jaccard(np.zeros(4), np.zeros(5))


def test_band_keys_one_per_band_and_the_band_index_is_part_of_the_key():
    signature = np.full(128, 7, dtype=np.uint32)  # every band has the same contents
    keys = band_keys(signature, 9, 13)
    assert len(keys) == 9
    assert all(isinstance(key, bytes) and len(key) == 16 for key in keys)
    assert len(set(keys)) == 9
    # a key depends on its band's values only, whatever the signature's dtype
    other = signature.astype(np.uint64)
    other[-1] = 0  # outside the 9 x 13 = 117 banded rows
    assert band_keys(other, 9, 13) == keys
    other[13] = 8  # row 0 of band 1
    changed = band_keys(other, 9, 13)
    assert [a == b for a, b in zip(keys, changed, strict=True)] == [True, False] + [True] * 7
    with pytest.raises(ValueError):
        band_keys(signature, 10, 13)


def test_near_duplicates_share_a_band_and_unrelated_documents_do_not():
    rng = random.Random(9)
    hasher = MinHasher()
    bands, rows = lsh_params(0.8, 128)
    words = random_text(rng, 400).split()
    near = list(words)
    near[100] = "edited"
    unrelated = random_text(rng, 400)
    keys = set(band_keys(hasher.signature_of(" ".join(words)), bands, rows))
    assert keys & set(band_keys(hasher.signature_of(" ".join(near)), bands, rows))
    assert not keys & set(band_keys(hasher.signature_of(unrelated), bands, rows))


# ---------------------------------------------------------------------------------------------
# Construction and config
# ---------------------------------------------------------------------------------------------

def test_from_config_and_pickling():
    config = NearDedupConfig(num_perm=64, seed=9, shingle="char", ngram=4, lowercase=False,
                             scheme="legacy")
    hasher = MinHasher.from_config(config)
    assert (hasher.num_perm, hasher.seed, hasher.shingle, hasher.ngram, hasher.lowercase,
            hasher.scheme) == (64, 9, "char", 4, False, "legacy")
    text = "Some text, to shingle by characters."
    copy = pickle.loads(pickle.dumps(hasher))
    assert np.array_equal(copy.signature_of(text), hasher.signature_of(text))
    assert hasher.signature_of(text).shape == (64,)


def test_large_documents_are_processed_in_blocks():
    hasher = MinHasher()
    assert hasher._block * hasher.num_perm * 4 <= 1 << 20  # at most 1 MB of permuted values
    hashes = np.arange(100_000, dtype=np.uint32) * np.uint32(40503)
    reference = datasketch_minhash(128, 1, lambda value: value, "affine32")
    reference.update_batch(hashes.tolist())
    assert np.array_equal(hasher.signature(hashes), reference.hashvalues)


def test_minhasher_rejects_bad_arguments():
    for kwargs in ({"num_perm": 0}, {"shingle": "line"}, {"ngram": 0}, {"scheme": "affine64"}):
        with pytest.raises(ValueError):
            MinHasher(**kwargs)


def test_default_config_is_valid():
    assert NearDedupConfig().errors() == []


@pytest.mark.parametrize("changes,field", [
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": 0.0}, "threshold"),
    ({"shingle": "line"}, "shingle"),
    ({"verify": "maybe"}, "verify"),
    ({"num_perm": 0}, "num_perm"),
    ({"ngram": 0}, "ngram"),
    ({"false_positive_weight": 0.7}, "must sum to 1"),
    ({"false_negative_weight": -0.5, "false_positive_weight": 1.5}, "false_positive_weight"),
    ({"seed": -1}, "seed"),
    ({"max_rounds": 0}, "max_rounds"),
    ({"scheme": "affine64"}, "scheme"),
])
def test_config_errors(changes, field):
    problems = NearDedupConfig(**changes).errors()
    assert problems and any(field in problem for problem in problems), problems


def test_config_reports_every_problem_at_once():
    problems = NearDedupConfig(threshold=1.5, shingle="line", verify="maybe", num_perm=0).errors()
    assert len(problems) == 4


def test_every_config_field_has_a_docstring():
    source = inspect.getsource(NearDedupConfig)
    for name in NearDedupConfig.__dataclass_fields__:
        if name == "enabled":
            continue
        assert re.search(rf"\n    {name}: .*\n    \"\"\"", source), name


def test_signatures_do_not_need_datasketch_at_run_time():
    # (the layering rules for every filters module are in tests/test_architecture.py)
    source = inspect.getsource(minhash)
    assert not re.search(r"^\s*(import|from) datasketch", source, re.MULTILINE)
