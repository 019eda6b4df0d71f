"""Paragraphs and sentences of a document, for BERT/ALBERT sentence-pair examples.

``split_sentences(text)`` returns the document's paragraphs (blank-line separated), each a list of
sentences. Every sentence is an exact, stripped substring of the text: nothing inside a sentence
is rewritten (line breaks, runs of spaces and indentation stay as they were), and no sentence
spans a paragraph boundary.

Splitter: Bling Fire (Microsoft, ``blingfire`` 0.1.8 on PyPI), a compiled finite-state sentence
breaker; it also breaks after ``。！？`` and a few other non-Latin terminators. Chosen by
``bench/sentences.py`` (``python bench/sentences.py``) on 17.4 MB of real technical English (all
of ``python-doc.jsonl.gz``, the first 1,000 documents of ``linux-doc.jsonl.gz``), whole
documents in, one process, splitters alternating, best of 3, on the shared 2-core machine (load
about 2; absolute figures moved by up to 15% between runs, the ratios by a few percent)::

    splitter                                           MB/s   vs winnow
    winnow split_sentences (Bling Fire DLL, offsets)   10.7     1.00    (8.9-10.7 over 4 runs)
    blingfire.text_to_sentences, whole document        14.1     1.32    (rewrites whitespace)
    blingfire.text_to_sentences_and_offsets/paragraph   1.45    0.14
    regex "[.!?] + space + capital", per paragraph     27.2     2.55
    pysbd 0.3.4 (en, clean=False), 315 kB sample        0.09    0.008
    nltk punkt                                         not measured: model is a data download

Quality: on 1,230 prose paragraphs (300 kB) both Bling Fire and the regex agree with pysbd (the
slow rule-based reference) on about 97-98% of sentence starts within lines; over the whole
17.4 MB they share 42,846 starts, and the regex's 962 extra starts are mostly false splits
after initials ("Barry A. | Warsaw", "Paul E. | McKenney"), "e.g."/"i.e." and "Inc.", which
Bling Fire mostly keeps together (its 766 extra starts are mostly before reST ``::``/``..`` markup).
pysbd is two orders of magnitude too slow, and also splits at every line break and inside
reST markup and URLs. So: Bling Fire, the fastest splitter that handles abbreviations,
initials and non-Latin terminators, at about 10 MB/s per (loaded, shared) core; its native code
alone is the ceiling (about 13-14 MB/s here), and winnow's post-processing costs the rest.

How the figures are reached (each measured in the benchmark):

* **One native call per document**, not per paragraph. ``_sentence_starts`` calls the DLL's
  ``TextToSentencesWithOffsets`` through ctypes with buffers rounded up to a power of two (ctypes
  builds, slowly, and caches forever one array type per distinct length: per-document sizes
  cost ~40 us a call and leak), and maps UTF-8 byte offsets to characters with
  ``bytes.translate`` (C speed; nothing to do for ASCII text). Bling Fire's own
  ``text_to_sentences_and_offsets`` maps offsets with a Python loop over every byte (the 0.14
  above). Bling Fire joins sentences across blank lines ("Title\n\nFirst sentence." is one
  sentence to it), so the document's result is cut again at every blank line: a paragraph
  boundary always ends a sentence. (Sending only paragraphs that contain a terminator was
  slower and changed splits: Bling Fire's decisions depend on context.)
* **Only sentence starts are used.** Sentence ``i`` is the text from start ``i`` to start
  ``i + 1``, stripped, so nothing between Bling Fire's sentences can be lost, and the returned
  strings are slices of the input (Bling Fire's own output joins lines and collapses spaces).

Behaviour worth knowing (asserted in ``tests/filters/test_sentences.py``): Bling Fire does not
split at a single line break ("Another line\ncontinues here!" is one sentence), keeps "e.g.",
"i.e.", "Mr." and "U.S.A." inside the sentence, and does not split inside numbers ("Version
3.10"). It is not perfect: after a sentence, a chain of initials is split ("Dr. | J. | R. |
Tolkien"), and "a test. Mr. Smith" stays one sentence. Lists and code without final punctuation
come back as one long "sentence" per paragraph; ``max_chars`` cuts those at whitespace.
"""

from __future__ import annotations

import re
from ctypes import byref, c_char_p, c_int, c_int32, create_string_buffer
from dataclasses import dataclass
from itertools import pairwise

import blingfire

_BLANK_LINE = re.compile(r"\n\s*\n")
"""A paragraph break: a line break, optional whitespace (blank lines), another line break."""

_LAST_SPACE = re.compile(r".*\s", re.DOTALL)
"""Matches up to and including the last whitespace character (any kind: U+3000 too)."""

_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))
"""UTF-8 continuation bytes: a byte offset minus the continuation bytes before it is the
character offset."""

_TEXT_TO_SENTENCES_WITH_OFFSETS = getattr(
    getattr(blingfire, "blingfire", None), "TextToSentencesWithOffsets", None
)
"""The DLL entry point, or ``None`` if a future ``blingfire`` hides it (then the public, slower
``text_to_sentences_and_offsets`` is used)."""


@dataclass(frozen=True)
class SentencesConfig:
    """How documents are cut into sentences for sentence-pair examples."""

    enabled: bool = True
    """Split paragraphs into sentences. ``False`` makes every paragraph one "sentence" (still cut
    at ``max_chars`` and filtered by ``min_chars``)."""
    min_chars: int = 2
    """Drop "sentences" shorter than this after stripping (stray punctuation, list bullets)."""
    max_chars: int = 2_000
    """Cut longer "sentences" (tables, code without punctuation) at whitespace into pieces of at
    most this many characters, so one giant sentence cannot eat a whole sequence."""

    def errors(self) -> list[str]:
        problems = []
        if not isinstance(self.enabled, bool):
            problems.append(f"enabled must be true or false, got {self.enabled!r}")
        if not isinstance(self.min_chars, int) or self.min_chars < 0:
            problems.append(f"min_chars must be an integer >= 0, got {self.min_chars!r}")
        if not isinstance(self.max_chars, int) or self.max_chars < 1:
            problems.append(f"max_chars must be an integer >= 1, got {self.max_chars!r}")
        elif isinstance(self.min_chars, int) and self.max_chars < self.min_chars:
            problems.append(
                f"max_chars ({self.max_chars}) must be >= min_chars ({self.min_chars})"
            )
        return problems


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of ``text``, stripped, empty ones left out."""
    return [stripped for part in _BLANK_LINE.split(text) if (stripped := part.strip())]


def split_sentences(text: str, config: SentencesConfig = SentencesConfig()) -> list[list[str]]:
    """Paragraphs of ``text``, each the list of its sentences (exact, stripped substrings).

    Sentences never span a blank line. Sentences shorter than ``config.min_chars`` are dropped,
    longer than ``config.max_chars`` are cut at whitespace (see ``cut_long``); a paragraph left
    with no sentence is left out, so every inner list is non-empty. Empty text gives ``[]``.
    """
    if not text or text.isspace():
        return []
    starts = _sentence_starts(text) if config.enabled else []
    # A blank line ends the sentence around it: its first "\n" becomes a cut too. Sentence
    # starts are non-space characters, so they never fall inside a blank-line match.
    breaks = {match.start() for match in _BLANK_LINE.finditer(text)}
    bounds = [0, *sorted([*starts, *breaks]), len(text)]
    min_chars, max_chars = config.min_chars, config.max_chars
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for begin, end in pairwise(bounds):
        if begin in breaks and current:
            paragraphs.append(current)
            current = []
        sentence = text[begin:end].strip()
        length = len(sentence)
        if length >= min_chars and length:
            if length <= max_chars:
                current.append(sentence)
            else:
                current.extend(p for p in cut_long(sentence, max_chars) if len(p) >= min_chars)
    if current:
        paragraphs.append(current)
    return paragraphs


def document_sentences(text: str, config: SentencesConfig = SentencesConfig()) -> list[str]:
    """Every sentence of ``text`` in order, over all its paragraphs: what a document's
    sentence-pair examples are cut from (``filters.pairs``)."""
    return [sentence for paragraph in split_sentences(text, config) for sentence in paragraph]


def cut_long(sentence: str, max_chars: int) -> list[str]:
    """Cut ``sentence`` into stripped pieces of at most ``max_chars`` characters.

    Each cut is at the last whitespace that keeps the piece within the limit; a stretch of
    ``max_chars`` characters without whitespace (base64, minified code) is cut inside it.
    """
    pieces = []
    rest = sentence.strip()
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]  # a cut at index max_chars leaves exactly max_chars
        last_space = _LAST_SPACE.match(window)
        cut = last_space.end() - 1 if last_space is not None else 0
        if cut <= 0:
            cut = max_chars
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _sentence_starts(text: str) -> list[int]:
    """Character offsets where Bling Fire starts a sentence, ascending, excluding 0."""
    data = text.encode("utf-8", "surrogatepass")
    if _TEXT_TO_SENTENCES_WITH_OFFSETS is None:  # pragma: no cover - older/newer blingfire
        _, spans = blingfire.text_to_sentences_and_offsets(text)
        return sorted({start for start, _ in spans if 0 < start < len(text)})
    # Twice the input, as blingfire's own wrapper allocates, rounded up to a power of two: ctypes
    # creates (slowly, ~40 us) and caches forever one array type per distinct length.
    size = 1 << max(8, (2 * len(data)).bit_length())
    out = create_string_buffer(size)
    begins = (c_int32 * size)()
    ends = (c_int32 * size)()
    written = _TEXT_TO_SENTENCES_WITH_OFFSETS(
        c_char_p(data), c_int(len(data)), byref(out), byref(begins), byref(ends), c_int(size)
    )
    if written <= 0 or written > size:  # Bling Fire failed: paragraphs only
        return []
    count = out.value.count(b"\n") + 1
    byte_starts = sorted({b for b in begins[:count] if 0 < b < len(data)})
    if len(data) == len(text):  # ASCII: byte offsets are character offsets
        return byte_starts
    starts = []
    previous = continuation = 0
    for offset in byte_starts:
        chunk = data[previous:offset]
        continuation += len(chunk) - len(chunk.translate(None, _CONTINUATION_BYTES))
        starts.append(offset - continuation)
        previous = offset
    return starts
