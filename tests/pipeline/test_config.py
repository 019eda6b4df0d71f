import pytest
import yaml

from winnow.pipeline.config import (
    ConfigError,
    WinnowConfig,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    load_config,
)


def test_a_partial_config_keeps_every_other_default():
    config = config_from_dict({"language": {"languages": ["en", "de"], "threshold": 0.5}})
    assert config.language.languages == ("en", "de")
    assert config.language.threshold == 0.5
    assert config.heuristics == WinnowConfig().heuristics
    assert config.language.enabled is True


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        config_from_dict({
            "langauge": {},
            "language": {"threshold": 1.5, "languages": "en"},
            "normalize": {"enabled": "yes"},
            "heuristics": {"min_words": 2.5},
        })
    message = str(raised.value)
    for expected in ("langauge: unknown key", "language.languages: expected a list",
                     "normalize.enabled: expected bool", "heuristics.min_words: expected int",
                     "language.threshold must be between 0 and 1"):
        assert expected in message


def test_printed_config_loads_back_to_the_same_config(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text(config_to_yaml(WinnowConfig()))
    assert load_config(str(path)) == WinnowConfig()
    assert list(yaml.safe_load(path.read_text())) == [
        "input", "normalize", "heuristics", "language", "exact_dedup", "quality", "near_dedup",
        "boilerplate", "pii", "sentences", "tokenizer", "pairs", "shards", "output"]


def test_an_empty_file_means_defaults_and_a_list_is_refused(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(str(empty)) == WinnowConfig()
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(listed))


def test_ints_are_accepted_for_float_fields():
    assert config_from_dict({"language": {"threshold": 1}}).language.threshold == 1.0
    assert config_to_dict(WinnowConfig())["language"]["languages"] == ["en"]


def test_keys_that_moved_are_named_with_their_new_place():
    with pytest.raises(ConfigError) as error:
        config_from_dict({"exact_dedup": {"enabled": True, "boilerplate_lines": False,
                                          "boilerplate_min_chars": 40},
                          "pii": {"typo": 1}})
    assert error.value.problems == [
        "exact_dedup.boilerplate_lines: moved to boilerplate.enabled",
        "exact_dedup.boilerplate_min_chars: moved to boilerplate.min_chars",
        "pii.typo: unknown key (known: enabled, types, phone_regions, redact_private_ips)"]


def test_kept_and_renamed_fields_are_validated_before_the_run():
    config = config_from_dict({"input": {"keep_fields": ["license", "meta"],
                                         "rename_fields": {"meta": "crawl"}}})
    assert config.input.kept_field_names() == ["license", "crawl"]
    assert config_from_dict({}).input.keeps_all_fields
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"input": {"keep_fields": ["*", "text", "url", "url", "b", "c", "d"],
                                    "rename_fields": {"id": "doc", "a": "x", "url": "x",
                                                      "b": 3, "c": "d"}}})
    assert raised.value.problems == [
        'input.keep_fields: "*" keeps every field and stands alone',
        "input.keep_fields: names repeat in ['*', 'text', 'url', 'url', 'b', 'c', 'd']",
        "input.keep_fields: 'text' is the text field, stored in its own column",
        "input.rename_fields: 'id' is the id field, stored in its own column",
        "input.rename_fields: 'a' is not in keep_fields",
        "input.rename_fields: 'b': 3 must map a name to a non-empty name",
        "input.rename_fields: 'c' would replace the kept field 'd'",
        "input.rename_fields: two fields get the same name in ['doc', 'x', 'x', 3, 'd']",
    ]
