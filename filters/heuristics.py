"""Rule-based quality heuristics: Gopher quality and repetition, C4, FineWeb.

Four published rule sets, each switchable, each removal with its own reason name:

* **Gopher quality** - Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights
  from Training Gopher", appendix A.1.1, as implemented by datatrove's ``GopherQualityFilter``.
* **Gopher repetition** - same paper, table A1, as implemented by datatrove's
  ``GopherRepetitionFilter``.
* **C4** - Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
  Text-to-Text Transformer", section 2.2, as implemented by TFDS ``c4_utils.clean_page``.
* **FineWeb** - Penedo et al. 2024, "The FineWeb Datasets", section 3.5 (custom filters), as
  implemented by datatrove's ``FineWebQualityFilter``.

Shared definitions (deliberately simple and fast; the references use NLTK tokenisers):

* a *token* is a whitespace-separated chunk (``str.split()``); a *word* is a token that still has
  characters after stripping surrounding punctuation (datatrove's "non-symbol words"); word lengths
  and the alphabetic check use the stripped form, as Gopher does;
* a *line* is a ``"\\n"``-separated piece of the text that is not blank (whitespace-only lines are
  layout, not content: counting them would halve every line ratio of a blank-line-separated list);
* a *paragraph* is a piece separated by one or more blank lines;
* n-grams are over words, and the n-gram character fractions are over word characters (the sum
  of word lengths, whitespace and stripped punctuation excluded). Words are hashed with Python's
  ``hash`` (salted per process): verdicts are the same in every process unless two distinct
  n-grams collide in 64 bits.

``HeuristicFilter.clean`` applies the only line-level (text-changing) rule set, C4 line cleaning,
when enabled; ``HeuristicFilter.__call__`` gives the document-level verdict on cleaned text, and
``HeuristicFilter.judge`` the verdict with every rule's measured value (the report's
distributions) from the same pass: each rule is written once, as a check (``_checks``).

Every removal is a ``filters.base.Drop`` whose ``details`` (the ``details`` column of
``removed/``, shown by ``winnow report --reason``) hold the measured value and the bound it
crossed, as ``{measure: value, "max": bound}`` or ``{measure: value, "min": bound}``. The measure
is named after the ``HeuristicsConfig`` field that holds the bound, without its ``max_``/``min_``:
``too_few_words`` records ``{"words": 12, "min": 50}`` (``min_words``), ``duplicate_line_chars``
``{"duplicate_line_char_fraction": 0.34, "max": 0.2}`` (``max_duplicate_line_char_fraction``).
Counts are recorded as they are, fractions and means to 4 significant digits, and n-gram fractions
are exact (the fast scan's bounds are only used to keep documents). Besides: ``too_many_symbols``
adds the ``symbol`` (``"#"`` or ``"..."``), ``no_lines_left`` records ``{"lines": 0, "min": 1}``,
and ``lorem_ipsum`` and ``curly_bracket``, switches without a threshold, record ``{}``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import filterfalse, repeat

import numpy as np

from winnow.filters.base import KEEP, Drop, Verdict, check_fraction, check_positive

# ---------------------------------------------------------------------------------------------
# Reasons and shared constants
# ---------------------------------------------------------------------------------------------

_TOP_NGRAM_SIZES = (2, 3, 4)
_DUPLICATED_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)

REASONS: tuple[str, ...] = (
    # C4 line cleaning left nothing
    "no_lines_left",
    # Gopher quality
    "too_few_words",
    "too_many_words",
    # C4 document rules
    "lorem_ipsum",
    "curly_bracket",
    "too_few_sentences",
    # Gopher quality (continued)
    "mean_word_length_too_short",
    "mean_word_length_too_long",
    "too_many_symbols",
    "too_many_bullet_lines",
    "too_many_ellipsis_lines",
    "too_few_alpha_words",
    "too_few_stop_words",
    # FineWeb
    "too_few_punctuated_lines",
    "too_many_short_lines",
    "too_many_duplicate_line_chars",
    "too_many_list_lines",
    # Gopher repetition
    "duplicate_paragraphs",
    "duplicate_paragraph_chars",
    "duplicate_lines",
    "duplicate_line_chars",
    *(f"top_{n}gram" for n in _TOP_NGRAM_SIZES),
    *(f"duplicated_{n}gram" for n in _DUPLICATED_NGRAM_SIZES),
)
"""Every reason name this module can return, in the order the combined filter checks them."""

# ASCII punctuation plus the common Unicode quotes, dashes, ellipsis and CJK punctuation.
PUNCTUATION = (
    string.punctuation + "“”‘’«»‹›„‚…—–‐‑‒―·•°¡¿§¶†‡′″" + "、。，．！？：；「」『』（）【】《》〈〉"
)

# Gopher's bullet is "•"; datatrove adds "-". We also count the other common list markers.
BULLETS = ("•", "●", "◦", "▪", "‣", "∙", "-", "*")

ELLIPSES = ("...", "…")

# Gopher's stop-word list (Rae et al. 2021, A.1.1).
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

# TFDS c4_utils._END_MARKS is (".", "?", "!", '"'); the C4 paper also lists "'" and we add the
# Unicode (full-width, curly-quote, guillemet) forms.
C4_END_MARKS = (".", "!", "?", '"', "'", "。", "．", "！", "？", "”", "’", "»")

# TFDS c4_utils._POLICY_SUBSTRINGS: cookie / terms / privacy boilerplate lines.
C4_POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)

# datatrove FineWebQualityFilter's stop_chars.
FINEWEB_END_MARKS = (".", "'", '"', "!", "?")

# A space-delimited word without a letter: only non-word characters, digits and "_".
_LETTERLESS_WORD = re.compile(r" (?:[^\w\s]|[\d_])+(?= )")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A sentence ends at a run of terminal marks, optionally closed by quotes or brackets, followed
# by whitespace or the end of the line. A cheap stand-in for TFDS's NLTK punkt tokeniser.
_SENTENCE_END = re.compile(r"[.!?。．！？…]+[\"'”’»)\]]*(?=\s|$)")
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeuristicsConfig:
    """Thresholds of the heuristic rule sets. ``max_*`` drops above, ``min_*`` drops below."""

    enabled: bool = True
    """Run the heuristics stage at all; ``False`` keeps every document unchanged."""

    # -- Gopher quality (Rae et al. 2021, A.1.1) --------------------------------------------
    gopher_quality: bool = True
    """Apply the Gopher quality rules (word count, word length, symbols, lines, alpha, stops)."""
    min_words: int = 50
    """Fewer words than this: ``too_few_words`` (too short to be useful prose)."""
    max_words: int = 100_000
    """More words than this: ``too_many_words`` (dumps, logs, concatenated files)."""
    min_mean_word_length: float = 3.0
    """Mean stripped word length below this: ``mean_word_length_too_short`` (tables, noise)."""
    max_mean_word_length: float = 10.0
    """Mean stripped word length above this: ``mean_word_length_too_long`` (hashes, URLs)."""
    max_symbol_word_ratio: float = 0.1
    """Count of ``#``, or of ``...``/``…``, per word above this: ``too_many_symbols``."""
    max_bullet_line_fraction: float = 0.9
    """Fraction of lines starting with a bullet above this: ``too_many_bullet_lines``."""
    max_ellipsis_line_fraction: float = 0.3
    """Fraction of lines ending with an ellipsis above this: ``too_many_ellipsis_lines``."""
    min_alpha_word_fraction: float = 0.8
    """Fraction of words with an alphabetic character below this: ``too_few_alpha_words``."""
    min_stop_words: int = 2
    """Fewer occurrences of ``stop_words`` than this: ``too_few_stop_words`` (not English prose).
    0 disables the rule."""
    stop_words: tuple[str, ...] = GOPHER_STOP_WORDS
    """Lower-case stop words counted (case-insensitively) by the stop-word rule."""

    # -- Gopher repetition (Rae et al. 2021, table A1) --------------------------------------
    gopher_repetition: bool = True
    """Apply the Gopher repetition rules (duplicate lines, paragraphs and n-grams)."""
    max_duplicate_line_fraction: float = 0.3
    """Fraction of lines that repeat an earlier line above this: ``duplicate_lines``."""
    max_duplicate_paragraph_fraction: float = 0.3
    """Fraction of paragraphs that repeat an earlier one above this: ``duplicate_paragraphs``."""
    max_duplicate_line_char_fraction: float = 0.2
    """Characters in repeated lines over text length above this: ``duplicate_line_chars``."""
    max_duplicate_paragraph_char_fraction: float = 0.2
    """Characters in repeated paragraphs over text length above this:
    ``duplicate_paragraph_chars``."""
    max_top_2gram_char_fraction: float = 0.20
    """Word characters covered by the most frequent 2-gram above this: ``top_2gram``."""
    max_top_3gram_char_fraction: float = 0.18
    """Word characters covered by the most frequent 3-gram above this: ``top_3gram``."""
    max_top_4gram_char_fraction: float = 0.16
    """Word characters covered by the most frequent 4-gram above this: ``top_4gram``."""
    max_duplicated_5gram_char_fraction: float = 0.15
    """Word characters in repeated 5-grams above this: ``duplicated_5gram``."""
    max_duplicated_6gram_char_fraction: float = 0.14
    """Word characters in repeated 6-grams above this: ``duplicated_6gram``."""
    max_duplicated_7gram_char_fraction: float = 0.13
    """Word characters in repeated 7-grams above this: ``duplicated_7gram``."""
    max_duplicated_8gram_char_fraction: float = 0.12
    """Word characters in repeated 8-grams above this: ``duplicated_8gram``."""
    max_duplicated_9gram_char_fraction: float = 0.11
    """Word characters in repeated 9-grams above this: ``duplicated_9gram``."""
    max_duplicated_10gram_char_fraction: float = 0.10
    """Word characters in repeated 10-grams above this: ``duplicated_10gram``."""

    # -- C4 (Raffel et al. 2020; TFDS c4_utils) ----------------------------------------------
    c4: bool = True
    """Apply the C4 rule set: the document rules below, and line cleaning if ``c4_lines``."""
    drop_lorem_ipsum: bool = True
    """Drop documents containing "lorem ipsum" (placeholder text): ``lorem_ipsum``."""
    drop_curly_bracket: bool = False
    """Drop documents containing "{": ``curly_bracket``. C4 uses it to remove code; off by
    default because winnow curates technical text where code and braces are legitimate."""
    c4_lines: bool = False
    """C4 line cleaning: keep only sentence-like lines, then require ``min_sentences``. Off by
    default because it destroys code- and list-heavy documents."""
    min_words_per_line: int = 3
    """C4 line cleaning keeps lines with at least this many words (3, as datatrove's
    ``C4QualityFilter``; TFDS ``_MIN_WORDS_PER_LINE`` is 5)."""
    max_word_length: int = 1000
    """C4 line cleaning drops lines with a word longer than this (TFDS ``_MAX_WORD_LENGTH``)."""
    min_sentences: int = 3
    """With ``c4_lines``, fewer sentences left than this: ``too_few_sentences`` (3, as TFDS
    ``_MIN_NUM_SENTENCES``; datatrove uses 5). 0 disables the rule."""

    # -- FineWeb (Penedo et al. 2024) ---------------------------------------------------------
    fineweb: bool = False
    """Apply the FineWeb line rules (punctuation, short lines, duplicate chars, list lines)."""
    min_punctuated_line_fraction: float = 0.12
    """Fraction of lines ending in . ' " ! ? below this: ``too_few_punctuated_lines``."""
    max_short_line_fraction: float = 0.67
    """Fraction of lines shorter than ``short_line_chars`` above this:
    ``too_many_short_lines``."""
    short_line_chars: int = 30
    """A line with fewer (stripped) characters than this is short."""
    max_fineweb_duplicate_char_fraction: float = 0.01
    """Characters in repeated lines over non-newline characters above this:
    ``too_many_duplicate_line_chars``."""
    max_list_line_fraction: float = 0.3
    """Fraction of lines starting with a bullet above this: ``too_many_list_lines``."""

    def errors(self) -> list[str]:
        """Every invalid setting, as readable messages (empty when the config is valid)."""
        problems: list[str] = []
        for name in _FRACTION_FIELDS:
            problems += check_fraction(name, getattr(self, name))
        for name in _POSITIVE_FIELDS:
            problems += check_positive(name, getattr(self, name))
        for name in ("min_stop_words", "min_sentences", "max_symbol_word_ratio"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.min_words > self.max_words:
            problems.append(f"min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        if self.min_mean_word_length > self.max_mean_word_length:
            problems.append("min_mean_word_length exceeds max_mean_word_length")
        if self.min_stop_words and not self.stop_words:
            problems.append("stop_words is empty but min_stop_words > 0")
        return problems

    def top_ngram_thresholds(self) -> tuple[tuple[int, float], ...]:
        """``(n, max fraction)`` for the top-n-gram rules, n = 2, 3, 4."""
        return tuple((n, getattr(self, f"max_top_{n}gram_char_fraction")) for n in _TOP_NGRAM_SIZES)

    def duplicated_ngram_thresholds(self) -> tuple[tuple[int, float], ...]:
        """``(n, max fraction)`` for the duplicated-n-gram rules, n = 5..10."""
        return tuple(
            (n, getattr(self, f"max_duplicated_{n}gram_char_fraction"))
            for n in _DUPLICATED_NGRAM_SIZES
        )


_FRACTION_FIELDS = (
    "max_bullet_line_fraction",
    "max_ellipsis_line_fraction",
    "min_alpha_word_fraction",
    "max_duplicate_line_fraction",
    "max_duplicate_paragraph_fraction",
    "max_duplicate_line_char_fraction",
    "max_duplicate_paragraph_char_fraction",
    *(f"max_top_{n}gram_char_fraction" for n in _TOP_NGRAM_SIZES),
    *(f"max_duplicated_{n}gram_char_fraction" for n in _DUPLICATED_NGRAM_SIZES),
    "min_punctuated_line_fraction",
    "max_short_line_fraction",
    "max_fineweb_duplicate_char_fraction",
    "max_list_line_fraction",
)
_POSITIVE_FIELDS = (
    "min_words",
    "max_words",
    "min_mean_word_length",
    "max_mean_word_length",
    "min_words_per_line",
    "max_word_length",
    "short_line_chars",
)


# ---------------------------------------------------------------------------------------------
# Shared text helpers
# ---------------------------------------------------------------------------------------------


def content_words(tokens: list[str]) -> list[str]:
    """Whitespace tokens with surrounding punctuation stripped; pure-punctuation tokens dropped.

    Gopher counts and measures words without their punctuation; datatrove calls these
    "non-symbol words". ``"(hello),"`` becomes ``"hello"``, ``"--"`` disappears.
    """
    return list(filter(None, map(str.strip, tokens, repeat(PUNCTUATION))))


def nonblank_lines(text: str) -> list[str]:
    """The ``"\\n"``-separated lines of ``text`` that contain something besides whitespace."""
    return [line for line in text.split("\n") if line and not line.isspace()]


def _fraction(count: float, total: float) -> float:
    return count / total if total else 0.0


def _rounded(value: float) -> float:
    """Counts as they are; fractions and means to 4 significant digits (short, stable reports)."""
    return value if isinstance(value, int) else float(f"{value:.4g}")


def _crossing(
    reason: str,
    measure: str,
    value: float,
    side: str,
    bound: float,
    total: float | None,
    context: dict[str, str],
) -> Drop:
    """The ``Drop`` of a rule whose ``value`` (over ``total``, when given) crossed ``bound``."""
    measured = value if total is None else _fraction(value, total)
    return Drop(reason, {measure: _rounded(measured), side: bound, **context})


class _Check:
    """One rule's measurement of one document: ``value`` (over ``total`` when given: ``bound`` is
    then a fraction of ``total``) held to ``bound`` on ``side`` (``"min"``: drop below,
    ``"max"``: drop above). ``reported``: whether the value goes into the measures (by default,
    unless it is a fraction of nothing; never an n-gram bound). A plain class with slots: one is
    made per rule per document, and a frozen dataclass's ``__init__`` costs 4-5 times as much."""

    __slots__ = ("reason", "measure", "value", "side", "bound", "total", "context", "reported")

    def __init__(
        self,
        reason: str,
        measure: str,
        value: float,
        side: str,
        bound: float,
        total: float | None = None,
        context: tuple[tuple[str, str], ...] = (),
        reported: bool | None = None,
    ):
        self.reason, self.measure, self.value, self.side = reason, measure, value, side
        self.bound, self.total, self.context = bound, total, context
        self.reported = (total is None or bool(total)) if reported is None else reported

    def verdict(self) -> Verdict:
        """Drop for ``reason`` when the value crossed the bound, recording
        ``{measure: value (/ total), side: bound}`` plus ``context``. The comparison stays
        division-free, as the rules always made it, so recording the value cannot change a
        verdict."""
        limit = self.bound if self.total is None else self.bound * self.total
        if self.value > limit if self.side == "max" else self.value < limit:
            return _crossing(self.reason, self.measure, self.value, self.side, self.bound,
                             self.total, dict(self.context))
        return KEEP

    def measured(self) -> float:
        """The value as the details record it: the fraction of ``total``, rounded."""
        return _rounded(self.value if self.total is None else _fraction(self.value, self.total))


# ---------------------------------------------------------------------------------------------
# Gopher quality (Rae et al. 2021, appendix A.1.1; datatrove GopherQualityFilter)
# ---------------------------------------------------------------------------------------------


def _count_starting(stripped_lines: list[str], prefixes: tuple[str, ...]) -> int:
    return sum(map(str.startswith, stripped_lines, repeat(prefixes)))


def _count_ending(stripped_lines: list[str], suffixes: tuple[str, ...]) -> int:
    return sum(map(str.endswith, stripped_lines, repeat(suffixes)))


def _words_with_letter(words: list[str]) -> int:
    # Most words are all letters (fast C check); find the letterless among the rest in one scan.
    others = " ".join(filterfalse(str.isalpha, words))
    return len(words) - len(_LETTERLESS_WORD.findall(f" {others} "))


def _word_count_checks(n_words: int, config: HeuristicsConfig) -> Iterator[_Check]:
    """Gopher: keep 50..100,000 words. Shorter pages carry little text to learn from; longer
    ones are mostly dumps, logs and concatenations (and would be slow for every later rule)."""
    yield _Check("too_few_words", "words", n_words, "min", config.min_words)
    yield _Check("too_many_words", "words", n_words, "max", config.max_words)


def _gopher_quality_checks(
    text: str,
    words: list[str],
    lines: list[str],
    config: HeuristicsConfig,
    n_chars: int,
    exact: bool,
) -> Iterator[_Check]:
    """All Gopher quality rules except the word count, cheapest first. ``words`` are the
    ``content_words`` of the text, ``lines`` its ``nonblank_lines``, ``n_chars`` the total length
    of ``words``.

    * mean word length within 3..10 characters (words stripped of punctuation). Short means
      tables of numbers or stutter; long means hashes, URLs, base64 or text glued together;
    * at most 0.1 hash symbols, and at most 0.1 ellipses, per word. Hashtag spam and truncated
      teaser snippets ("Read more...") are typical of low-quality pages. The details name the
      ``symbol`` that crossed the bound: ``"#"`` or ``"..."`` (which counts ``…`` too);
    * at most 90% of lines start with a bullet, at most 30% end with an ellipsis. Pure lists
      (link farms, navigation) and lists of truncated teasers are not prose;
    * at least 80% of words contain an alphabetic character. Below that the page is mostly
      numbers, tables, identifiers or markup rather than language;
    * at least 2 occurrences of {the, be, to, of, and, that, have, with}. Any English prose has
      them; keyword lists, boilerplate and other languages mostly do not. Matched
      case-insensitively (datatrove is case-sensitive, missing a sentence-initial "The").
    """
    n_words = len(words)
    mean = _fraction(n_chars, n_words)  # compared as a mean, as the rule always was
    yield _Check("mean_word_length_too_short", "mean_word_length", mean, "min",
                 config.min_mean_word_length, reported=bool(n_words))
    yield _Check("mean_word_length_too_long", "mean_word_length", mean, "max",
                 config.max_mean_word_length, reported=bool(n_words))
    ellipses = text.count("...") + text.count("…")
    for symbol, count in (("#", text.count("#")), ("...", ellipses)):
        yield _Check("too_many_symbols", "symbol_word_ratio", count, "max",
                     config.max_symbol_word_ratio, n_words, (("symbol", symbol),))
    if lines:
        stripped = list(map(str.strip, lines))
        yield _Check("too_many_bullet_lines", "bullet_line_fraction",
                     _count_starting(stripped, BULLETS), "max", config.max_bullet_line_fraction,
                     len(lines))
        yield _Check("too_many_ellipsis_lines", "ellipsis_line_fraction",
                     _count_ending(stripped, ELLIPSES), "max", config.max_ellipsis_line_fraction,
                     len(lines))
    yield _Check("too_few_alpha_words", "alpha_word_fraction", _words_with_letter(words), "min",
                 config.min_alpha_word_fraction, n_words)
    needed = config.min_stop_words
    if needed > 0:
        found = _stop_words_found(words, config.stop_words, None if exact else needed)
        yield _Check("too_few_stop_words", "stop_words", found, "min", needed)


def _stop_words_found(words: list[str], stop_words: tuple[str, ...], enough: int | None) -> int:
    """Occurrences of ``stop_words`` (case-insensitive) in ``words``, counted up to ``enough``
    (the verdict's shortcut: ordinary prose settles the rule within its first sentence)."""
    stops = frozenset(word.lower() for word in stop_words)
    found = 0
    for word in words:
        if word.lower() in stops:
            found += 1
            if found == enough:
                break
    return found


# ---------------------------------------------------------------------------------------------
# Gopher repetition (Rae et al. 2021, table A1; datatrove GopherRepetitionFilter)
# ---------------------------------------------------------------------------------------------


def duplicates(items: list[str]) -> tuple[int, int]:
    """``(number, total length)`` of the items that repeat an earlier item.

    Equals datatrove's ``find_duplicates``: every copy after the first counts. Repeated copies
    share their length, so the set difference gives the characters without a Python loop.
    """
    unique = set(items)
    return len(items) - len(unique), sum(map(len, items)) - sum(map(len, unique))


def _paragraphs(text: str) -> list[str]:
    return [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p]


def _repeated(
    keys: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Among the n-grams with hashes ``keys`` at increasing ``positions``, the repeated ones.

    Returns their positions (increasing), keys, a mask of first occurrences, the count of the
    most frequent n-gram and the position where it first occurs (ties go to the earliest, as
    with ``Counter.most_common``). ``keys`` must not be empty.
    """
    size = len(keys)
    order = np.argsort(keys)
    sorted_keys, sorted_pos = keys[order], positions[order]
    new_group = np.empty(size, dtype=bool)
    new_group[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)
    sizes = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=sizes[:-1])
    sizes[-1] = size - starts[-1]
    group_first = np.minimum.reduceat(sorted_pos, starts)
    top = int(sizes.max())
    top_first = int(group_first[sizes == top].min())
    repeated = np.empty(size, dtype=bool)
    repeated[order] = np.repeat(sizes >= 2, sizes)
    first = np.empty(size, dtype=bool)
    first[order] = sorted_pos == np.repeat(group_first, sizes)
    return positions[repeated], keys[repeated], first[repeated], top, top_first


def _duplicated_chars(
    positions: np.ndarray,
    keys: np.ndarray,
    first: np.ndarray,
    n: int,
    chars: np.ndarray,
    limit: float | None = None,
) -> int:
    """Characters in repeated n-grams, as datatrove's ``find_all_duplicate`` counts them.

    It scans left to right: an n-gram seen before adds its characters and skips its n words
    (so overlapping repeats are not counted twice); any other n-gram is remembered and the scan
    advances one word. Only n-grams that occur twice or more are passed in: an n-gram that
    occurs once is never "seen before" and never matches a later one, so skipping it changes
    nothing.

    Counting every non-first occurrence gives an upper bound without a loop, exact when no
    repeat is followed by another repeated n-gram within n words (then no skip matters). With
    a ``limit`` that bound is returned when it is at most ``limit`` (the count is too); a result
    above ``limit`` is always exact, so a removed document records its true value.
    """
    later = np.flatnonzero(~first)
    if len(later) == 0:
        return 0
    bound = int(chars[later].sum())
    after = later + 1
    inner = after < len(positions)
    gaps = positions[after[inner]] - positions[later[inner]]
    if len(gaps) == 0 or gaps.min() >= n or (limit is not None and bound <= limit):
        return bound
    seen: set[int] = set()
    next_free = 0
    total = 0
    for pos, key, length in zip(positions.tolist(), keys.tolist(), chars.tolist(), strict=True):
        if pos < next_free:
            continue
        if key in seen:
            total += length
            next_free = pos + n
        else:
            seen.add(key)
    return total


class _NgramScan:
    """The words of one document as numpy arrays, for the n-gram rules.

    Words are hashed once (``hash``); n-gram hashes are rolled forward polynomially
    (``h_n = h_(n-1) * M + word``) at candidate positions only: an n-gram can only repeat where
    its (n-1)-gram prefix repeats, so each regroup at a larger n examines fewer positions.
    After a regroup at size ``n`` the candidates are the positions of repeated n-grams and
    ``first`` marks each one's first occurrence; the others ("repeats") include the repeats of
    every larger size.
    """

    def __init__(self, words: list[str], lengths: list[int]):
        self.size = len(words)
        self.word_hash = np.array(list(map(hash, words)), dtype=np.int64).view(np.uint64)
        self.cum = np.zeros(self.size + 1, dtype=np.int64)
        np.cumsum(np.array(lengths, dtype=np.int64), out=self.cum[1:])
        self.total = int(self.cum[-1])
        self.n = 1
        self.positions = np.arange(self.size)
        self.keys = self.word_hash
        self.first = np.zeros(self.size, dtype=bool)
        self.top_count = self.size
        self.top_first = 0

    def regroup(self, n: int) -> None:
        """Roll the candidates forward to n-grams and keep those that occur twice or more."""
        inside = self.positions < self.size - n + 1
        positions, keys = self.positions[inside], self.keys[inside]
        for j in range(self.n + 1, n + 1):
            keys = keys * _HASH_MULTIPLIER + self.word_hash[positions + j - 1]
        self.n = n
        if len(positions):
            positions, keys, self.first, self.top_count, self.top_first = _repeated(keys, positions)
        self.positions, self.keys = positions, keys
        if len(positions) == 0:  # every n-gram is unique: "top" is the first, once
            self.first, self.top_count, self.top_first = np.zeros(0, dtype=bool), 1, 0

    def top_chars(self) -> int:
        """Characters covered by the most frequent n-gram (its length times its count)."""
        first = self.top_first
        return int(self.cum[first + self.n] - self.cum[first]) * self.top_count

    def duplicated_chars(self, limit: float | None) -> int:
        """Characters in repeated n-grams; see ``_duplicated_chars``."""
        n, positions = self.n, self.positions
        chars = self.cum[positions + n] - self.cum[positions]
        return _duplicated_chars(positions, self.keys, self.first, n, chars, limit)

    def top_bounds(self, sizes: range) -> list[int]:
        """Upper bounds on ``top_chars`` at the (larger) ``sizes``, from the current candidates:
        the top n-gram's count is at most the current top count and its length at most that
        of the longest candidate n-gram (or it is the first n-gram, when nothing repeats)."""
        ns = np.array(sizes)[:, None]
        starts = self.positions[None, :]
        fits = starts <= self.size - ns
        chars = np.where(fits, self.cum[np.minimum(starts + ns, self.size)] - self.cum[starts], 0)
        counts = np.minimum(self.top_count, self.size - ns[:, 0] + 1)
        return np.maximum(self.cum[ns[:, 0]], counts * chars.max(axis=1, initial=0)).tolist()

    def duplicated_bounds(self, sizes: range) -> list[int]:
        """Upper bounds on ``duplicated_chars`` at ``sizes`` (the current one or larger): the
        counted repeats are disjoint and lie within the n-grams at the current repeats, whose
        union (starts sorted, one length) is the disjoint union of
        ``[p_i, min(p_i + n, p_(i+1)))``."""
        ns = np.array(sizes)[:, None]
        starts = self.positions[~self.first][None, :]
        fits = starts <= self.size - ns
        ends = np.minimum(starts + ns, self.size)
        following = np.where(fits[:, 1:], starts[:, 1:], self.size)
        np.minimum(ends[:, :-1], following, out=ends[:, :-1])
        return np.where(fits, self.cum[ends] - self.cum[starts], 0).sum(axis=1).tolist()


def ngram_repetition_chars(
    words: list[str],
    max_n: int = 10,
    limits: Mapping[int, float] | None = None,
    lengths: list[int] | None = None,
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(n, chars, total)`` for n = 2..``max_n`` (lazily, so callers can stop early).

    For n <= 4 ``chars`` is the characters covered by the most frequent n-gram (its length times
    its count; ties go to the earliest, as ``Counter.most_common``); for n >= 5 the characters in
    repeated n-grams (``_duplicated_chars``). Characters are counted over words: the sum of word
    lengths, no whitespace; ``total`` is that sum over the whole document (``lengths`` may pass
    the word lengths in when the caller has them). n stops at ``len(words)``.

    With ``limits`` (a fraction of ``total`` per n) a value at or below ``limit * total`` may be
    an upper bound of the exact one, which lets the scan settle most sizes with cheap bounds
    (``top_bounds``, ``duplicated_bounds``) instead of regrouping: ordinary text regroups at
    n = 2 and 5 only. A value above its limit is always exact.
    """
    scan = _NgramScan(words, list(map(len, words)) if lengths is None else lengths)
    limit_chars = {n: fraction * scan.total for n, fraction in (limits or {}).items()}
    last = min(max_n, scan.size)
    top_last = min(_TOP_NGRAM_SIZES[-1], last)
    bounds: dict[int, int] = {}
    for n in range(2, last + 1):
        limit = limit_chars.get(n)
        if limit is not None and bounds.get(n, limit + 1) <= limit:
            yield n, bounds[n], scan.total
            continue
        scan.regroup(n)
        if n <= top_last:
            yield n, scan.top_chars(), scan.total
            if limit_chars and n < top_last:  # duplicated bounds from 2-grams are too loose
                sizes = range(n + 1, top_last + 1)
                bounds = dict(zip(sizes, scan.top_bounds(sizes), strict=True))
            continue
        sizes = range(n, last + 1)
        dup_bounds = {}
        if limit_chars:
            dup_bounds = dict(zip(sizes, scan.duplicated_bounds(sizes), strict=True))
        if limit is not None and dup_bounds[n] <= limit:
            yield n, dup_bounds[n], scan.total
        else:
            yield n, scan.duplicated_chars(limit), scan.total
        bounds = dup_bounds


def _repetition_checks(
    text: str,
    words: list[str],
    lines: list[str],
    config: HeuristicsConfig,
    lengths: list[int],
    exact: bool,
) -> Iterator[_Check]:
    """All Gopher repetition rules in datatrove's order: paragraphs, lines, then n-grams.

    * at most 30% of paragraphs, and 20% of characters, in repeated paragraphs: boilerplate
      (disclaimers, sign-up boxes) or scraping loops; models trained on them memorise and
      degenerate into repetition;
    * at most 30% of lines, and 20% of characters, in repeated lines (menus, headers, "Posted by
      admin" and other templated lines). Blank lines are not counted;
    * the most frequent 2/3/4-gram covers at most 20/18/16% of the characters, and repeated
      5..10-grams at most 15..10%: repetition that line rules miss (spun content, keyword
      stuffing, the same sentence looping inside one paragraph). See ``ngram_repetition_chars``.

    ``words`` are the ``content_words`` of the text (so "end." and "end" are one word), ``lines``
    its ``nonblank_lines``, ``lengths`` the word lengths.
    """
    for kind, items in (("paragraph", _paragraphs(text)), ("line", lines)):
        if items:
            count, chars = duplicates(items)
            reason = f"duplicate_{kind}"
            yield _Check(f"{reason}s", f"{reason}_fraction", count, "max",
                         getattr(config, f"max_{reason}_fraction"), len(items))
            yield _Check(f"{reason}_chars", f"{reason}_char_fraction", chars, "max",
                         getattr(config, f"max_{reason}_char_fraction"), len(text))
    huge = len(words) > config.max_words
    if exact and huge and config.gopher_quality:
        return  # already dropped as too_many_words: no n-gram measures, and no scan
    measured = exact and not huge
    limits = dict(config.top_ngram_thresholds() + config.duplicated_ngram_thresholds())
    scan = ngram_repetition_chars(words, max(limits), None if measured else limits, lengths)
    for n, chars, total in scan:
        name = f"top_{n}gram" if n in _TOP_NGRAM_SIZES else f"duplicated_{n}gram"
        yield _Check(name, f"{name}_char_fraction", chars, "max", limits[n], total,
                     reported=measured)


# ---------------------------------------------------------------------------------------------
# C4 (Raffel et al. 2020, section 2.2; TFDS c4_utils.clean_page)
# ---------------------------------------------------------------------------------------------


def c4_line_kept(line: str, config: HeuristicsConfig) -> bool:
    """Whether C4 keeps one (stripped) line, in TFDS's order of checks.

    C4 keeps only sentence-like lines: ending in terminal punctuation but not an ellipsis
    (menus, titles, buttons and truncated teasers do not), with at least ``min_words_per_line``
    words, no word over ``max_word_length`` characters, and no "javascript" notice or
    cookie/terms/privacy-policy boilerplate.
    """
    words = line.split()
    if any(len(word) > config.max_word_length for word in words):
        return False
    if not line.endswith(C4_END_MARKS) or line.endswith(ELLIPSES):
        return False
    if len(words) < config.min_words_per_line:
        return False
    lowered = line.lower()
    if "javascript" in lowered:
        return False
    return not any(policy in lowered for policy in C4_POLICY_SUBSTRINGS)


def c4_clean_lines(text: str, config: HeuristicsConfig) -> str:
    """C4 line cleaning: the stripped lines that ``c4_line_kept`` accepts, joined by ``"\\n"``."""
    stripped = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in stripped if c4_line_kept(line, config))


def count_sentences(text: str) -> int:
    """Sentences in ``text``: terminal-mark runs followed by whitespace, at least one per
    non-blank line (every C4-kept line ends a sentence, even after a closing quote).

    A regex stand-in for TFDS's NLTK punkt tokeniser; abbreviations ("e.g. ") count extra.
    """
    return sum(max(1, len(_SENTENCE_END.findall(line))) for line in nonblank_lines(text))


def _c4_document_checks(text: str, config: HeuristicsConfig) -> Iterator[_Check | Drop]:
    """C4 document rules: drop placeholder text ("lorem ipsum": unfinished templates), pages with
    "{" (C4's proxy for code; off by default here), and, after line cleaning, pages with fewer
    than ``min_sentences`` sentences (too little running text survived). The first two have no
    threshold and record no details."""
    if config.drop_lorem_ipsum and "lorem ipsum" in text.lower():
        yield Drop("lorem_ipsum")
    if config.drop_curly_bracket and "{" in text:
        yield Drop("curly_bracket")
    if config.c4_lines and config.min_sentences:
        yield _Check("too_few_sentences", "sentences", count_sentences(text), "min",
                     config.min_sentences)


# ---------------------------------------------------------------------------------------------
# FineWeb (Penedo et al. 2024, section 3.5; datatrove FineWebQualityFilter)
# ---------------------------------------------------------------------------------------------


def _fineweb_checks(text: str, lines: list[str], config: HeuristicsConfig) -> Iterator[_Check]:
    """FineWeb's line rules, found by comparing removed and kept data with ablation models:

    * at least 12% of lines end in terminal punctuation (else navigation, lists, tables);
    * at most 67% of lines are shorter than 30 characters (menus, link lists);
    * at most 1% of characters are in repeated lines (templated boilerplate);
    * at most 30% of lines start with a bullet. (datatrove's "list_ratio" instead compares the
      number of newlines to the number of words; here it is the bullet-line fraction.)
    """
    if not lines:
        return
    n_lines = len(lines)
    stripped = list(map(str.strip, lines))
    yield _Check("too_few_punctuated_lines", "punctuated_line_fraction",
                 _count_ending(stripped, FINEWEB_END_MARKS), "min",
                 config.min_punctuated_line_fraction, n_lines)
    yield _Check("too_many_short_lines", "short_line_fraction",
                 sum(1 for line in stripped if len(line) < config.short_line_chars), "max",
                 config.max_short_line_fraction, n_lines)
    yield _Check("too_many_duplicate_line_chars", "fineweb_duplicate_char_fraction",
                 duplicates(lines)[1], "max", config.max_fineweb_duplicate_char_fraction,
                 len(text) - text.count("\n"))
    yield _Check("too_many_list_lines", "list_line_fraction", _count_starting(stripped, BULLETS),
                 "max", config.max_list_line_fraction, n_lines)


# ---------------------------------------------------------------------------------------------
# Combined filter
# ---------------------------------------------------------------------------------------------


def _checks(text: str, config: HeuristicsConfig, exact: bool) -> Iterator[_Check | Drop]:
    """Every enabled rule's check of (cleaned) ``text``, cheapest first, lazily: the verdict
    stops at the first crossing, the measures take them all. A rule without a threshold
    (``no_lines_left``, ``lorem_ipsum``, ``curly_bracket``) yields its ``Drop`` when it fires.

    Order: C4 "no lines left", Gopher word count, C4 document rules, the other Gopher quality
    rules, FineWeb, then Gopher repetition (the most expensive, and protected from huge inputs
    by the word-count rule running first). ``exact`` (the measures): stop words counted to the
    end and n-gram values exact; without it they stop as soon as the rule is settled.
    """
    if not config.enabled:
        return
    if config.c4 and config.c4_lines and not text.strip():
        yield Drop("no_lines_left", {"lines": 0, "min": 1})
    words = content_words(text.split())
    if config.gopher_quality:
        yield from _word_count_checks(len(words), config)
    if config.c4:
        yield from _c4_document_checks(text, config)
    lines = nonblank_lines(text)
    lengths = list(map(len, words))
    if config.gopher_quality:
        yield from _gopher_quality_checks(text, words, lines, config, sum(lengths), exact)
    if config.fineweb:
        yield from _fineweb_checks(text, lines, config)
    if config.gopher_repetition and text:
        yield from _repetition_checks(text, words, lines, config, lengths, exact)


def _first_drop(checks: Iterator[_Check | Drop]) -> Verdict:
    for check in checks:
        drop = check if isinstance(check, Drop) else check.verdict()
        if drop:
            return drop
    return KEEP


def _judge(text: str, config: HeuristicsConfig) -> tuple[Verdict, dict[str, float]]:
    """The verdict (the first crossing) and the measures (every reported value, rounded; a
    measure two checks share holds the larger: the ``#`` and ellipsis ratios) in one pass."""
    verdict: Verdict = KEEP
    values: dict[str, float] = {}
    for check in _checks(text, config, exact=True):
        if isinstance(check, Drop):
            verdict = verdict or check
            continue
        verdict = verdict or check.verdict()
        if check.reported:
            value = check.measured()
            values[check.measure] = max(values.get(check.measure, value), value)
    return verdict, {measure: values[measure] for measure in MEASURES if measure in values}


class HeuristicFilter:
    """Runs the enabled rule sets (``_checks``) and returns the first ``Drop``; ``judge`` also
    gives every rule's measured value, in the same pass."""

    def __init__(self, config: HeuristicsConfig):
        problems = config.errors()
        if problems:
            raise ValueError("invalid HeuristicsConfig: " + "; ".join(problems))
        self.config = config
        self._clean_lines = config.enabled and config.c4 and config.c4_lines

    def clean(self, text: str) -> str:
        """C4 line cleaning when ``c4`` and ``c4_lines`` are on; the text unchanged otherwise."""
        return c4_clean_lines(text, self.config) if self._clean_lines else text

    def __call__(self, text: str) -> Verdict:
        """Document-level verdict on already-cleaned text: ``None`` keeps, a ``Drop`` removes
        (its reason, and the measured value and bound in its details)."""
        return _first_drop(_checks(text, self.config, exact=False))

    def judge(self, text: str) -> tuple[Verdict, dict[str, float]]:
        """The verdict on already-cleaned text and every value the enabled threshold rules
        measure on it, whether or not it is dropped (the report's distributions), in one pass.

        Measures are ``{measure: value}``, named and rounded as in the drops' details, so a
        removed document's details value equals its measure. Unlike the verdict they are exact
        and complete: ``stop_words`` counts every stop word, the n-gram fractions are exact
        (the verdict alone bounds those of kept text), and ``symbol_word_ratio`` is the larger
        of the ``#`` and ellipsis ratios. Left out: a fraction of nothing (no words, no lines),
        and the n-gram measures above ``max_words`` words (such a document is dropped for its
        length, and scanning it would cost more than the rest of the run).
        """
        return _judge(text, self.config)


# ---------------------------------------------------------------------------------------------
# Measures of every document (the report's distributions)
# ---------------------------------------------------------------------------------------------


MEASURES: tuple[str, ...] = (
    "words", "mean_word_length", "symbol_word_ratio", "bullet_line_fraction",
    "ellipsis_line_fraction", "alpha_word_fraction", "stop_words", "sentences",
    "punctuated_line_fraction", "short_line_fraction", "fineweb_duplicate_char_fraction",
    "list_line_fraction", "duplicate_paragraph_fraction", "duplicate_paragraph_char_fraction",
    "duplicate_line_fraction", "duplicate_line_char_fraction",
    *(f"top_{n}gram_char_fraction" for n in _TOP_NGRAM_SIZES),
    *(f"duplicated_{n}gram_char_fraction" for n in _DUPLICATED_NGRAM_SIZES),
)
"""Every measure ``heuristic_measures`` can return, in the report's order (the rules' order,
but ``sentences``, checked before the Gopher quality rules, comes after them)."""


def heuristic_measures(text: str, config: HeuristicsConfig) -> dict[str, float]:
    """Every value the enabled threshold rules measure on (cleaned) ``text``, whether or not
    the document is dropped: the measures of ``HeuristicFilter.judge``, for a config that is
    known to be valid."""
    return _judge(text, config)[1]


def measure_bounds(config: HeuristicsConfig, measure: str) -> dict[str, float]:
    """The bounds a measure is held to: ``{"min": bound}``, ``{"max": bound}`` or both, read
    from the config fields the measures are named after (``words``: ``min_words`` and
    ``max_words``)."""
    return {side: getattr(config, f"{side}_{measure}") for side in ("min", "max")
            if hasattr(config, f"{side}_{measure}")}
