"""domain.py stays pure; workflows.py does no I/O of its own."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[3] / "services" / "approvals"
FORBIDDEN_IN_DOMAIN = ("fastapi", "sqlalchemy", "kafka", "temporalio", "starlette", "psycopg")
FORBIDDEN_IN_WORKFLOW = ("sqlalchemy", "kafka", "psycopg", "httpx", "shared.db", "shared.outbox",
                         "services.approvals.store", "services.approvals.activities",
                         "datetime.datetime.now", "random", "time")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_domain_and_policy_import_no_framework():
    for module in ("domain.py", "policy.py"):
        bad = {m for m in imported_modules(SERVICE / module)
               if m.split(".")[0] in FORBIDDEN_IN_DOMAIN}
        assert not bad, module


def test_workflow_code_imports_no_io():
    modules = imported_modules(SERVICE / "workflows.py")
    assert not {m for m in modules if m in FORBIDDEN_IN_WORKFLOW or m.split(".")[0] in FORBIDDEN_IN_WORKFLOW}
    assert "temporalio" in {m.split(".")[0] for m in modules}
