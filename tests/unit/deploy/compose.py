"""Reading the deployment files the way Docker Compose and Prometheus would (no Docker needed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "p2p.json"

# Every secret the deployment requires (`${VAR:?message}` in docker-compose.yml).
SECRETS = {
    "P2P_JWT_SECRET": "jwt-secret-for-tests",
    "POSTGRES_PASSWORD": "postgres-password",
    "P2P_DB_PASSWORD": "p2p-password",
    "TEMPORAL_DB_PASSWORD": "temporal-password",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password",
}

_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(ValueError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${V}, ${V:-default}, ${V-default}, ${V:?err}, ${V?err}, $$."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op in (":-", ":?"):
            unset = not value
        else:
            unset = value is None
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return value or ""

    return _VAR.sub(sub, text)


def load_compose(env: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), SECRETS if env is None else env))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def published_ports(service: dict) -> dict[int, int]:
    """host port -> container port, from short ("[ip:]host:container[/proto]") or long syntax."""
    result = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result[int(entry["published"])] = int(entry["target"])
            continue
        parts = str(entry).split("/")[0].split(":")
        result[int(parts[-2])] = int(parts[-1])
    return result


def command_argv(value: str | list[str]) -> list[str]:
    return list(value) if isinstance(value, list) else shlex.split(value)
