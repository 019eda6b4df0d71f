"""Redaction of ids, file names and field values (filters.pii_names)."""

import pickle

from winnow.filters.pii import PiiConfig
from winnow.filters.pii_names import NameRedactor, split_format_suffix


def test_a_file_name_keeps_its_format_suffix():
    names = NameRedactor(PiiConfig())
    assert names.name("data/john.doe@example.com.jsonl.gz") == "data/<EMAIL>.jsonl.gz"
    assert names.name("gs://bucket/+1 415 555 2671.txt") == "gs://bucket/<PHONE>.txt"
    assert split_format_suffix("a@b.com.JSONL.zst") == ("a@b.com", ".JSONL.zst")


def test_an_address_after_a_slash_is_found_in_names():
    # The text rule reads "/<x@y>" as a message id; in an id or a URL field it is a name.
    names = NameRedactor(PiiConfig())
    assert names.name("users/jane.roe@example.org/posts/3") == "users/<EMAIL>/posts/3"
    assert names.name("plain/path/doc-17.rst.txt") == "plain/path/doc-17.rst.txt"


def test_an_address_the_suffix_split_would_hide_is_still_found():
    # "john@example" alone is no address; with the suffix it reads as one, and is taken.
    assert NameRedactor(PiiConfig()).name("john@example.jsonl") == "<EMAIL>"


def test_input_files_whose_names_coincide_are_numbered():
    files = ["in/b@y.org.jsonl", "in/a@x.org.jsonl", "in/<EMAIL>~2.jsonl", "in/plain.jsonl"]
    names = NameRedactor(PiiConfig(), files)
    assert [names.name(file) for file in sorted(files)] == [
        "in/<EMAIL>~2.jsonl", "in/<EMAIL>.jsonl", "in/<EMAIL>~3.jsonl", "in/plain.jsonl"]
    # Ids made from a file name ("<file>:<position>") name the file as input_file does.
    assert names.name("in/b@y.org.jsonl:12") == "in/<EMAIL>~3.jsonl:12"


def test_field_values_are_redacted_at_any_depth_and_keys_stay():
    names = NameRedactor(PiiConfig())
    fields = {"author": "mary@example.net", "meta": {"phones": ["+44 20 7946 0958", 7]},
              "jane@example.org": None}
    assert names.leaves(fields) == {"author": "<EMAIL>", "meta": {"phones": ["<PHONE>", 7]},
                                    "jane@example.org": None}
    clean = {"license": "MIT", "tags": ["a", 1]}
    assert names.leaves(clean) is clean


def test_only_the_configured_types_are_redacted():
    names = NameRedactor(PiiConfig(types=("PHONE",)))
    assert names.name("jane@example.org +44 20 7946 0958") == "jane@example.org <PHONE>"


def test_a_quarantine_message_names_the_file_as_input_file_does():
    names = NameRedactor(PiiConfig(), ["in/a@x.org.jsonl", "in/b@y.org.jsonl"])
    message = "[Errno 21] Is a directory: 'in/b@y.org.jsonl'"
    assert names.message(message, "in/b@y.org.jsonl") == (
        "[Errno 21] Is a directory: 'in/<EMAIL>~2.jsonl'")


def test_it_travels_to_workers_without_its_cache():
    names = NameRedactor(PiiConfig(), ["in/a@x.org.jsonl"])
    names.name("jane@example.org")
    copy = pickle.loads(pickle.dumps(names))
    assert copy._cache == {} and copy.name("in/a@x.org.jsonl:3") == "in/<EMAIL>.jsonl:3"
