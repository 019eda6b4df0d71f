"""Tests for filters.heuristics: Gopher quality and repetition, C4, FineWeb rule sets."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter

import pytest

from winnow.filters.base import KEEP, Drop, Verdict
from winnow.filters.heuristics import (
    REASONS,
    HeuristicFilter,
    HeuristicsConfig,
    c4_clean_lines,
    content_words,
    ngram_repetition_chars,
)

# -- inputs -----------------------------------------------------------------------------------

ENGLISH = (
    "The old harbour town sits at the mouth of a slow green river.\n"
    "Fishing boats still leave before dawn, and their crews return with the morning light.\n"
    "Visitors often walk along the stone pier to watch them unload the catch.\n"
    "In the narrow streets above the water, bakers open their shops early and sell warm bread"
    " to anyone passing by.\n"
    "Most families have lived here for generations, so neighbours know each other well and"
    " share news over coffee.\n"
)
"""About 80 words of ordinary English prose in five sentence lines: every rule set keeps it."""

PHRASE = "the summer festival of music and food fills every street"
LONGER = ENGLISH + (
    f"Each August {PHRASE} near the water.\n"
    "Bands play on a small stage beside the lighthouse until late at night.\n"
    "Children race paper boats in the shallow pools that the tide leaves behind.\n"
    "Older residents say the custom began more than a century ago, after a good season.\n"
    f"Whatever its origin, when {PHRASE}, nobody in town wants to stay at home.\n"
)
"""156 words repeating one 10-word phrase: 4-7% of characters in repeated n-grams."""

WELCOME = "Welcome to the harbour."
TITLED = "Harbour Town\n" + ENGLISH
HASHTAGS = ENGLISH + "Photos from the pier are tagged #harbour and #boats online.\n"
BULLETED = (
    ENGLISH + "- Boat tours leave twice a day from the pier.\n- Tickets are sold at the kiosk.\n"
)
TRAILING = ENGLISH.replace("coffee.", "coffee...")
NUMBERS = ENGLISH + "The pier was built in 1850 and rebuilt in 1923 after a storm.\n"
DUPLICATE_LINE = ENGLISH + f"{WELCOME}\n{WELCOME}\n"
DUPLICATE_PARAGRAPH = "\n\n".join([*ENGLISH.splitlines(), WELCOME, WELCOME])
LOREM = ENGLISH + "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n"
BRACES = ENGLISH + "The config file reads {harbour: true} for every boat.\n"

LONG_LINE = "This long sentence is repeated twice and holds most of the characters in the text."

REPETITION_ONLY = {"gopher_quality": False, "c4": False}
FINEWEB_ONLY = {"gopher_quality": False, "gopher_repetition": False, "c4": False, "fineweb": True}
C4_ONLY = {"gopher_quality": False, "gopher_repetition": False, "c4_lines": True}


def drop(text: str, **config: object) -> Verdict:
    """The combined filter's verdict with ``config`` overrides, after its line cleaning."""
    heuristic_filter = HeuristicFilter(HeuristicsConfig(**config))
    return heuristic_filter(heuristic_filter.clean(text))


def verdict(text: str, **config: object) -> str | None:
    """The reason name of ``drop``'s verdict (``None`` keeps)."""
    dropped = drop(text, **config)
    return dropped.reason if dropped else KEEP


def words(count: int, prefix: str = "w") -> list[str]:
    """``count`` distinct 4-character filler words."""
    return [f"{prefix}{i:03d}" for i in range(count)]


def repeated_ngram_doc(n: int) -> str:
    """One line with a repeated n-word sequence whose last word is long, around unique filler:
    the long word makes the repeated n-grams (not the shorter ones) cross their threshold."""
    sequence = [f"s{i}x" for i in range(n - 1)] + ["L" * 40]
    return " ".join(sequence + words(10 * n) + sequence)


def top_ngram_doc(n: int, filler_per_copy: int) -> str:
    """Ten copies of one n-gram, each followed by unique filler words."""
    gram = " ".join(["aaaa", "bbbb", "cccc", "dddd"][:n])
    return " ".join(f"{gram} {' '.join(words(filler_per_copy, f'f{r}'))}" for r in range(10))


# -- every rule, its exact reason and details -------------------------------------------------

# (reason, text, config, details): the details are the measured value (counts exact, fractions
# and means to 4 significant digits) and the bound it crossed.
RULE_CASES = [
    # Gopher quality
    ("too_few_words", " ".join(["word"] * 40), {}, {"words": 40, "min": 50}),
    ("too_many_words", ENGLISH, {"max_words": 60}, {"words": 78, "max": 60}),
    (
        "mean_word_length_too_short",
        " ".join(["ab"] * 60),
        {},
        {"mean_word_length": 2.0, "min": 3.0},
    ),
    (
        "mean_word_length_too_long",
        " ".join(["abcdefghijklm"] * 60),
        {},
        {"mean_word_length": 13.0, "max": 10.0},
    ),
    # 20 "#" over 78 + 20 words; 15 "..." over 78 + 15 words.
    (
        "too_many_symbols",
        ENGLISH + " #tag" * 20,
        {},
        {"symbol_word_ratio": 0.2041, "max": 0.1, "symbol": "#"},
    ),
    (
        "too_many_symbols",
        ENGLISH + " wait..." * 15,
        {},
        {"symbol_word_ratio": 0.1613, "max": 0.1, "symbol": "..."},
    ),
    (
        "too_many_bullet_lines",
        "\n".join(f"• item number {i} of the list" for i in range(60)),
        {},
        {"bullet_line_fraction": 1.0, "max": 0.9},
    ),
    (
        "too_many_ellipsis_lines",
        "\n".join(f"line {i} of the story goes on and on and then it ends..." for i in range(4))
        + "\n"
        + ENGLISH,
        {},
        {"ellipsis_line_fraction": 0.4444, "max": 0.3},  # 4 of 9 lines
    ),
    (
        "too_few_alpha_words",
        " ".join(["the", "1234", "5678"] * 20),
        {},
        {"alpha_word_fraction": 0.3333, "min": 0.8},
    ),
    (
        "too_few_stop_words",
        " ".join(["quick brown foxes jump over lazy dogs while cats"] * 7),
        {},
        {"stop_words": 0, "min": 2},
    ),
    # C4 document rules
    ("lorem_ipsum", LOREM, {}, {}),
    ("curly_bracket", BRACES, {"drop_curly_bracket": True}, {}),
    ("too_few_sentences", ENGLISH, {**C4_ONLY, "min_sentences": 6}, {"sentences": 5, "min": 6}),
    (
        "no_lines_left",
        "Home | About | Contact\nMenu\nRead more...",
        {"c4_lines": True},
        {"lines": 0, "min": 1},
    ),
    # FineWeb
    (
        "too_few_punctuated_lines",
        "\n".join(f"A heading without a full stop {i}" for i in range(20)),
        FINEWEB_ONLY,
        {"punctuated_line_fraction": 0.0, "min": 0.12},
    ),
    (
        "too_many_short_lines",
        "\n".join(f"Short line {i}." for i in range(20)),
        FINEWEB_ONLY,
        {"short_line_fraction": 1.0, "max": 0.67},
    ),
    (
        "too_many_duplicate_line_chars",
        DUPLICATE_LINE,
        FINEWEB_ONLY,
        # 23 repeated characters over 437 + 46 non-newline characters
        {"fineweb_duplicate_char_fraction": 0.04762, "max": 0.01},
    ),
    (
        "too_many_list_lines",
        ENGLISH + "".join(f"- List item number {i} is long enough.\n" for i in range(3)),
        FINEWEB_ONLY,
        {"list_line_fraction": 0.375, "max": 0.3},  # 3 of 8 lines
    ),
    # Gopher repetition
    (
        "duplicate_paragraphs",
        "\n\n".join(["Alpha one two", "Beta four five", "Alpha one two", "Alpha one two"]),
        REPETITION_ONLY,
        {"duplicate_paragraph_fraction": 0.5, "max": 0.3},
    ),
    (
        "duplicate_paragraph_chars",
        "\n\n".join([LONG_LINE, "b1", "b2", "b3", "b4", LONG_LINE]),
        REPETITION_ONLY,
        {"duplicate_paragraph_char_fraction": 0.4505, "max": 0.2},  # 82 of 182 characters
    ),
    (
        "duplicate_lines",
        "\n".join(["same line here", "x1 y1 z1", "same line here", "same line here", "x2 y2"]),
        REPETITION_ONLY,
        {"duplicate_line_fraction": 0.4, "max": 0.3},
    ),
    (
        "duplicate_line_chars",
        "\n".join([LONG_LINE, "l1", "l2", "l3", "l4", LONG_LINE]),
        REPETITION_ONLY,
        {"duplicate_line_char_fraction": 0.4633, "max": 0.2},  # 82 of 177 characters
    ),
    (
        "top_2gram",
        " ".join(f"foo bar w{i}" for i in range(30)),
        REPETITION_ONLY,
        {"top_2gram_char_fraction": 0.6923, "max": 0.2},  # 30 * 6 of 260 word characters
    ),
    (
        "top_3gram",
        top_ngram_doc(3, 10),
        REPETITION_ONLY,
        {"top_3gram_char_fraction": 0.1935, "max": 0.18},  # 10 * 12 of 10 * (12 + 50)
    ),
    (
        "top_4gram",
        top_ngram_doc(4, 16),
        REPETITION_ONLY,
        {"top_4gram_char_fraction": 0.1667, "max": 0.16},  # 10 * 16 of 10 * (16 + 80)
    ),
    # One repeated n-gram of 3 * (n - 1) + 40 characters among 40 * n filler characters.
    *(
        (
            f"duplicated_{n}gram",
            repeated_ngram_doc(n),
            REPETITION_ONLY,
            {f"duplicated_{n}gram_char_fraction": fraction, "max": bound},
        )
        for n, fraction, bound in [
            (5, 0.1711, 0.15),
            (6, 0.1571, 0.14),
            (7, 0.1465, 0.13),
            (8, 0.138, 0.12),
            (9, 0.1311, 0.11),
            (10, 0.1255, 0.1),
        ]
    ),
]


@pytest.mark.parametrize(("reason", "text", "config", "details"), RULE_CASES)
def test_rule_gives_its_reason_and_details(
    reason: str, text: str, config: dict, details: dict
) -> None:
    assert drop(text, **config) == Drop(reason, details)


def test_every_reason_has_a_case_and_is_listed() -> None:
    covered = {reason for reason, _, _, _ in RULE_CASES}
    assert covered == set(REASONS)
    assert len(REASONS) == len(set(REASONS))
    assert all(reason.replace("_", "").isalnum() and reason.islower() for reason in REASONS)


@pytest.mark.parametrize(("reason", "text", "config"), [case[:3] for case in RULE_CASES])
def test_details_name_the_setting_that_holds_the_bound(
    reason: str, text: str, config: dict
) -> None:
    """``{measure: value, "max": bound}`` where ``max_<measure>`` is the config field set to
    ``bound`` (or ``min``); rules without a setting are the documented exceptions."""
    if reason in ("lorem_ipsum", "curly_bracket", "no_lines_left"):
        return
    details = drop(text, **config).details
    (side,) = {"min", "max"} & set(details)
    (measure,) = set(details) - {side, "symbol"}
    settings = HeuristicsConfig(**config)
    assert getattr(settings, f"{side}_{measure}") == details[side]


# -- ordinary prose is kept ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"fineweb": True, "c4_lines": True, "drop_curly_bracket": True},
        {"min_words_per_line": 5},
    ],
    ids=["defaults", "everything_on", "tfds_line_words"],
)
@pytest.mark.parametrize("text", [ENGLISH, LONGER], ids=["english", "longer"])
def test_english_prose_is_kept(text: str, config: dict) -> None:
    assert verdict(text, **config) is KEEP


def test_disabled_stage_keeps_everything_unchanged() -> None:
    heuristic_filter = HeuristicFilter(HeuristicsConfig(enabled=False, c4_lines=True))
    assert heuristic_filter("") is KEEP
    assert heuristic_filter(" ".join(["word"] * 5)) is KEEP
    assert heuristic_filter.clean("Menu\nHome") == "Menu\nHome"


def test_rule_sets_switch_off() -> None:
    garbage = " ".join(["word"] * 40)
    assert verdict(garbage) == "too_few_words"
    assert verdict(garbage, gopher_quality=False) == "top_2gram"
    assert verdict(garbage, gopher_quality=False, gopher_repetition=False) is KEEP
    assert verdict(LOREM, c4=False) is KEEP
    assert verdict(LOREM, drop_lorem_ipsum=False) is KEEP


# -- each threshold flips a verdict ----------------------------------------------------------

FLIPS = [
    # (text, base config, changed fields, reason under the changed config)
    (ENGLISH, {}, {"min_words": 100}, "too_few_words"),
    (ENGLISH, {}, {"max_words": 60}, "too_many_words"),
    (ENGLISH, {}, {"min_mean_word_length": 5.0}, "mean_word_length_too_short"),
    (ENGLISH, {}, {"max_mean_word_length": 4.0}, "mean_word_length_too_long"),
    (HASHTAGS, {}, {"max_symbol_word_ratio": 0.01}, "too_many_symbols"),
    (BULLETED, {}, {"max_bullet_line_fraction": 0.2}, "too_many_bullet_lines"),
    (TRAILING, {}, {"max_ellipsis_line_fraction": 0.1}, "too_many_ellipsis_lines"),
    (NUMBERS, {}, {"min_alpha_word_fraction": 0.99}, "too_few_alpha_words"),
    (ENGLISH, {}, {"min_stop_words": 100}, "too_few_stop_words"),
    (ENGLISH, {}, {"stop_words": ("harbour", "lighthouse")}, "too_few_stop_words"),
    (DUPLICATE_PARAGRAPH, {}, {"max_duplicate_paragraph_fraction": 0.1}, "duplicate_paragraphs"),
    (
        DUPLICATE_PARAGRAPH,
        {},
        {"max_duplicate_paragraph_char_fraction": 0.03},
        "duplicate_paragraph_chars",
    ),
    (DUPLICATE_LINE, {}, {"max_duplicate_line_fraction": 0.1}, "duplicate_lines"),
    (DUPLICATE_LINE, {}, {"max_duplicate_line_char_fraction": 0.03}, "duplicate_line_chars"),
    (LONGER, {}, {"max_top_2gram_char_fraction": 0.01}, "top_2gram"),
    (LONGER, {}, {"max_top_3gram_char_fraction": 0.02}, "top_3gram"),
    (LONGER, {}, {"max_top_4gram_char_fraction": 0.03}, "top_4gram"),
    *(
        (LONGER, {}, {f"max_duplicated_{n}gram_char_fraction": 0.03}, f"duplicated_{n}gram")
        for n in range(5, 11)
    ),
    (BRACES, {}, {"drop_curly_bracket": True}, "curly_bracket"),
    (ENGLISH, {"c4_lines": True}, {"min_sentences": 6}, "too_few_sentences"),
    (TITLED, {"fineweb": True}, {"min_punctuated_line_fraction": 0.9}, "too_few_punctuated_lines"),
    (TITLED, {"fineweb": True}, {"max_short_line_fraction": 0.1}, "too_many_short_lines"),
    (ENGLISH, {"fineweb": True}, {"short_line_chars": 200}, "too_many_short_lines"),
    (BULLETED, {"fineweb": True}, {"max_list_line_fraction": 0.2}, "too_many_list_lines"),
]


@pytest.mark.parametrize(("text", "base", "changed", "reason"), FLIPS)
def test_threshold_flips_verdict(text: str, base: dict, changed: dict, reason: str) -> None:
    assert verdict(text, **base) is KEEP
    assert verdict(text, **base, **changed) == reason


def test_fineweb_duplicate_chars_threshold_flips_verdict() -> None:
    # One repeated 23-character line is ~5% of the text: FineWeb's 1% drops it, 10% keeps it.
    assert verdict(DUPLICATE_LINE, fineweb=True) == "too_many_duplicate_line_chars"
    assert verdict(DUPLICATE_LINE, fineweb=True, max_fineweb_duplicate_char_fraction=0.1) is KEEP


def test_every_threshold_field_is_flipped() -> None:
    flipped = {name for _, _, changed, _ in FLIPS for name in changed}
    flipped |= {"max_fineweb_duplicate_char_fraction", "min_words_per_line", "max_word_length"}
    switches = {
        "enabled",
        "gopher_quality",
        "gopher_repetition",
        "c4",
        "c4_lines",
        "fineweb",
        "drop_lorem_ipsum",
    }
    fields = {field.name for field in dataclasses.fields(HeuristicsConfig)}
    assert fields - switches - flipped == set()


# -- C4 line cleaning ------------------------------------------------------------------------

C4_PAGE = (
    "Home | About | Contact\n"
    "The committee approved the new budget on Monday.\n"
    "Click here\n"
    "Please enable JavaScript to view this page.\n"
    "This site uses cookies to improve your experience.\n"
    "Read our Privacy Policy before you continue.\n"
    "She asked whether the library would stay open late?\n"
    "Read more...\n"
    "  Residents welcomed the decision with relief!  \n"
    "It rained all day.\n"
    "Ok.\n"
    f"The checksum {'x' * 30} was printed.\n"
    "He said \u201cwe will see.\u201d\n"
)


def test_c4_clean_lines_exact_output() -> None:
    assert c4_clean_lines(C4_PAGE, HeuristicsConfig()) == (
        "The committee approved the new budget on Monday.\n"
        "She asked whether the library would stay open late?\n"
        "Residents welcomed the decision with relief!\n"
        "It rained all day.\n"
        f"The checksum {'x' * 30} was printed.\n"
        "He said \u201cwe will see.\u201d"
    )


def test_c4_line_thresholds_flip_lines() -> None:
    tfds_words = c4_clean_lines(C4_PAGE, HeuristicsConfig(min_words_per_line=5))
    assert "It rained all day." not in tfds_words
    assert "Residents welcomed the decision with relief!" in tfds_words
    short_words = c4_clean_lines(C4_PAGE, HeuristicsConfig(max_word_length=20))
    assert "checksum" not in short_words
    assert "It rained all day." in short_words


def test_c4_cleaning_runs_only_when_enabled() -> None:
    assert HeuristicFilter(HeuristicsConfig()).clean(C4_PAGE) == C4_PAGE
    assert HeuristicFilter(HeuristicsConfig(c4=False, c4_lines=True)).clean(C4_PAGE) == C4_PAGE
    cleaner = HeuristicFilter(HeuristicsConfig(**C4_ONLY))
    cleaned = cleaner.clean(C4_PAGE)
    assert cleaned == c4_clean_lines(C4_PAGE, HeuristicsConfig())
    assert cleaner(cleaned) is KEEP
    assert HeuristicFilter(HeuristicsConfig(**C4_ONLY, min_sentences=7))(cleaned) == Drop(
        "too_few_sentences", {"sentences": 6, "min": 7}
    )


# -- n-gram definitions match datatrove's ----------------------------------------------------


def reference_top(tokens: list[str], n: int) -> int:
    """datatrove ``find_top_duplicate``, characters counted over words."""
    gram, count = Counter(zip(*(tokens[i:] for i in range(n)), strict=False)).most_common(1)[0]
    return sum(map(len, gram)) * count


def reference_duplicated(tokens: list[str], n: int) -> int:
    """datatrove ``find_all_duplicate``: a repeat adds its characters and skips n words."""
    seen: set[tuple[str, ...]] = set()
    chars = index = 0
    while index < len(tokens) - n + 1:
        gram = tuple(tokens[index : index + n])
        if gram in seen:
            chars += sum(map(len, gram))
            index += n
        else:
            seen.add(gram)
            index += 1
    return chars


def test_ngram_chars_match_datatrove_reference() -> None:
    rng = random.Random(7)
    documents = [content_words(text.split()) for text in (ENGLISH, LONGER)]
    documents += [repeated_ngram_doc(n).split() for n in (5, 8)]
    documents.append(words(40) * 3)  # the scan crosses its limits long before the exact value
    for _ in range(300):
        vocabulary = rng.choice([2, 3, 6, 50])
        documents.append(
            [str(rng.randrange(vocabulary)) * rng.randint(1, 3) for _ in range(rng.randint(0, 60))]
        )
    for tokens in documents:
        exact = {n: chars for n, chars, _ in ngram_repetition_chars(tokens)}
        expected = {
            n: reference_top(tokens, n) if n <= 4 else reference_duplicated(tokens, n)
            for n in range(2, min(10, len(tokens)) + 1)
        }
        assert exact == expected
        limits = {n: rng.choice([0.0, 0.05, 0.1, 0.3, 1.0]) for n in range(2, 11)}
        for n, chars, total in ngram_repetition_chars(tokens, 10, limits):
            assert (chars > limits[n] * total) == (expected[n] > limits[n] * total)
            if chars > limits[n] * total:  # what a removal records: the exact value
                assert chars == expected[n]


def test_recorded_ngram_fraction_is_the_exact_one() -> None:
    """Three copies of 40 distinct words: the second and third copies repeat every 5-gram, so
    2/3 of the characters are in repeated 5-grams; the scan's limit (15%) is crossed early,
    yet the recorded value is the limit-free one."""
    tokens = words(40) * 3
    total = sum(map(len, tokens))
    exact = reference_duplicated(tokens, 5)
    assert exact == 2 * total // 3
    scanned = {n: chars for n, chars, _ in ngram_repetition_chars(tokens, 10, {5: 0.15})}
    assert scanned[5] == exact
    assert drop(" ".join(tokens), **REPETITION_ONLY) == Drop(
        "duplicated_5gram", {"duplicated_5gram_char_fraction": 0.6667, "max": 0.15}
    )


def test_hundred_thousand_words_are_fast() -> None:
    rng = random.Random(3)
    vocabulary = ENGLISH.split() + words(5000)
    text = " ".join(rng.choice(vocabulary) for _ in range(100_000))
    heuristic_filter = HeuristicFilter(HeuristicsConfig(gopher_quality=False))
    start = time.perf_counter()
    heuristic_filter(text)
    assert time.perf_counter() - start < 2.0


# -- configuration ---------------------------------------------------------------------------


def test_default_config_is_valid() -> None:
    assert HeuristicsConfig().errors() == []


@pytest.mark.parametrize(
    "changed",
    [
        {"max_duplicate_line_fraction": 1.5},
        {"min_alpha_word_fraction": -0.1},
        {"min_words": 0},
        {"min_words": 500, "max_words": 100},
        {"min_mean_word_length": 12.0},
        {"min_stop_words": -1},
        {"short_line_chars": 0},
    ],
)
def test_invalid_config_is_reported(changed: dict) -> None:
    config = HeuristicsConfig(**changed)
    problems = config.errors()
    assert problems
    assert any(name in " ".join(problems) for name in changed)
    with pytest.raises(ValueError):
        HeuristicFilter(config)


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        HeuristicsConfig().min_words = 3  # type: ignore[misc]


def test_measures_hold_every_rules_value_whatever_the_verdict():
    from winnow.filters.heuristics import MEASURES, heuristic_measures, measure_bounds

    text = "one two three\none two three\n\nfour five six #x"
    values = heuristic_measures(text, HeuristicsConfig())
    assert values["words"] == 10 and values["stop_words"] == 0
    assert values["mean_word_length"] == round(34 / 10, 4)
    assert values["symbol_word_ratio"] == 0.1
    assert values["duplicate_line_fraction"] == 0.3333
    assert values["duplicate_line_char_fraction"] == float(f"{13 / len(text):.4g}")
    assert values["duplicate_paragraph_fraction"] == 0.0
    assert values["top_2gram_char_fraction"] == float(f"{2 * 6 / 34:.4g}")  # "one two" twice
    assert values["duplicated_10gram_char_fraction"] == 0.0  # the one 10-gram, once
    assert list(values) == [m for m in MEASURES if m in values]  # in the rules' order
    # The verdict stops at the word count; the measures go on.
    assert HeuristicFilter(HeuristicsConfig())(text) == Drop(
        "too_few_words", {"words": 10, "min": 50})
    assert measure_bounds(HeuristicsConfig(), "words") == {"min": 50, "max": 100_000}
    assert measure_bounds(HeuristicsConfig(), "duplicate_line_fraction") == {"max": 0.3}
    fineweb = heuristic_measures(text, HeuristicsConfig(fineweb=True, gopher_quality=False,
                                                        gopher_repetition=False))
    assert fineweb == {"punctuated_line_fraction": 0.0, "short_line_fraction": 1.0,
                       "fineweb_duplicate_char_fraction": float(f"{13 / (len(text) - 3):.4g}"),
                       "list_line_fraction": 0.0}
    assert heuristic_measures(text, HeuristicsConfig(enabled=False)) == {}
