"""The production deployment's structure: docker-compose.yml, deploy/Dockerfile, the Prometheus
scrape configuration and the Grafana provisioning, checked without Docker (issue 7 item 6)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import SERVICE_PORTS, Settings
from shared.topics import ALL as TOPICS
from tests.unit.deploy.compose import (
    DASHBOARD,
    ROOT,
    SECRETS,
    MissingVariable,
    command_argv,
    dockerfile_instructions,
    interpolate,
    load_compose,
    published_ports,
)

P2P_SERVICES = tuple(SERVICE_PORTS)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _dockerfile(instruction: str) -> list[str]:
    return [args for word, args in dockerfile_instructions() if word == instruction]


def _exposed_port() -> int:
    (exposed,) = _dockerfile("EXPOSE")
    return int(exposed.split("/")[0])


# -- images --------------------------------------------------------------------------------------

def test_every_image_is_pinned_to_an_explicit_version(services):
    assert services, "docker-compose.yml defines services"
    for name, svc in services.items():
        assert "image" in svc, f"{name} has no image (built services are tagged too)"
        image = svc["image"]
        repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not a version"
        assert "@" not in repo or tag, name
    (base,) = _dockerfile("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), f"base image not pinned: {base}"


def test_third_party_images_are_the_official_ones(services):
    expected = {"kafka": "apache/kafka", "kafka-init-topics": "apache/kafka",
                "postgres": "postgres", "temporal": "temporalio/auto-setup",
                "temporal-ui": "temporalio/ui", "prometheus": "prom/prometheus",
                "grafana": "grafana/grafana"}
    for name, repo in expected.items():
        assert services[name]["image"].rpartition(":")[0] == repo, name


# -- secrets -------------------------------------------------------------------------------------

def test_secrets_are_required_variables_not_literals():
    for missing in SECRETS:
        env = {k: v for k, v in SECRETS.items() if k != missing}
        with pytest.raises(MissingVariable, match=missing):
            load_compose(env)
    text = (ROOT / "docker-compose.yml").read_text()
    assert "p2p-dev-secret" not in text


def test_services_run_in_production_mode_with_the_given_secret(services):
    for name in P2P_SERVICES:
        env = _env(services[name])
        assert env["P2P_ENV"] == "production", name
        assert env["P2P_JWT_SECRET"] == SECRETS["P2P_JWT_SECRET"], name


def test_interpolation_follows_compose_rules():
    assert interpolate("a${X:-d}b$${Y}", {}) == "adb${Y}"
    assert interpolate("${X:-d}", {"X": "v"}) == "v"
    with pytest.raises(MissingVariable, match="X: needed"):
        interpolate("${X:?needed}", {"X": ""})


# -- the four services ---------------------------------------------------------------------------

def test_the_four_services_share_one_image_built_from_deploy_dockerfile(services):
    images = set()
    for name in P2P_SERVICES:
        svc = services[name]
        build = svc["build"]
        assert Path(build["context"]) == Path("."), name
        assert build["dockerfile"] == "deploy/Dockerfile", name
        images.add(svc["image"])
        argv = command_argv(svc["command"])
        assert argv[0] == name, f"{name} runs `p2p serve {argv[0]}`"
    assert len(images) == 1, images
    assert {n for n, s in services.items() if "build" in s} == set(P2P_SERVICES)


def test_services_point_at_compose_hostnames(services):
    kafka_env = _env(services["kafka"])
    internal = [l for l in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
                if urlsplit(l).hostname == "kafka"]
    assert internal, "Kafka advertises a listener on the compose network"
    for name in P2P_SERVICES:
        env = _env(services[name])
        db = urlsplit(env["P2P_DATABASE_URL"])
        assert db.scheme.startswith("postgresql"), name
        assert db.hostname == "postgres" and db.hostname in services, name
        assert db.port == 5432 and db.username == "p2p" and db.password == SECRETS["P2P_DB_PASSWORD"]
        host, _, port = env["P2P_KAFKA_BOOTSTRAP"].rpartition(":")
        assert host == "kafka" and f"kafka:{port}" in internal[0], name
        host, _, port = env["P2P_TEMPORAL_ADDRESS"].rpartition(":")
        assert (host, port) == ("temporal", "7233"), name
        assert env["P2P_HOST"] == "0.0.0.0", name
        assert int(env["P2P_TOPIC_PARTITIONS"]) == 6, name


def test_service_ports_are_published_on_the_dev_ports(services):
    container_port = _exposed_port()
    for name, port in SERVICE_PORTS.items():
        svc = services[name]
        assert published_ports(svc) == {port: container_port}, name
        argv = command_argv(svc["command"])
        if "--port" in argv:
            assert int(argv[argv.index("--port") + 1]) == container_port, name


def test_infrastructure_ports_are_published(services):
    assert published_ports(services["kafka"]).get(9092) == 9092
    assert published_ports(services["temporal"]).get(7233) == 7233
    assert published_ports(services["temporal-ui"]).get(8233) == 8080
    every = {p for svc in services.values() for p in published_ports(svc)}
    assert {8001, 8002, 8003, 8004, 9092, 7233, 8233} <= every


def test_startup_order_waits_for_healthy_dependencies(services):
    for name in P2P_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["kafka"]["condition"] == "service_healthy", name
        assert deps["kafka-init-topics"]["condition"] == "service_completed_successfully", name
    assert services["approvals"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert services["temporal"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["temporal-ui"]["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert services["kafka-init-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_every_awaited_dependency_has_a_healthcheck(services):
    dockerfile_has_one = bool(_dockerfile("HEALTHCHECK"))
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if spec.get("condition") == "service_healthy":
                target = services[dep]
                has = "healthcheck" in target or ("build" in target and dockerfile_has_one)
                assert has, f"{name} waits for {dep} to be healthy, but it has no healthcheck"
    for name in ("postgres", "kafka", "temporal"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "temporal" in services["temporal"]["healthcheck"]["test"][1]


# -- Kafka ---------------------------------------------------------------------------------------

def test_kafka_runs_in_kraft_mode_as_combined_broker_and_controller(services):
    env = _env(services["kafka"])
    assert not any("ZOOKEEPER" in k for k in env)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    (voter,) = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    vid, _, address = voter.partition("@")
    assert vid == node_id
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = {l.split("://")[0]: l.split(":")[-1] for l in env["KAFKA_LISTENERS"].split(",")}
    assert address == f"kafka:{listeners[controller]}"
    protocol_map = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocol_map)
    advertised = {l.split("://")[0] for l in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert controller not in advertised and advertised <= set(listeners)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert len(env["CLUSTER_ID"]) == 22
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert published_ports(services["kafka"]) == {9092: int(listeners["EXTERNAL"])}


def test_topic_init_creates_every_topic_and_its_dead_letter_topic(services):
    init = services["kafka-init-topics"]
    assert init["image"] == services["kafka"]["image"]
    assert init.get("restart") == "no"
    script = " ".join(command_argv(init["entrypoint"]) + command_argv(init["command"]))
    assert "kafka-topics.sh" in script and "--if-not-exists" in script
    for topic in TOPICS:
        assert topic in script, topic
    assert '"$topic.dlq" --partitions 1' in script
    assert '--partitions "$PARTITIONS"' in script
    assert _env(init)["PARTITIONS"] == "6"


# -- PostgreSQL and Temporal ---------------------------------------------------------------------

def test_temporal_uses_postgresql_persistence_on_databases_the_init_script_creates(services):
    env = _env(services["temporal"])
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgres" and env["DB_PORT"] == "5432"
    assert env["POSTGRES_PWD"] == SECRETS["TEMPORAL_DB_PASSWORD"]
    assert env["SKIP_DB_CREATE"] == "true"
    pg = services["postgres"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in pg["volumes"]}
    init_dir = ROOT / mounts["/docker-entrypoint-initdb.d"]
    script = "\n".join(p.read_text() for p in sorted(init_dir.glob("*.sh")))
    assert f"CREATE ROLE {env['POSTGRES_USER']} LOGIN" in script
    for db in (env["DBNAME"], env["VISIBILITY_DBNAME"]):
        assert f"CREATE DATABASE {db} OWNER {env['POSTGRES_USER']}" in script
    assert "CREATE ROLE p2p LOGIN CREATEDB" in script
    pg_env = _env(pg)
    assert pg_env["P2P_DB_PASSWORD"] == SECRETS["P2P_DB_PASSWORD"]
    assert pg_env["TEMPORAL_DB_PASSWORD"] == SECRETS["TEMPORAL_DB_PASSWORD"]
    ui = _env(services["temporal-ui"])
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    # The namespace the services use exists: auto-setup registers it, the healthcheck waits for it.
    namespace = Settings.model_fields["temporal_namespace"].default
    assert "P2P_TEMPORAL_NAMESPACE" not in _env(services["approvals"])
    assert env["DEFAULT_NAMESPACE"] == namespace
    assert services["temporal"]["healthcheck"]["test"][-1] == namespace


# -- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_runs_the_service_as_a_non_root_user():
    instructions = dockerfile_instructions()
    users = [args for word, args in instructions if word == "USER"]
    assert users, "the Dockerfile sets USER"
    final = users[-1].split(":")[0]
    assert final not in ("root", "0"), final
    last_user = max(i for i, (w, _) in enumerate(instructions) if w == "USER")
    last_run = max(i for i, (w, _) in enumerate(instructions) if w == "RUN")
    assert last_user > last_run, "nothing runs as root after USER"
    (entrypoint,) = _dockerfile("ENTRYPOINT")
    assert json.loads(entrypoint) == ["p2p", "serve"]


def test_dockerfile_healthcheck_probes_healthz_on_the_exposed_port():
    (check,) = _dockerfile("HEALTHCHECK")
    assert "CMD" in check
    assert f"127.0.0.1:{_exposed_port()}/healthz" in check


def test_dockerfile_installs_no_dev_or_embedded_extras():
    runs = " ".join(_dockerfile("RUN"))
    assert "[dev]" not in runs and "[embedded]" not in runs and "embedded" not in runs
    assert "pip install" in runs
    env = " ".join(_dockerfile("ENV"))
    assert "P2P_ENV=production" in env


def test_dockerignore_keeps_the_build_context_to_the_code():
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
             if l.strip() and not l.startswith("#")]
    assert lines[0] == "**", "everything is excluded unless re-included"
    included = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert included <= {"pyproject.toml", "README.md", "shared", "services", "deploy/*.yaml"}
    copied = " ".join(_dockerfile("COPY"))
    for path in ("pyproject.toml", "shared", "services"):
        assert path in copied and path in included


# -- Prometheus ----------------------------------------------------------------------------------

def _scrape_targets(path: Path) -> dict[str, list[str]]:
    config = yaml.safe_load(path.read_text())
    return {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
            for job in config["scrape_configs"]}


def test_prometheus_mounts_the_scrape_config_that_covers_the_four_services(services):
    prom = services["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prom["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    targets = _scrape_targets(ROOT / "deploy" / "prometheus.yml")
    port = _exposed_port()
    for name in P2P_SERVICES:
        assert targets[name] == [f"{name}:{port}"], name
        assert name in services


def test_local_scrape_config_matches_the_compose_one_for_p2p_up():
    compose_cfg = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    local_cfg = yaml.safe_load((ROOT / "deploy" / "prometheus.local.yml").read_text())
    assert local_cfg["global"] == compose_cfg["global"]
    local = _scrape_targets(ROOT / "deploy" / "prometheus.local.yml")
    assert set(local) == set(_scrape_targets(ROOT / "deploy" / "prometheus.yml"))
    for name, port in SERVICE_PORTS.items():
        assert local[name] == [f"127.0.0.1:{port}"], name


# -- Grafana -------------------------------------------------------------------------------------

def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard(services):
    grafana = services["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    datasources = [yaml.safe_load(p.read_text())
                   for p in (provisioning / "datasources").glob("*.yaml")]
    (ds,) = [d for f in datasources for d in f["datasources"]]
    assert ds["type"] == "prometheus" and ds["isDefault"] is True
    url = urlsplit(ds["url"])
    assert url.hostname in services and services[url.hostname]["image"].startswith("prom/")
    providers = [p for f in (provisioning / "dashboards").glob("*.yaml")
                 for p in yaml.safe_load(f.read_text())["providers"]]
    (provider,) = providers
    dashboards_dir = provider["options"]["path"]
    assert ROOT / mounts[dashboards_dir] == DASHBOARD.parent
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    uids |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {ds["uid"]}
    home = _env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
    assert _env(grafana)["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]


def test_postgres_runs_with_the_embedded_servers_settings_and_room_for_every_pool(services):
    from shared.devstack import SERVER_SETTINGS
    from shared.settings import Settings

    command = services["postgres"]["command"]
    assert command[0] == "postgres"
    flags = dict(arg.split("=", 1) for arg in command[2::2])
    assert command[1::2] == ["-c"] * len(flags)
    assert flags == SERVER_SETTINGS
    per_service = Settings().db_pool_size + Settings().db_max_overflow
    # The four services at their peak, with room left for Temporal's pools and an operator.
    assert int(flags["max_connections"]) >= 4 * per_service + 100
