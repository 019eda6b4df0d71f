"""CI lints the tree as a developer would: ruff on everything, mypy on schemas/ and filters/
(the settings are in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_ruff_finds_nothing():
    result = run("ruff", "check", ".", "--exclude", ".venv*")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_schemas_and_filters(tmp_path):
    result = run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert result.returncode == 0, result.stdout + result.stderr
