from winnow.filters.base import Drop
from winnow.filters.boilerplate import (
    BoilerplateConfig,
    boilerplate_candidate_keys,
    fragment_verdict,
    line_key,
    remove_lines,
)

FOOTER = "Copyright the example project authors, all rights reserved."


def test_only_long_lines_are_candidates_and_whitespace_does_not_matter():
    text = f"Example:\n  {FOOTER}  \nshort line\n{FOOTER}"
    assert boilerplate_candidate_keys(text, 30) == {line_key(FOOTER)}
    assert line_key(f"\t{FOOTER} ") == line_key(FOOTER)


def test_remove_lines_keeps_short_lines_and_other_lines():
    text = f"Example:\n{FOOTER}\nThe body of the page stays exactly as it was written.\n{FOOTER}"
    assert remove_lines(text, {line_key(FOOTER)}, 30) == (
        "Example:\nThe body of the page stays exactly as it was written.")
    assert remove_lines(text, set(), 30) == text


def test_a_fragment_must_keep_the_words_the_document_passed_with():
    assert fragment_verdict("", 50) == Drop("only_boilerplate")
    assert fragment_verdict("  \n ", 1) == Drop("only_boilerplate")
    assert fragment_verdict("one two, three -- four.", 5) == Drop(
        "too_short_after_boilerplate", {"words": 4, "min": 5})
    assert fragment_verdict("one two, three -- four.", 4) is None


def test_config_errors():
    assert BoilerplateConfig().errors() == []
    assert BoilerplateConfig(min_documents=1, min_chars=0).errors() == [
        "min_documents must be at least 2, got 1", "min_chars must be at least 1, got 0"]
