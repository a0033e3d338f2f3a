"""The project's packaging metadata: in the form current setuptools reads without a
deprecation warning (a fresh install printed four screens of them); every third-party
module our packages import declared; the license it names shipped."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("state", "reconciler", "deploys", "backups")


def imported_modules() -> set[str]:
    found: set[str] = set()
    for package in OURS:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in OURS}


def test_every_imported_library_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in project["dependencies"]
    }
    providers = metadata.packages_distributions()
    missing = {
        module: providers.get(module)
        for module in imported_modules()
        if not {d.lower().replace("_", "-") for d in providers.get(module, [])} & declared
    }
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_license_is_shipped() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_the_license_is_an_spdx_expression_and_setuptools_is_new_enough_to_read_it() -> None:
    document = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(document["project"]["license"], str)  # a table is deprecated
    (requirement,) = [r for r in document["build-system"]["requires"] if "setuptools" in r]
    found = re.fullmatch(r"setuptools>=(\d+)", requirement)
    assert found and int(found[1]) >= 77  # the first that reads an SPDX string
