"""The layering rules, checked on every module rather than on a few. Each folder is a package
under the one import name `winnow` (pyproject.toml's package-dir):

- filters/ (winnow.filters) imports no Beam, torch, pipeline or trainer;
- schemas/ (winnow.schemas), the formats curation and training share, imports no other package
  of the project, nor Beam or torch;
- trainer/ (winnow.trainer) imports no Beam and no pipeline;
- pipeline/ (winnow.pipeline) imports no trainer: winnow/cli.py joins the two sides;
- none of the four imports the front door (winnow/: cli.py, ablate.py), which drives them.

Nothing in the tree imports the folders by their bare names (`import pipeline`), which would
load a second copy of a module, or a user's own `pipeline` package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("filters", "schemas", "trainer", "pipeline")
FRONT_DOOR = {"winnow.cli", "winnow.ablate", "winnow.ablate_report"}
FORBIDDEN = {
    "filters": {"apache_beam", "torch", "winnow.pipeline", "winnow.trainer", *FRONT_DOOR},
    "schemas": {"apache_beam", "torch", "winnow.filters", "winnow.pipeline", "winnow.trainer",
                *FRONT_DOOR},
    "trainer": {"apache_beam", "winnow.pipeline", *FRONT_DOOR},
    "pipeline": {"winnow.trainer", "torch", *FRONT_DOOR},
}
PYTHON_FILES = sorted(path for path in REPO.rglob("*.py")
                      if not any(part.startswith(".") or part in ("build", "runs")
                                 for part in path.relative_to(REPO).parts))


def imported_modules(path: Path) -> set[str]:
    """Every module the file imports, including inside functions, as dotted names; `from a
    import b` counts as both `a` and `a.b` (b may be a module)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def breaks(module: str, forbidden: set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in forbidden)


@pytest.mark.parametrize("path", [path for folder in FOLDERS
                                  for path in sorted((REPO / folder).glob("*.py"))],
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_module_respects_the_layering(path):
    forbidden = FORBIDDEN[path.parent.name]
    assert sorted(m for m in imported_modules(path) if breaks(m, forbidden)) == []


def test_no_file_imports_a_folder_by_its_bare_name():
    bare = {path.relative_to(REPO).as_posix(): sorted(
                m for m in imported_modules(path) if m.split(".")[0] in FOLDERS)
            for path in PYTHON_FILES}
    assert {name: modules for name, modules in bare.items() if modules} == {}


def test_the_rules_cover_every_package():
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests", "winnow"}
    assert packages == set(FORBIDDEN)


def test_a_users_own_folders_of_the_same_names_are_never_imported(tmp_path):
    # A user's project with its own pipeline/, trainer/, ... packages, as the current folder.
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text(f"raise SystemExit('user {folder} ran')\n")
    printed = subprocess.run([sys.executable, "-m", "winnow", "curate", "--print-config"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert "near_dedup:" in printed.stdout
