"""A near-duplicate benchmark with known clusters, built from real documents.

Used by ``bench/dedup_quality.py`` (see its docstring for the command line). Every number here
uses the stage's own shingling (``MinHasher.shingle_hashes``: lowercased ``\\w+`` words, word
5-grams) and ``exact_jaccard``, so "duplicate" means exactly what ``near_dedup.threshold`` means.

1. **Originals**: documents of 200..5,000 words drawn (seeded) from the corpora, each passed
   through the ``normalize`` stage's ``normalize_text`` so that the stage sees the same text the
   ground truth was computed on. Originals that are already similar to an earlier pick (exact
   Jaccard >= ``clean_bound``, well below the threshold) are skipped, so no two families can be
   bridged by their variants: the corpora hold near-duplicate files (kernel docs copied between
   architectures, say) whose pairs would otherwise be unlabelled duplicates.
2. **Variants**: 1..4 per original, each of one kind: ``edit`` (substitute, insert or delete
   1-5% of the words), ``boilerplate`` (a 20-60 word header, footer or both), ``truncate`` (drop
   the last 5-15% of the words), ``reorder`` (permute 2..6 of the paragraphs), or a ``combo`` of
   two of those. A variant is a true duplicate only when its exact Jaccard to its original is at
   least the threshold (or is joined to it through another variant, see 4); the others are
   *relabelled distinct* and stay in the input as hard negatives just below the threshold (they
   are counted and reported, never regenerated, so the benchmark does not quietly drop the cases
   the stage finds hard).
3. **Near misses**: for half of the originals one document built to lie well below the
   threshold: ``heavy_edit`` (6-12% of the words edited) or ``overlap`` (the first 60-80% of the
   original followed by text of a document that is not an original), redrawn (up to 5 times)
   until its Jaccard to the original is below threshold - 0.1. Labelled by the same rule.
4. **Labels**: the truth clusters are the connected components of the pairs at exact Jaccard
   >= the threshold: each (original, variant) pair, plus every other such pair among all the
   documents (found through LSH tuned well below the threshold, then exact Jaccard). Those others
   are few (two truncations of a short original, below the threshold to it but above it to each
   other) and are reported; a variant they join to its original's cluster counts as a true
   duplicate. Nothing joins two families: the cleaning in 1 sees to that.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from winnow.filters.minhash import MinHasher, band_keys, exact_jaccard, lsh_params
from winnow.filters.normalize import NormalizeConfig, normalize_text

_WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
BASE_KINDS = ("edit", "boilerplate", "truncate", "reorder")
VARIANT_KINDS = BASE_KINDS + ("combo",)
NEAR_MISS_KINDS = ("heavy_edit", "overlap")

# Sentences of the kind sites and packagers wrap documents in. A revision number is added to
# each use so that two documents given the same sentences still differ a little.
BOILERPLATE = (
    "This page is part of the project documentation and is maintained by volunteers.",
    "Copyright the contributors. Licensed under the terms given in the accompanying license file.",
    "Report errors and suggest improvements through the issue tracker or the mailing list.",
    "Last updated automatically by the documentation build; see the changelog for history.",
    "Navigation: home | index | modules | next | previous | search | contents",
    "You are reading an archived copy of this page. The latest version may differ.",
    "Printed from the online manual. Links and cross references may not work on paper.",
    "Subscribe to the announcements list to hear about new releases and security fixes.",
    "Skip to main content. Table of contents. Show source. Edit this page on the web.",
    "Disclaimer: this material is provided as is, without warranty of any kind.",
    "Translations of this document are available in several languages from the front page.",
    "Questions about this text are welcome on the users forum and on the chat channel.",
)


@dataclass
class BenchDoc:
    id: str
    text: str
    family: int
    """Index of the original this document derives from."""
    kind: str
    """original, a variant kind (edit, ..., combo:edit+truncate) or near_miss:<kind>."""
    jaccard: float = 1.0
    """Exact word-5-gram Jaccard to the family's original."""
    truth_cluster: str = ""
    """Ground truth: the connected component of the ">= threshold" graph (``label``)."""
    original_cluster: str = ""
    """The truth cluster of the family's original."""

    @property
    def duplicate(self) -> bool:
        """In its original's cluster: a true duplicate (or the original itself)."""
        return self.truth_cluster == self.original_cluster

    @property
    def group(self) -> str:
        """The kind without the combo's parts: the rows of the per-kind table."""
        return self.kind.split(":")[0] if self.kind.startswith("combo") else self.kind


@dataclass
class Benchmark:
    docs: list[BenchDoc]
    threshold: float
    eligible: int
    """Corpus documents of the allowed length."""
    skipped_similar: int
    """Candidate originals skipped as similar to an earlier pick (cleaning)."""
    joined: list[tuple[str, str, float]] = field(default_factory=list)
    """Pairs >= threshold other than (original, variant) that joined two clusters (``label``)."""


# -- corpus --------------------------------------------------------------------------------------

def read_corpus(paths: list[str]) -> list[tuple[str, str]]:
    """(id, normalized text) of every record; the normalize stage leaves such text unchanged."""
    config = NormalizeConfig()
    records = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                text = normalize_text(record.get("text") or "", config)
                if text:
                    records.append((str(record.get("id")), text))
    return records


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def similar_pairs(hash_sets: list[np.ndarray], bound: float,
                  hasher: MinHasher) -> list[tuple[int, int, float]]:
    """Every pair (i < j) with exact Jaccard >= ``bound``, up to LSH misses: LSH is tuned for
    ``bound - 0.15`` so that pairs at ``bound`` are candidates with probability > 0.99."""
    bands, rows = lsh_params(max(bound - 0.15, 0.05), hasher.num_perm)
    buckets = defaultdict(list)
    for index, hashes in enumerate(hash_sets):
        for key in band_keys(hasher.signature(hashes), bands, rows):
            buckets[key].append(index)
    candidates = {(a, b) for members in buckets.values() if len(members) > 1
                  for i, a in enumerate(members) for b in members[i + 1:]}
    pairs = []
    for a, b in sorted(candidates):
        similarity = exact_jaccard(hash_sets[a], hash_sets[b])
        if similarity >= bound:
            pairs.append((a, b, similarity))
    return pairs


def pick_originals(records: list[tuple[str, str]], count: int, min_words: int, max_words: int,
                   clean_bound: float, hasher: MinHasher,
                   rng: random.Random) -> tuple[list[str], list[str], int, int]:
    """(originals, the other texts, eligible count, skipped as similar): ``count`` texts of the
    allowed length, none with exact Jaccard >= ``clean_bound`` to an earlier pick."""
    eligible = [text for _, text in records if min_words <= word_count(text) <= max_words]
    rng.shuffle(eligible)
    # A pool with room for the skipped ones; the cleaning only needs pairs inside the pool.
    pool = eligible[:min(len(eligible), count * 3 // 2 + 50)]
    similar = defaultdict(set)
    for a, b, _ in similar_pairs([hasher.shingle_hashes(t) for t in pool], clean_bound, hasher):
        similar[a].add(b)
        similar[b].add(a)
    picked, skipped = [], 0
    for index in range(len(pool)):
        if len(picked) == count:
            break
        if similar[index] & set(picked):
            skipped += 1
        else:
            picked.append(index)
    chosen = set(picked)
    others = [text for index, text in enumerate(eligible) if index not in chosen]
    return [pool[i] for i in picked], others, len(eligible), skipped


# -- edits ---------------------------------------------------------------------------------------

def edit_words(text: str, rate: float, vocabulary: list[str], rng: random.Random) -> str:
    """Substitute, insert or delete (equally likely) about ``rate`` of the whitespace-separated
    words; the whitespace, and so the paragraph layout, is kept."""
    parts = re.split(r"(\s+)", text)  # even indices: words, odd: the whitespace between them
    out = []
    for index, part in enumerate(parts):
        if index % 2 or not part or rng.random() >= rate:
            out.append(part)
            continue
        operation = rng.randrange(3)
        if operation == 0:
            out.append(rng.choice(vocabulary))
        elif operation == 1:
            out.append(f"{part} {rng.choice(vocabulary)}")
        # operation 2 deletes the word; the doubled whitespace left behind splits no word
    return "".join(out)


def add_boilerplate(text: str, rng: random.Random) -> str:
    """A header, a footer or both, of 20..60 words in all."""
    target = rng.randint(20, 60)
    words = []
    while len(words) < target:
        words += f"{rng.choice(BOILERPLATE)} Revision {rng.randrange(10_000)}.".split()
    words = words[:target]
    placement = rng.choice(("header", "footer", "both"))
    if placement == "header":
        return " ".join(words) + "\n\n" + text
    if placement == "footer":
        return text + "\n\n" + " ".join(words)
    cut = rng.randint(1, target - 1)
    return " ".join(words[:cut]) + "\n\n" + text + "\n\n" + " ".join(words[cut:])


def truncate(text: str, rng: random.Random, low: float = 0.05, high: float = 0.15) -> str:
    """Drop the last ``low``..``high`` of the words (at a word boundary)."""
    starts = [match.start() for match in re.finditer(r"\S+", text)]
    keep = max(1, round(len(starts) * (1 - rng.uniform(low, high))))
    return text[:starts[keep]].rstrip() if keep < len(starts) else text


def reorder_paragraphs(text: str, rng: random.Random) -> str:
    """Permute 2..6 of the paragraphs (lines when there is a single paragraph). A full shuffle
    is not used: every moved boundary breaks 4 word 5-grams, so shuffling a document of many
    short paragraphs lands far below any useful threshold, and is not a near-duplicate."""
    separator = "\n\n"
    blocks = _PARAGRAPH_BREAK.split(text)
    if len(blocks) < 2:
        separator, blocks = "\n", text.split("\n")
    if len(blocks) < 2:
        return text
    positions = sorted(rng.sample(range(len(blocks)), min(len(blocks), rng.randint(2, 6))))
    moved = [blocks[i] for i in positions]
    for _ in range(10):  # a permutation that changes something
        rng.shuffle(moved)
        if any(blocks[i] != block for i, block in zip(positions, moved, strict=True)):
            break
    for i, block in zip(positions, moved, strict=True):
        blocks[i] = block
    return separator.join(blocks)


def apply_kind(kind: str, text: str, vocabulary: list[str], rng: random.Random) -> str:
    if kind == "edit":
        return edit_words(text, rng.uniform(0.01, 0.05), vocabulary, rng)
    if kind == "boilerplate":
        return add_boilerplate(text, rng)
    if kind == "truncate":
        return truncate(text, rng)
    if kind == "reorder":
        return reorder_paragraphs(text, rng)
    raise ValueError(kind)


def make_variant(text: str, vocabulary: list[str], rng: random.Random) -> tuple[str, str]:
    """(kind, text) of one variant."""
    kind = rng.choice(VARIANT_KINDS)
    if kind != "combo":
        return kind, apply_kind(kind, text, vocabulary, rng)
    parts = rng.sample(BASE_KINDS, 2)
    for part in parts:
        text = apply_kind(part, text, vocabulary, rng)
    return f"combo:{'+'.join(parts)}", text


def make_near_miss(text: str, vocabulary: list[str], foreign: list[str],
                   rng: random.Random) -> tuple[str, str]:
    """(kind, text) of a document built to lie at Jaccard ~0.4..0.65 to ``text``."""
    kind = rng.choice(NEAR_MISS_KINDS)
    if kind == "heavy_edit":
        return "near_miss:heavy_edit", edit_words(text, rng.uniform(0.06, 0.12), vocabulary, rng)
    kept = truncate(text, rng, 0.2, 0.4)
    added = len(text.split()) - len(kept.split())
    other = rng.choice(foreign).split()
    start = rng.randrange(max(1, len(other) - added))
    return "near_miss:overlap", kept + "\n\n" + " ".join(other[start:start + added])


def make_near_miss_below(text: str, hashes: np.ndarray, bound: float, vocabulary: list[str],
                         foreign: list[str], hasher: MinHasher,
                         rng: random.Random) -> tuple[str, str] | None:
    """A near miss at exact Jaccard < ``bound`` (well below the threshold), or None after a few
    draws: a short document with many non-word tokens can stay close after 6% of edits."""
    for _ in range(5):
        kind, near_miss = make_near_miss(text, vocabulary, foreign, rng)
        if exact_jaccard(hashes, hasher.shingle_hashes(near_miss)) < bound:
            return kind, near_miss
    return None


# -- the benchmark -------------------------------------------------------------------------------

def build_benchmark(paths: list[str], originals: int, threshold: float, seed: int,
                    min_words: int = 200, max_words: int = 5000,
                    near_miss_share: float = 0.5) -> Benchmark:
    rng = random.Random(seed)
    hasher = MinHasher()  # the stage's defaults: 128 permutations, word 5-grams, lowercase
    clean_bound = max(0.1, threshold - 0.3)
    picked, others, eligible, skipped = pick_originals(
        read_corpus(paths), originals, min_words, max_words, clean_bound, hasher, rng)
    # Real words for substitutions and insertions, from documents that are not originals.
    vocabulary = sorted({w for text in others[:300] for w in _WORD.findall(text)})
    config = NormalizeConfig()
    docs = []
    for family, original in enumerate(picked):
        base_id = f"f{family:05d}"
        docs.append(BenchDoc(f"{base_id}-orig", original, family, "original"))
        original_hashes = hasher.shingle_hashes(original)
        derived = [make_variant(original, vocabulary, rng) for _ in range(rng.randint(1, 4))]
        if rng.random() < near_miss_share:
            near_miss = make_near_miss_below(original, original_hashes, threshold - 0.1,
                                             vocabulary, others, hasher, rng)
            derived += [near_miss] if near_miss else []
        for number, (kind, text) in enumerate(derived, 1):
            text = normalize_text(text, config)  # as the stage will see it
            similarity = exact_jaccard(original_hashes, hasher.shingle_hashes(text))
            short = kind.split(":")[-1].replace("+", "-")
            docs.append(BenchDoc(f"{base_id}-{number}-{short}", text, family, kind, similarity))
    return Benchmark(docs, threshold, eligible, skipped, label(docs, threshold, hasher))


def label(docs: list[BenchDoc], threshold: float,
          hasher: MinHasher) -> list[tuple[str, str, float]]:
    """Set every document's truth cluster: the connected components of the graph of pairs with
    exact Jaccard >= threshold, which is what the stage is specified to output (its components
    are transitive too). The edges are each (original, variant) at the threshold, plus any other
    pair found at it (two truncations of one original that are below the threshold to it but
    not to each other, say). Returns those other pairs that joined two clusters."""
    parent = list(range(len(docs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = {}
    for index, doc in enumerate(docs):
        first.setdefault(doc.family, index)
        if doc.jaccard >= threshold:
            parent[root(index)] = root(first[doc.family])
    joined = []
    hash_sets = [hasher.shingle_hashes(doc.text) for doc in docs]
    for a, b, similarity in similar_pairs(hash_sets, threshold, hasher):
        if root(a) != root(b):
            parent[root(a)] = root(b)
            joined.append((docs[a].id, docs[b].id, similarity))
    for index, doc in enumerate(docs):
        doc.truth_cluster = docs[root(index)].id
    for doc in docs:
        doc.original_cluster = docs[first[doc.family]].truth_cluster
    return joined


def write_jsonl(docs: list[BenchDoc], path: str, seed: int) -> None:
    """The stage's input, in a seeded random order (families are not adjacent)."""
    order = list(docs)
    random.Random(seed).shuffle(order)
    with open(path, "w", encoding="utf-8") as handle:
        for doc in order:
            handle.write(json.dumps({"id": doc.id, "text": doc.text}) + "\n")


def write_truth(docs: list[BenchDoc], path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps({"id": doc.id, "family": doc.family, "kind": doc.kind,
                                     "jaccard": round(doc.jaccard, 4),
                                     "duplicate": doc.duplicate,
                                     "truth_cluster": doc.truth_cluster}) + "\n")
