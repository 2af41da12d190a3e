"""Settings, read from QLEDGER_* environment variables (or a .env file) by the composition root."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QLEDGER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("var"), description="where the SQLite store, DuckDB and NATS data live"
    )
    nats_url: str | None = Field(None, description="use this NATS instead of starting one")
    nats_port: int = Field(0, description="port of the embedded nats-server; 0 picks a free one")
    eventstore_url: str | None = Field(
        None, description="postgresql://… ; default: SQLite in data_dir"
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    command_batch_max: int = Field(
        512, description="commands decided and saved per store transaction"
    )
    projection_batch_max: int = Field(2000, description="events applied per DuckDB transaction")
    read_wait_seconds: float = Field(5.0, description="longest wait for ?min_position before 503")
    log_level: str = "info"
    admin_username: str = Field("admin", description="the first admin, created on first start")
    admin_password: SecretStr | None = Field(
        None, description="its password; unset: generated, printed once, only its hash kept"
    )
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 key (>= 32 chars); unset: generated into data_dir/jwt.secret"
    )
    metrics_config: Path = Field(
        Path(__file__).parent / "metrics.yaml", description="metric titles, units, evaluation"
    )
    policy_config: Path = Field(
        Path(__file__).parent / "policy.yaml", description="policy rules on current versions"
    )
    timezone: str = Field(
        "UTC", description="IANA zone for YYYYMMDD dates and naive times when a query has no tz"
    )
    twin_config: Path = Field(
        Path(__file__).parent / "twin",
        description="the twin's shipped YAML files (backends.yaml, devices/, noise/, ...)",
    )
    twin_config_read_only: bool = Field(
        False, description="refuse PUT /api/v1/digital-twin/config/content with 501"
    )
    twin_job_budget_seconds: float = Field(
        30.0,
        gt=0,
        le=24 * 3600,
        description="a job whose estimated simulation time exceeds this is refused (422)",
    )
    twin_job_time_limit_seconds: float = Field(
        60.0, gt=0, le=24 * 3600, description="a running job is stopped (FAILED) after this"
    )
    twin_worker_memory_mb: int = Field(
        4096, ge=2048, le=1024 * 1024, description="address-space cap of the simulation worker"
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="larger HTTP bodies get 413"
    )
    forwarded_allow_ips: str = Field(
        "",
        description="proxies whose X-Forwarded-For is trusted (comma-separated IPs or CIDRs;"
        " '*' for any); none by default",
    )
    access_token_minutes: int = Field(30, ge=1, le=24 * 60)
    refresh_token_days: int = Field(7, ge=1, le=90)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name such as Asia/Tokyo)"
            ) from None
        return value

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "read.duckdb"

    @property
    def nats_store_dir(self) -> Path:
        return self.data_dir / "nats"
