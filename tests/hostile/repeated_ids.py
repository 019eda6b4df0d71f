"""Inputs whose document ids repeat: within one file (with different texts) and across files.

Texts are English sentences drawn from small word lists with a seeded generator, so that they
pass the default heuristics and language stages, are not near-duplicates of each other, and
differ from run to run of the generator only if its seed does.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NOUNS = ("river", "bridge", "market", "teacher", "garden", "window", "village", "letter",
         "harbour", "kitchen", "mountain", "library", "farmer", "station", "forest", "painter",
         "doctor", "island", "engine", "meadow", "castle", "soldier", "musician", "valley")
VERBS = ("watched", "carried", "followed", "painted", "visited", "repaired", "described",
         "remembered", "opened", "crossed", "counted", "found", "cleaned", "built", "sold")
ADJECTIVES = ("old", "quiet", "narrow", "bright", "heavy", "small", "distant", "busy",
              "green", "careful", "famous", "empty", "warm", "broken", "simple", "early")
PREPOSITIONS = ("near", "after", "before", "behind", "under", "beside", "beyond", "past")
DETERMINERS = ("the", "a", "every", "one", "some", "that", "this", "our")
SHARED_LINE = "Every page of this collection is published under the same open licence terms."
"""A long line several documents carry: the boilerplate stage's business."""


def sentence(rng: random.Random) -> str:
    words = [rng.choice(DETERMINERS).capitalize(), rng.choice(ADJECTIVES), rng.choice(NOUNS),
             rng.choice(VERBS), rng.choice(DETERMINERS), rng.choice(ADJECTIVES),
             rng.choice(NOUNS), rng.choice(PREPOSITIONS), rng.choice(DETERMINERS),
             rng.choice(NOUNS)]
    return " ".join(words) + "."


def paragraph_text(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def document_texts(count: int, seed: int) -> list[str]:
    """``count`` distinct texts of 6 to 14 sentences; every fifth carries ``SHARED_LINE``."""
    rng = random.Random(seed)
    texts = []
    for number in range(count):
        text = paragraph_text(rng, rng.randint(6, 14))
        if number % 5 == 0:
            text = f"{text}\n{SHARED_LINE}"
        texts.append(text)
    return texts


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def write_one_id(folder: Path, count: int = 240, doc_id: str = "same") -> Path:
    """``count`` documents sharing one id, in one file; two of them exact copies of another
    (the exact-dedup survivor is then chosen among equal ids), one a near copy."""
    texts = document_texts(count, seed=7)
    texts[10] = texts[3]
    texts[11] = texts[3]
    texts[12] = texts[4] + " The end."
    return write_jsonl(folder / "one-id.jsonl", [{"id": doc_id, "text": t} for t in texts])


def write_mixed_repeats(folder: Path) -> list[Path]:
    """'doc-7' twice in one file with different texts, and again in two other files; other ids
    repeat across files too, one with the very same text in two files."""
    texts = document_texts(12, seed=11)
    first = [{"id": "doc-7", "text": texts[0]}, {"id": "doc-1", "text": texts[1]},
             {"id": "doc-7", "text": texts[2]}, {"id": "doc-2", "text": texts[3]}]
    second = [{"id": "doc-1", "text": texts[4]}, {"id": "doc-7", "text": texts[5]},
              {"id": "doc-2", "text": texts[3]}, {"id": "doc-3", "text": texts[6]}]
    third = [{"id": "doc-7", "text": texts[7]}, {"id": "doc-3", "text": texts[8]},
             {"id": "doc-7", "text": texts[9]}, {"id": "doc-9", "text": texts[10]}]
    return [write_jsonl(folder / name, records) for name, records in
            (("a.jsonl", first), ("b.jsonl", second), ("c.jsonl", third))]
