"""What ``pip install winnow`` brings: every runtime dependency is one the installed package
imports. Each lands on every Dataflow worker (``--setup_file``), so one that only tests or
benchmarks use belongs in an extra (datasketch brought scipy, 113 MB)."""

import ast
import importlib.metadata
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("winnow", "pipeline", "filters", "schemas", "trainer")


def imported_top_level_modules() -> set[str]:
    modules = set()
    for folder in PACKAGE_FOLDERS:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
    return modules


def distribution_name(requirement: str) -> str:
    """``"apache-beam[gcp]>=2.77,<3; python_version < '3.11'"`` -> ``"apache-beam"``, in
    the normalized spelling (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()


def test_every_runtime_dependency_is_imported_by_the_package():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    to_distributions = importlib.metadata.packages_distributions()
    imported = {distribution_name(dist) for module in imported_top_level_modules()
                for dist in to_distributions.get(module, [])}
    unused = [requirement for requirement in project["dependencies"]
              if distribution_name(requirement) not in imported]
    assert unused == [], f"runtime dependencies the package never imports: {unused}"
    assert any(distribution_name(r) == "datasketch"
               for r in project["optional-dependencies"]["test"])


# The google modules schemas/storage.py may import, by the distribution that provides them.
GOOGLE_DISTRIBUTIONS = {"google.cloud": "google-cloud-storage",  # from google.cloud import storage
                        "google.auth": "google-auth", "google.api_core": "google-api-core"}


def test_the_gcs_extra_is_all_the_training_side_needs_for_gs_paths():
    """A training VM reads gs:// shards with ``pip install 'winnow[train,gcs]'``: google-cloud-
    storage and what it requires, not the 85 packages of Beam's gcp extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    gcs = {distribution_name(r) for r in project["optional-dependencies"]["gcs"]}
    assert gcs == {"google-cloud-storage"}
    provided = gcs | {distribution_name(r) for r in importlib.metadata.requires(
        "google-cloud-storage") if "extra ==" not in r}
    tree = ast.parse((REPO / "schemas" / "storage.py").read_text(encoding="utf-8"))
    google = {node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("google")}
    assert google, "schemas/storage.py no longer imports google-cloud-storage: update this test"
    for module in google:
        prefix = max((p for p in GOOGLE_DISTRIBUTIONS if module.startswith(p)), key=len,
                     default=None)
        assert prefix and GOOGLE_DISTRIBUTIONS[prefix] in provided, module
