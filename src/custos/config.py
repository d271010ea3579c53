"""Settings: environment variables (CUSTOS_*, DATABASE_URL, REDIS_URL), optionally a YAML file."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_SECRET_KEY = "custos-development-secret-key-change-me"
MIN_SECRET_KEY_LENGTH = 32

Environment = Literal["development", "test", "production"]

# The settings that hold rate limits in the `limits` notation.
RATE_LIMIT_SETTINGS = (
    "rate_limit_global",
    "rate_limit_per_ip",
    "rate_limit_per_user",
    "rate_limit_plan_starter",
    "rate_limit_plan_pro",
    "rate_limit_plan_enterprise",
    "login_rate_per_ip",
    "login_failures_per_account",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CUSTOS_", extra="ignore", frozen=True, populate_by_name=True
    )

    environment: Environment = "development"
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)

    database_url: str = Field(
        "sqlite+aiosqlite:///./custos.db",
        validation_alias=AliasChoices("DATABASE_URL", "CUSTOS_DATABASE_URL"),
    )
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "CUSTOS_REDIS_URL")
    )
    # On PostgreSQL, request and job sessions run as this role (no superuser, no BYPASSRLS),
    # so row-level security holds even when DATABASE_URL names a superuser.
    db_runtime_role: str = Field("custos_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    db_pool_size: int = Field(20, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)

    access_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    refresh_token_ttl_seconds: int = Field(30 * 86_400, ge=3600, le=365 * 86_400)
    jwt_issuer: str = "custos"
    jwt_audience: str = "custos-api"
    api_key_prefix: str = Field("cst_live_", pattern=r"^[a-z]{2,8}_([a-z]{2,8}_)?$")
    api_key_max_rotation_grace_seconds: int = Field(7 * 86_400, ge=0)

    # Verified credentials are cached per process; changes are broadcast over Redis so every
    # process drops its copy at once. Without a working broadcast the TTL falls back to
    # auth_cache_degraded_ttl_seconds, which bounds how stale a revoked credential can be.
    auth_cache_ttl_seconds: float = Field(60.0, gt=0, le=3600)
    auth_cache_degraded_ttl_seconds: float = Field(1.0, gt=0, le=60)
    auth_cache_max_entries: int = Field(100_000, ge=100)
    api_key_last_used_flush_seconds: float = Field(10.0, gt=0)

    login_rate_per_ip: str = "60/minute"
    login_failures_per_account: str = "10 per 15 minutes"

    # Traffic control. Limits use the `limits` notation ("100/minute", "1000 per hour");
    # several are separated by ";". An empty string means no limit of that kind.
    rate_limits_enabled: bool = True
    # Redis unreachable: serve on, counting per process in memory (fail-open), or refuse
    # with 503 until it returns (fail-closed).
    rate_limit_fail_open: bool = True
    rate_limit_global: str = "10000/minute"
    rate_limit_per_ip: str = "100/minute"
    rate_limit_per_user: str = "1000/hour"
    rate_limit_plan_starter: str = "600/minute;20000/hour"
    rate_limit_plan_pro: str = "3000/minute;150000/hour"
    rate_limit_plan_enterprise: str = "15000/minute"

    usage_metering_enabled: bool = True
    usage_flush_seconds: float = Field(5.0, gt=0, le=300)
    usage_buffer_max_rows: int = Field(200_000, ge=1000)
    usage_raw_retention_days: int = Field(14, ge=1, le=366)
    usage_daily_retention_days: int = Field(400, ge=7, le=3660)

    cache_enabled: bool = True
    cache_customer_ttl_seconds: int = Field(600, ge=1, le=86_400)
    cache_list_ttl_seconds: int = Field(300, ge=1, le=86_400)
    cache_memory_max_entries: int = Field(10_000, ge=100)

    # "fast" trades argon2 cost for speed; only the test suite should use it.
    password_hash_profile: Literal["default", "fast"] = "default"

    max_body_bytes: int = Field(1_048_576, ge=1024)
    # NoDecode: a comma-separated env value, not JSON (see _split_csv).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Run background jobs inside the API process. Unset: yes on SQLite (the embedded
    # default), no on PostgreSQL, where `custos worker` processes run them.
    jobs_in_process: bool | None = None

    # Bulk import and export (custos.bulk): files land in this directory (the object-storage
    # backend is configured separately); uploads above the size or row limits are refused.
    bulk_storage_dir: str = "./custos-files"
    bulk_max_upload_bytes: int = Field(100 * 1_048_576, ge=1024)
    bulk_max_rows: int = Field(1_000_000, ge=1)
    # An XLSX is a zip: its parts may expand to at most this much, at most 100x each.
    bulk_max_uncompressed_bytes: int = Field(1_073_741_824, ge=1024)
    bulk_chunk_rows: int = Field(5000, ge=1, le=100_000)
    # A worker renews its lease on an operation with every chunk; one it stopped renewing
    # (killed) is taken over when the lease runs out.
    bulk_lease_seconds: float = Field(60.0, gt=0, le=3600)
    # Feedback: uploads handled within the request, and duplicate detection.
    feedback_upload_max_rows: int = Field(10_000, ge=1, le=1_000_000)
    feedback_duplicate_window_hours: int = Field(168, ge=0, le=24 * 365)
    feedback_near_duplicate_threshold: float = Field(0.7, gt=0, le=1)
    # Helper processes each API or worker process shares CPU-heavy pure work with
    # (feedback sentiment and fingerprints, kit/cpupool.py); 0 does it all in the process.
    cpu_workers: int = Field(1, ge=0, le=32)
    # Days between an erasure being requested and carried out, unless the tenant's
    # `privacy.erasure_grace_days` says otherwise; it can be cancelled until then.
    privacy_erasure_grace_days: int = Field(30, ge=0, le=365)
    # Background job workers (procrastinate). A worker that has not sent a heartbeat for
    # worker_stalled_after_seconds is taken for dead (kill -9, lost host) and the jobs it was
    # running are queued again, so keep it well above the heartbeat interval.
    worker_concurrency: int = Field(16, ge=1, le=200)
    worker_heartbeat_seconds: float = Field(5.0, gt=0, le=300)
    worker_stalled_after_seconds: float = Field(30.0, gt=0, le=86_400)
    worker_failed_job_retention_days: int = Field(30, ge=1, le=3650)
    # PostgreSQL: how often an idle worker looks for committed events to dispatch (the
    # event outbox); what it finds becomes jobs at once, and a full batch is followed at
    # once by the next.
    worker_event_poll_seconds: float = Field(0.05, gt=0, le=10)

    # Webhooks. Hosts (names, addresses, CIDRs) that deliveries may reach even though they
    # are private, loopback or link-local; empty by default, so only public addresses are.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(15.0, gt=0, le=120)
    # Delays between attempts, in seconds (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h): eight
    # attempts in all, over about 28 hours. Each delay gets +/- webhook_retry_jitter of itself.
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0, 36_000.0],
        min_length=1,
        max_length=20,
    )
    webhook_retry_jitter: float = Field(0.2, ge=0, le=0.5)
    webhook_disable_after_seconds: float = Field(5 * 86_400, gt=0)
    webhook_response_max_bytes: int = Field(4096, ge=0, le=65_536)
    webhook_max_endpoints_per_tenant: int = Field(100, ge=1, le=10_000)
    # Messages in flight from one worker process (sent and not yet recorded): in all, and to
    # any one receiving host. Each one in flight when a worker is killed is sent again; 2
    # per host sent as fast as 4 on the measured machine (docs/decisions/0065).
    webhook_send_concurrency: int = Field(256, ge=1, le=10_000)
    webhook_concurrency_per_host: int = Field(2, ge=1, le=1000)

    # Publishing every event to S3-compatible object storage: on when events_bucket is set.
    events_bucket: str | None = Field(None, min_length=3, max_length=63)
    events_prefix: str = Field("events", max_length=200, pattern=r"^[A-Za-z0-9!_.*'()/-]*$")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("webhook_allowed_hosts", "webhook_retry_schedule", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: list[str]) -> list[str]:
        from custos.kit.netpolicy import parse_allow_entry

        for entry in value:
            parse_allow_entry(entry)  # raises ValueError naming the bad entry
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 or delay > 7 * 86_400 for delay in value):
            raise ValueError("each retry delay is more than 0 and at most 7 days (in seconds)")
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(*RATE_LIMIT_SETTINGS)
    @classmethod
    def _valid_limits(cls, value: str) -> str:
        from limits import parse_many

        if value.strip():
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit such as '100/minute' or '10/second;1000/hour'"
                ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        # Accept the plain URLs operators paste from elsewhere and pick our async drivers.
        for plain, ours in (
            ("postgres://", "postgresql+psycopg://"),
            ("postgresql://", "postgresql+psycopg://"),
            ("sqlite:///", "sqlite+aiosqlite:///"),
        ):
            if value.startswith(plain):
                return ours + value[len(plain) :]
        return value

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_development(self) -> Settings:
        if self.environment != "development":
            secret = self.secret_key.get_secret_value()
            if secret == DEFAULT_SECRET_KEY or len(secret) < MIN_SECRET_KEY_LENGTH:
                raise ValueError(
                    "CUSTOS_SECRET_KEY must be set to a random value of at least "
                    f"{MIN_SECRET_KEY_LENGTH} characters outside development "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
        return self

    @property
    def deployment_id(self) -> str:
        """Names this deployment (secret and database) in a shared Redis: deployments or
        test runs sharing a Redis server never see each other's keys or channels."""
        seed = f"{self.secret_key.get_secret_value()}|{self.database_url}".encode()
        return hashlib.sha256(seed).hexdigest()[:16]

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def publishes_events(self) -> bool:
        return self.events_bucket is not None

    @property
    def runs_jobs_in_process(self) -> bool:
        return (not self.is_postgres) if self.jobs_in_process is None else self.jobs_in_process

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 (no .env files)
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CUSTOS_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ValueError(f"CUSTOS_CONFIG names {config_file!r}, which is not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)


@lru_cache
def get_settings() -> Settings:
    return Settings()
