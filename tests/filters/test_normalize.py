"""Tests for filters.normalize: exact output text of each normalization step."""

from __future__ import annotations

import dataclasses

import pytest

from winnow.filters.normalize import NormalizeConfig, check_not_empty, normalize_text

DEFAULT = NormalizeConfig()


@pytest.mark.parametrize(("raw", "clean"), [
    ("line one   \nline two\t\t\nlast \t ", "line one\nline two\nlast"),
    ("a\r\nb\rc", "a\nb\nc"),
    ("a\n\n\n\n\nb\n\n\nc\n\nd", "a\n\nb\n\nc\n\nd"),
    ("a \n \n\t\n b", "a\n\n b"),  # blank lines with spaces are blank; indentation stays
    ("    indented   code\n\tx = 1", "indented   code\n\tx = 1"),  # only the text's own ends strip
    ("nul\x00 bell\x07 esc\x1b c1\x85 tab\tok", "nul bell esc c1 tab\tok"),
    ("non\u00a0breaking\u2009thin\u3000ideographic", "non breaking thin ideographic"),
    ("cafe\u0301", "caf\u00e9"),  # NFC composes
    ("caf\u00c3\u00a9 cr\u00c3\u00a8me", "caf\u00e9 cr\u00e8me"),  # mojibake repaired
    ("\u201ccurly\u201d and \ufb01 stay", "\u201ccurly\u201d and \ufb01 stay"),
])
def test_normalize_text_defaults(raw, clean):
    assert normalize_text(raw, DEFAULT) == clean


def test_inner_space_runs_collapse_only_when_asked():
    text = "a    b\n    c  d"
    assert normalize_text(text, DEFAULT) == "a    b\n    c  d"
    collapsed = dataclasses.replace(DEFAULT, collapse_inner_spaces=True)
    assert normalize_text(text, collapsed) == "a b\n    c d"


def test_steps_can_be_switched_off():
    raw = "caf\u00c3\u00a9  \n\n\n\x00x"
    off = NormalizeConfig(fix_mojibake=False, unicode_form="none", remove_control_chars=False,
                          normalize_whitespace=False)
    assert normalize_text(raw, off) == raw


def test_whitespace_only_text_is_empty():
    assert normalize_text(" \n\t\u00a0\n", DEFAULT) == ""
    assert check_not_empty("") == "empty"
    assert check_not_empty("x") is None
