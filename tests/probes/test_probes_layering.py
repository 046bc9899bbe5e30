"""probes/ imports nothing else of the project (the import-linter contract, checked here too)."""

from __future__ import annotations

import ast
from pathlib import Path

import probes

PROJECT = {"gtm", "failover", "policies", "chaos"}


def test_probes_imports_nothing_of_the_project() -> None:
    offenders: list[str] = []
    for path in Path(probes.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in PROJECT]
    assert offenders == []


def test_public_api_is_named_in_init() -> None:
    for name in probes.__all__:
        assert getattr(probes, name) is not None
