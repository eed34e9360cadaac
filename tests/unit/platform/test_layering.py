"""Domain modules stay pure: no web, ORM, broker or workflow imports (style guide)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[3] / "services"
FORBIDDEN = ("fastapi", "sqlalchemy", "kafka", "temporalio", "starlette", "psycopg", "httpx")


def _domain_files() -> list[Path]:
    files = list(SERVICES.glob("*/domain.py")) + list(SERVICES.glob("*/domain/*.py"))
    return sorted(files)


def test_domain_imports_no_infrastructure():
    files = _domain_files()
    assert files, "every service has a domain module"
    offenders = {}
    for path in files:
        tree = ast.parse(path.read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        bad = imported.intersection(FORBIDDEN)
        if bad:
            offenders[str(path.relative_to(SERVICES))] = sorted(bad)
    assert not offenders, f"domain modules importing infrastructure: {offenders}"
