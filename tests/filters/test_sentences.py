"""Tests for filters.sentences: paragraphs, Bling Fire sentences as exact substrings, cuts."""

from __future__ import annotations

import pytest

from winnow.filters.sentences import SentencesConfig, cut_long, split_paragraphs, split_sentences


def flat(paragraphs: list[list[str]]) -> list[str]:
    return [sentence for paragraph in paragraphs for sentence in paragraph]


# -- paragraphs -------------------------------------------------------------------------------


def test_split_paragraphs_blank_lines_stripped_non_empty():
    text = "  First line\nstill first.\n\n\nSecond.\n   \t\nThird\r\n\r\nFourth  \n\n \n"
    assert split_paragraphs(text) == [
        "First line\nstill first.",
        "Second.",
        "Third",
        "Fourth",
    ]
    assert split_paragraphs("") == []
    assert split_paragraphs(" \n\n \n") == []


def test_paragraph_boundaries_are_kept():
    text = (
        "Installation\n\n"
        "Run the installer. Then restart the shell.\n\n"
        "  Configuration is optional. Defaults work.\n   \n"
        "Done"
    )
    assert split_sentences(text) == [
        ["Installation"],
        ["Run the installer.", "Then restart the shell."],
        ["Configuration is optional.", "Defaults work."],
        ["Done"],
    ]


def test_never_merges_across_paragraphs():
    # Bling Fire on its own returns "Second para no period\n\n\nThird." as one sentence.
    text = "Second para no period\n\n\nThird. Fourth one."
    assert split_sentences(text) == [["Second para no period"], ["Third.", "Fourth one."]]


# -- sentences --------------------------------------------------------------------------------


def test_sentences_are_exact_substrings_whitespace_untouched():
    text = (
        "Hello   world.  This line\n   wraps here!  And\tthis? Yes.\n\n"
        "Ünïcödé text — fine. 日本語の文。次の文。 Last one."
    )
    paragraphs = split_sentences(text)
    assert paragraphs == [
        ["Hello   world.", "This line\n   wraps here!", "And\tthis?", "Yes."],
        ["Ünïcödé text — fine.", "日本語の文。", "次の文。", "Last one."],
    ]
    for sentence in flat(paragraphs):
        assert sentence in text
        assert sentence == sentence.strip()


def test_no_non_whitespace_text_is_lost():
    text = "a) First item; b) second. \"Quoted.\" (Aside.) End...\n\nx = f(1) + g(2)  # code"
    everything = SentencesConfig(min_chars=0)
    ours = "".join("".join(s.split()) for s in flat(split_sentences(text, everything)))
    assert ours == "".join(text.split())


def test_common_abbreviations_stay_inside_sentences():
    # Actual Bling Fire behaviour on realistic cases.
    assert flat(split_sentences("Use a context manager, e.g. a with block. It closes files.")) == [
        "Use a context manager, e.g. a with block.",
        "It closes files.",
    ]
    assert flat(split_sentences("Mr. Smith went to Washington. The U.S.A. is large! Is it?")) == [
        "Mr. Smith went to Washington.",
        "The U.S.A. is large!",
        "Is it?",
    ]
    assert flat(split_sentences("Python 3.10 adds match (see PEP 634). Call os.path.join().")) == [
        "Python 3.10 adds match (see PEP 634).",
        "Call os.path.join().",
    ]


def test_known_weaknesses_of_the_splitter():
    # After a sentence, chains of initials are split; a boundary before "Mr." is missed.
    assert flat(split_sentences("It ended. Dr. J. R. Tolkien wrote it.")) == [
        "It ended.", "Dr.", "J.", "R.", "Tolkien wrote it."
    ]
    assert flat(split_sentences("This is e.g. a test. Mr. Smith came.")) == [
        "This is e.g. a test. Mr. Smith came."
    ]


def test_single_line_break_does_not_split():
    text = "- first item\n- second item\nA wrapped\nsentence ends here."
    assert split_sentences(text) == [[text]]


def test_min_chars_drops_stray_punctuation():
    # Stray marks after a sentence stay attached to it; alone in a paragraph they are dropped.
    text = "Real sentence. ! Another one.\n\n.\n\n-\n\nok"
    assert split_sentences(text) == [["Real sentence. !", "Another one."], ["ok"]]
    assert split_sentences(text, SentencesConfig(min_chars=0)) == [
        ["Real sentence. !", "Another one."],
        ["."],
        ["-"],
        ["ok"],
    ]
    assert split_sentences(text, SentencesConfig(min_chars=13)) == [["Real sentence. !"]]


def test_long_unpunctuated_text_is_cut_at_whitespace():
    words = [f"w{i:03d}" for i in range(300)]  # 5 chars with the separator
    text = "header line\n" + " ".join(words)
    config = SentencesConfig(max_chars=100)
    pieces = flat(split_sentences(text, config))
    assert len(pieces) > 10
    assert all(len(piece) <= 100 for piece in pieces)
    assert all(piece in text for piece in pieces)
    assert " ".join(pieces).split() == text.split()  # cut between words, nothing lost
    assert all(not piece[0].isspace() and not piece[-1].isspace() for piece in pieces)


def test_cut_long_without_whitespace_cuts_inside():
    blob = "A" * 250
    assert cut_long(blob, 100) == ["A" * 100, "A" * 100, "A" * 50]
    assert cut_long("ab cd", 100) == ["ab cd"]
    assert cut_long("abc def ghi", 7) == ["abc def", "ghi"]
    assert cut_long("abc\u3000def", 4) == ["abc", "def"]  # rarer whitespace still a cut point


def test_empty_and_whitespace_text():
    assert split_sentences("") == []
    assert split_sentences("  \n\n\t ") == []
    assert split_sentences(".") == []  # shorter than min_chars


def test_disabled_keeps_paragraphs_whole():
    text = "One. Two.\n\nThree. Four."
    config = SentencesConfig(enabled=False)
    assert split_sentences(text, config) == [["One. Two."], ["Three. Four."]]
    assert split_sentences("x" * 30, SentencesConfig(enabled=False, max_chars=10)) == [
        ["x" * 10, "x" * 10, "x" * 10]
    ]


def test_config_errors():
    assert SentencesConfig().errors() == []
    problems = SentencesConfig(min_chars=-1, max_chars=0).errors()
    assert len(problems) == 2
    assert "min_chars" in problems[0] and "max_chars" in problems[1]
    assert SentencesConfig(min_chars=10, max_chars=5).errors() == [
        "max_chars (5) must be >= min_chars (10)"
    ]
    with pytest.raises(AttributeError):
        SentencesConfig().min_chars = 3  # type: ignore[misc]  # frozen
