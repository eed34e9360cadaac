"""The engine and everything it needs stay pure: no web, ORM, broker or workflow imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MATCHING = Path(__file__).resolve().parents[3] / "services" / "matching"
FORBIDDEN = {"fastapi", "sqlalchemy", "kafka", "temporalio", "starlette", "psycopg", "httpx",
             "shared"}


@pytest.mark.parametrize("module", ["domain.py", "engine.py", "policy.py", "simulate.py"])
def test_pure_modules_import_no_infrastructure(module):
    tree = ast.parse((MATCHING / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, imported & FORBIDDEN
