"""Sentence splitters on real text: speed side by side, agreement, example splits.

    python bench/sentences.py [--corpora DIR] [--linux-docs 1000] [--pysbd-kb 150] [--repeats 3]

Input: every document of ``python-doc.jsonl.gz`` and the first ``--linux-docs`` documents of
``linux-doc.jsonl.gz`` (``../shared/corpora``). Each splitter gets whole documents and is timed
over all of them (MB of UTF-8 input per second), alternating, best of ``--repeats``, in one
process on one core, so the figures are comparable even on a loaded machine:

(a) ``winnow``: ``filters.sentences.split_sentences`` (Bling Fire through its DLL, one call per
    document, cut at blank lines, exact substrings);
(b) ``blingfire.text_to_sentences`` on the whole document: the bare native speed, but its
    output rewrites whitespace and joins paragraphs;
(c) ``blingfire.text_to_sentences_and_offsets`` once per paragraph: the obvious way to get
    substrings with the public API;
(d) a regex: split after ``.!?`` (and closing quotes/brackets) followed by whitespace and a
    capital letter, digit, or opening quote/bracket, per paragraph;
(e) pysbd (``Segmenter(language="en", clean=False)``, per paragraph), the rule-based "golden
    rules" splitter, on the first ``--pysbd-kb`` kB of documents only (it is ~200x slower).

nltk's punkt is not measured: the ``nltk`` wheel has no model, and ``punkt``/``punkt_tab`` come
from a separate data download (``nltk.download``), which a Dataflow worker would also need.

Agreement: on ``--pysbd-kb`` kB of prose paragraphs taken from all documents (no reST markup,
lists, code or URLs, which pysbd cuts at random places; at least one regex candidate), the
sentence starts of (a) and (d) inside each paragraph are compared with pysbd's. Recall: share of
pysbd's starts found; precision: share of own starts that pysbd also has. Starts at the
beginning of a line are left out: pysbd splits at every line break, the others never do.

Checks: every sentence of (a) is a substring of its document, and with ``min_chars=0`` and no
``max_chars`` cut the non-whitespace characters of (a) are exactly those of the document.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import time
from itertools import pairwise

import blingfire

from winnow.filters.sentences import SentencesConfig, split_paragraphs, split_sentences

DEFAULT_CORPORA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "corpora"
)

REGEX_BOUNDARY = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")

EXAMPLES = [
    "This is e.g. a test. Mr. Smith went to Washington, D.C. on Monday. It rained.",
    "Python 3.10 adds pattern matching (see PEP 634). The U.S.A. is large! Is it? Yes.",
    "Call os.path.join() to build paths. Then open the file.\nA wrapped line\ncontinues here.",
    "The value is 2.5 km, i.e. far. See Fig. 3 and section 4.2. Dr. J. R. R. Tolkien wrote.",
    "Title of the page\n\nFirst paragraph. Second sentence.\n\n  - a list item\n  - another item",
]


def read_texts(path: str, limit: int | None) -> list[str]:
    texts: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and len(texts) >= limit:
                break
            text = json.loads(line).get("text") or ""
            if text.strip():
                texts.append(text)
    return texts


# -- the splitters: document -> list of sentences ----------------------------------------------


def winnow(text: str) -> list[str]:
    return [s for paragraph in split_sentences(text) for s in paragraph]


def blingfire_whole(text: str) -> list[str]:
    return blingfire.text_to_sentences(text).split("\n")


def blingfire_offsets_per_paragraph(text: str) -> list[str]:
    sentences = []
    for paragraph in split_paragraphs(text):
        _, spans = blingfire.text_to_sentences_and_offsets(paragraph)
        sentences.extend(paragraph[begin:end] for begin, end in spans)
    return sentences


def regex_starts(paragraph: str) -> list[int]:
    return [match.end() for match in REGEX_BOUNDARY.finditer(paragraph)]


def regex(text: str) -> list[str]:
    sentences = []
    for paragraph in split_paragraphs(text):
        bounds = [0, *regex_starts(paragraph), len(paragraph)]
        sentences.extend(paragraph[b:e].strip() for b, e in pairwise(bounds))
    return sentences


def make_pysbd():
    try:
        import pysbd
    except ImportError:
        return None
    segmenter = pysbd.Segmenter(language="en", clean=False)

    def split(text: str) -> list[str]:
        sentences = []
        for paragraph in split_paragraphs(text):
            sentences.extend(segmenter.segment(paragraph))
        return sentences

    split.segmenter = segmenter
    return split


# -- measurement --------------------------------------------------------------------------------


def best_rates(splitters: dict, texts: list[str], repeats: int) -> dict[str, float]:
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    best = dict.fromkeys(splitters, float("inf"))
    for _ in range(repeats):
        for name, split in splitters.items():  # alternate: each round runs every splitter
            started = time.perf_counter()
            for text in texts:
                split(text)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: megabytes / seconds for name, seconds in best.items()}


def starts_in(paragraph: str, sentences: list[str]) -> set[int]:
    """Offsets of ``sentences`` found in order in ``paragraph``, excluding 0."""
    starts, cursor = set(), 0
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        found = paragraph.find(sentence, cursor)
        if found < 0:
            continue
        if found > 0:
            starts.add(found)
        cursor = found + len(sentence)
    return starts


def inside_lines(paragraph: str, starts: set[int]) -> set[int]:
    """The starts not at the beginning of a line (pysbd also splits at every line break)."""
    return {s for s in starts if "\n" not in paragraph[len(paragraph[:s].rstrip()):s]}


NOT_PROSE = re.compile(r"^\s|^\.\.|^:|^[-*#=|+]|://|`|[{};]", re.MULTILINE)
"""Markup (reST directives, lists, tables), code or URLs: pysbd splits them at random places."""


def prose_paragraphs(texts: list[str], limit_bytes: int) -> list[str]:
    """Paragraphs without markup, code or URLs, from all documents, up to ``limit_bytes``."""
    found, size = [], 0
    for text in texts:
        for paragraph in split_paragraphs(text):
            if not NOT_PROSE.search(paragraph) and len(REGEX_BOUNDARY.findall(paragraph)) >= 1:
                found.append(paragraph)
                size += len(paragraph.encode("utf-8"))
                if size >= limit_bytes:
                    return found
    return found


def agreement(paragraphs: list[str], pysbd_split) -> tuple[int, dict[str, tuple[float, float]]]:
    whole = SentencesConfig(min_chars=0, max_chars=10**9)
    found = {"winnow": [0, 0], "regex": [0, 0]}  # [shared starts, own starts]
    reference_total = 0
    for paragraph in paragraphs:
        reference = inside_lines(
            paragraph, starts_in(paragraph, pysbd_split.segmenter.segment(paragraph)))
        reference_total += len(reference)
        ours = {
            "winnow": starts_in(paragraph, [s for p in split_sentences(paragraph, whole)
                                            for s in p]),
            "regex": set(regex_starts(paragraph)),
        }
        for name, starts in ours.items():
            starts = inside_lines(paragraph, starts)
            found[name][0] += len(starts & reference)
            found[name][1] += len(starts)
    return reference_total, {name: (shared / max(reference_total, 1), shared / max(own, 1))
                             for name, (shared, own) in found.items()}


def check_substrings(texts: list[str]) -> tuple[int, int]:
    whole = SentencesConfig(min_chars=0, max_chars=10**9)
    not_substring = lost = 0
    for text in texts:
        paragraphs = split_sentences(text, whole)
        for paragraph in paragraphs:
            not_substring += sum(sentence not in text for sentence in paragraph)
        ours = "".join("".join(s.split()) for p in paragraphs for s in p)
        lost += ours != "".join(text.split())
    return not_substring, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default=DEFAULT_CORPORA)
    parser.add_argument("--linux-docs", type=int, default=1000)
    parser.add_argument("--pysbd-kb", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    texts = read_texts(os.path.join(args.corpora, "python-doc.jsonl.gz"), None)
    texts += read_texts(os.path.join(args.corpora, "linux-doc.jsonl.gz"), args.linux_docs)
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(f"{len(texts)} documents, {megabytes:.1f} MB "
          f"(python-doc all, linux-doc first {args.linux_docs})")

    splitters = {
        "winnow split_sentences (blingfire DLL, offsets)": winnow,
        "blingfire.text_to_sentences, whole document": blingfire_whole,
        "blingfire.text_to_sentences_and_offsets/paragraph": blingfire_offsets_per_paragraph,
        "regex [.!?] + space + capital, per paragraph": regex,
    }
    rates = best_rates(splitters, texts, args.repeats)

    pysbd_split = make_pysbd()
    sample: list[str] = []
    if pysbd_split is not None:
        size = 0
        for text in texts:
            if size >= args.pysbd_kb * 1000:
                break
            sample.append(text)
            size += len(text.encode("utf-8"))
        sample_rates = best_rates({"pysbd": pysbd_split, "winnow": winnow}, sample, 1)
        # pysbd's rate scaled to the full-set winnow figure by the ratio measured on the sample
        pysbd_ratio = sample_rates["pysbd"] / sample_rates["winnow"]
        pysbd_note = (f"pysbd 0.3.4 (en, clean=False), {size / 1e3:.0f} kB sample: "
                      f"{sample_rates['pysbd']:.3f} MB/s, winnow on the same sample "
                      f"{sample_rates['winnow']:.1f} MB/s")
    reference = rates["winnow split_sentences (blingfire DLL, offsets)"]
    print(f"\n{'splitter':52s} {'MB/s':>8s} {'vs winnow':>10s}")
    for name, rate in rates.items():
        print(f"{name:52s} {rate:8.2f} {rate / reference:10.3f}")
    if pysbd_split is not None:
        print(f"{'pysbd (ratio measured on its sample)':52s} {reference * pysbd_ratio:8.3f} "
              f"{pysbd_ratio:10.4f}")
        print(pysbd_note)
    else:
        print("pysbd not installed: pip install pysbd to include it")
    print("nltk punkt: not measured (model is a separate data download)")

    if pysbd_split is not None:
        paragraphs = prose_paragraphs(texts, args.pysbd_kb * 1000)
        total, scores = agreement(paragraphs, pysbd_split)
        print(f"\nagreement with pysbd's {total} sentence starts inside lines of "
              f"{len(paragraphs)} prose paragraphs ({args.pysbd_kb} kB):")
        for name, (recall, precision) in scores.items():
            print(f"  {name:8s} recall {recall:6.1%}  precision {precision:6.1%}")

    not_substring, lost = check_substrings(texts)
    print(f"\nwinnow checks: {not_substring} sentences not substrings of their document, "
          f"{lost} documents whose non-whitespace text changed")

    print("\nexample splits (one sentence a line, paragraphs separated by '--'):")
    for example in EXAMPLES:
        print(f"\n>>> {example!r}")
        print("  winnow:")
        for number, paragraph in enumerate(split_sentences(example)):
            if number:
                print("    --")
            for sentence in paragraph:
                print(f"    {sentence!r}")
        print(f"  regex:  {regex(example)!r}")
        if pysbd_split is not None:
            print(f"  pysbd:  {[s.strip() for s in pysbd_split(example)]!r}")


if __name__ == "__main__":
    main()
