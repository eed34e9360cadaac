"""One settings object for every process, read from `P2P_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "p2p-dev-secret-do-not-use-in-production"
REPO_ROOT = Path(__file__).resolve().parent.parent

SERVICE_PORTS = {"requisitions": 8001, "approvals": 8002, "invoices": 8003, "matching": 8004}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="P2P_", extra="ignore")

    env: str = "dev"
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_ttl_hours: int = 12

    # A server URL; each service uses its own database `p2p_<service>` on it.
    database_url: str | None = None
    # Threads running synchronous endpoints (anyio's default is 40; with the GIL, more than this
    # only queue inside the process). Connections are kept open for them, the consumers and the
    # relay, so that a busy service does not open and close connections per request.
    api_threads: int = 16
    db_pool_size: int = 24
    db_max_overflow: int = 8
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prefixes every topic and consumer group: lets tests share one broker without seeing
    # each other's events. Empty in every real deployment.
    topic_prefix: str = ""
    topic_partitions: int = 6
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "approvals"

    state_dir: Path = Path(".p2p")
    host: str = "127.0.0.1"
    requisitions_port: int = SERVICE_PORTS["requisitions"]
    approvals_port: int = SERVICE_PORTS["approvals"]
    invoices_port: int = SERVICE_PORTS["invoices"]
    matching_port: int = SERVICE_PORTS["matching"]
    kafka_port: int = 9092
    temporal_port: int = 7233
    temporal_ui_port: int = 8233

    max_body_bytes: int = 5 * 1024 * 1024
    approval_policy: Path = REPO_ROOT / "deploy" / "approval-policy.yaml"
    tolerances: Path = REPO_ROOT / "deploy" / "tolerances.yaml"
    over_receipt_pct: str = "0"

    relay_batch_size: int = 500
    relay_idle_seconds: float = 0.2
    consumer_max_attempts: int = 5
    consumer_batch_size: int = 100  # records settled in one transaction; 1 turns batching off
    consumer_retry_backoff_seconds: float = 0.2
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_dev(self) -> "Settings":
        if self.env != "dev" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise ValueError(
                "P2P_JWT_SECRET is the development default; set a real secret when P2P_ENV is "
                f"{self.env!r}"
            )
        return self

    def service_port(self, service: str) -> int:
        return getattr(self, f"{service}_port")

    def topic(self, logical: str) -> str:
        return f"{self.topic_prefix}{logical}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
