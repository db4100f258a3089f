"""Packaging and CI files a newcomer or CI machine depends on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_license_is_an_spdx_expression() -> None:
    # The `license = { text = ... }` table is deprecated (setuptools warns on
    # every build); PEP 639 wants the SPDX string, which setuptools reads from 77.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    requires = project["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(7[7-9]|[89]\d)(\.\d+)*", r) for r in requires), requires


def test_ci_exports_ci_so_a_missing_server_fails() -> None:
    # tests/servers.py skips a test whose server is missing unless CI is set.
    script = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export CI=1$", script, re.M)
    assert script.index("export CI=1") < script.index("make test")
