"""The layering rules, checked on every module rather than on a few: filters/ never imports
Beam, torch, pipeline/ or trainer/; schemas/ (the formats curation and training share) imports
no other package of the project, nor Beam or torch; trainer/ never imports Beam or pipeline/."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "filters": {"apache_beam", "torch", "pipeline", "trainer"},
    "schemas": {"apache_beam", "torch", "filters", "pipeline", "trainer"},
    "trainer": {"apache_beam", "pipeline"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every import in the file, including those inside functions."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    return imported


@pytest.mark.parametrize("path", [path for package in FORBIDDEN
                                  for path in sorted((REPO / package).glob("*.py"))],
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_module_respects_the_layering(path):
    assert not imported_packages(path) & FORBIDDEN[path.parent.name]
