"""MinHash signatures from raw text: winnow's MinHasher against datasketch's default.

    python bench/minhash.py [../shared/corpora/linux-doc.jsonl.gz] [--limit 2000]

Both sides start from the raw text and use the same word 5-gram shingle strings
(``MinHasher.shingles``: lowercased ``\\w+`` words, as datasketch users build them by hand):

(a) ``datasketch.MinHash(num_perm=128).update_batch([s.encode() for s in shingles])``, the
    default SHA-1 hash per shingle;
(b) ``MinHasher().signature_of(text)``.

The two are timed side by side, alternating, best of ``--repeats``, in one process on one core;
(a) is also timed from prebuilt shingle strings, to show what its hashing alone costs. Then the
Jaccard estimates of both are compared with the exact Jaccard of the shingle sets over document
pairs that span the whole similarity range (each document against a copy with a random fraction,
up to 40%, of its words replaced).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time

import numpy as np
from datasketch import MinHash

from winnow.filters.minhash import MinHasher, estimated_jaccard, lsh_params

DEFAULT_CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "..", "shared", "corpora", "linux-doc.jsonl.gz")


def read_texts(path: str, limit: int) -> list[str]:
    texts = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if len(texts) >= limit:
                break
            text = json.loads(line).get("text") or ""
            if text.strip():
                texts.append(text)
    return texts


def datasketch_from_text(hasher: MinHasher, texts: list[str]) -> list[np.ndarray]:
    signatures = []
    for text in texts:
        minhash = MinHash(num_perm=hasher.num_perm)
        minhash.update_batch([s.encode("utf-8") for s in hasher.shingles(text)])
        signatures.append(minhash.hashvalues)
    return signatures


def datasketch_from_shingles(hasher: MinHasher, shingle_lists: list[list[str]]) -> None:
    for shingles in shingle_lists:
        minhash = MinHash(num_perm=hasher.num_perm)
        minhash.update_batch([s.encode("utf-8") for s in shingles])


def ours_from_text(hasher: MinHasher, texts: list[str]) -> list[np.ndarray]:
    return [hasher.signature_of(text) for text in texts]


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def mutate(text: str, fraction: float, rng: random.Random) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), int(len(words) * fraction)):
        words[i] = f"w{rng.randrange(10**9)}"
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", default=DEFAULT_CORPUS,
                        help="JSONL(.gz) with a 'text' field")
    parser.add_argument("--limit", type=int, default=2000, help="documents to read")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (best is kept)")
    parser.add_argument("--pairs", type=int, default=300, help="document pairs for accuracy")
    args = parser.parse_args()

    texts = read_texts(args.corpus, args.limit)
    hasher = MinHasher()  # 128 permutations, seed 1, word 5-grams, lowercase, affine32
    shingle_lists = [hasher.shingles(text) for text in texts]
    total_shingles = sum(map(len, shingle_lists))
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    print(f"corpus: {os.path.basename(args.corpus)}: {len(texts):,} documents, "
          f"{megabytes:.1f} MB, {total_shingles:,} word 5-gram shingles; "
          f"num_perm={hasher.num_perm}; best of {args.repeats}, alternating")

    best = {"datasketch": float("inf"), "datasketch_prebuilt": float("inf"),
            "ours": float("inf")}
    for _ in range(args.repeats):
        best["datasketch"] = min(best["datasketch"], timed(datasketch_from_text, hasher, texts))
        best["ours"] = min(best["ours"], timed(ours_from_text, hasher, texts))
        best["datasketch_prebuilt"] = min(best["datasketch_prebuilt"],
                                          timed(datasketch_from_shingles, hasher, shingle_lists))
        best["ours"] = min(best["ours"], timed(ours_from_text, hasher, texts))
    rows = [
        ("(a) datasketch MinHash, SHA-1, from text", best["datasketch"]),
        ("    datasketch, from prebuilt shingles", best["datasketch_prebuilt"]),
        ("(b) winnow MinHasher.signature_of, from text", best["ours"]),
    ]
    for name, seconds in rows:
        print(f"{name:<46} {seconds:7.3f} s {len(texts) / seconds:9.0f} docs/s "
              f"{total_shingles / seconds / 1e6:6.2f} M shingles/s")
    print(f"speed-up of (b) over (a): {best['datasketch'] / best['ours']:.1f}x "
          f"(over datasketch from prebuilt shingles: "
          f"{best['datasketch_prebuilt'] / best['ours']:.1f}x)")

    rng = random.Random(0)
    sample = rng.sample(texts, min(args.pairs, len(texts)))
    errors_datasketch, errors_ours, exacts = [], [], []
    for text in sample:
        other = mutate(text, rng.uniform(0.0, 0.4), rng)
        a_shingles, b_shingles = set(hasher.shingles(text)), set(hasher.shingles(other))
        exact = len(a_shingles & b_shingles) / len(a_shingles | b_shingles)
        a_minhash, b_minhash = MinHash(num_perm=128), MinHash(num_perm=128)
        a_minhash.update_batch([s.encode("utf-8") for s in a_shingles])
        b_minhash.update_batch([s.encode("utf-8") for s in b_shingles])
        ours = estimated_jaccard(hasher.signature_of(text), hasher.signature_of(other))
        exacts.append(exact)
        errors_datasketch.append(a_minhash.jaccard(b_minhash) - exact)
        errors_ours.append(ours - exact)
    errors_datasketch, errors_ours = np.array(errors_datasketch), np.array(errors_ours)
    print(f"Jaccard estimates vs exact over {len(sample)} pairs "
          f"(exact Jaccard mean {np.mean(exacts):.3f}, range {min(exacts):.3f}-{max(exacts):.3f}):")
    print(f"  datasketch: mean |error| {np.abs(errors_datasketch).mean():.4f}, "
          f"mean error {errors_datasketch.mean():+.4f}")
    print(f"  winnow:     mean |error| {np.abs(errors_ours).mean():.4f}, "
          f"mean error {errors_ours.mean():+.4f}")
    bands, rows_per_band = lsh_params(0.8, 128)
    print(f"lsh_params(threshold=0.8, num_perm=128) = ({bands} bands, {rows_per_band} rows)")


if __name__ == "__main__":
    main()
