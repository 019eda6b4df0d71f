"""The README is part of the product: its config reference and commands must match the code."""

import re
from pathlib import Path

import pytest

from winnow.pipeline.config import config_reference

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def readme_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker}:start -->\n(.*)<!-- {marker}:end -->", README, re.S)
    assert match, f"README lost its {marker} markers"
    return match.group(1).strip()


def test_config_reference_matches_the_code():
    assert readme_block("config-reference") == config_reference().strip(), (
        "README's config reference is stale: regenerate it with\n"
        "python -c 'from pipeline.config import config_reference; print(config_reference())'")


def test_training_config_reference_matches_the_code():
    pytest.importorskip("torch")
    from winnow.trainer.config import config_reference as train_config_reference

    assert readme_block("train-config-reference") == train_config_reference().strip(), (
        "README's training config reference is stale: regenerate it with\n"
        "python -c 'from trainer.config import config_reference; print(config_reference())'")


def test_readme_shows_the_two_setup_commands_that_ci_runs():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    test_command = ci.strip().splitlines()[-1]
    assert test_command in README
    assert "winnow curate examples/sample --output" in README


def test_the_test_command_installs_what_the_trainer_tests_need():
    # Without the train extra (torch) the trainer's test modules are skipped whole: a fresh
    # user saw "6 skipped" hiding the trainer's tests.
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    extras = re.search(r"pip install -e '\.\[([a-z,]+)\]'", ci.strip().splitlines()[-1])
    assert extras and {"test", "train"} <= set(extras.group(1).split(","))
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in README
