"""The project's packaging metadata, in the form current setuptools reads without a
deprecation warning (a fresh install printed four screens of them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_license_is_an_spdx_expression_and_setuptools_is_new_enough_to_read_it() -> None:
    document = tomllib.loads(PYPROJECT.read_text())
    assert isinstance(document["project"]["license"], str)  # a table is deprecated
    (requirement,) = [r for r in document["build-system"]["requires"] if "setuptools" in r]
    found = re.fullmatch(r"setuptools>=(\d+)", requirement)
    assert found and int(found[1]) >= 77  # the first that reads an SPDX string
