from __future__ import annotations

from pathlib import Path

import pytest

from custos.config import DEFAULT_SECRET_KEY, Settings


class TestSettings:
    @pytest.mark.parametrize("environment", ["production", "test"])
    def test_outside_development_a_default_or_short_secret_is_refused(
        self, environment: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("CUSTOS_SECRET_KEY", raising=False)
        with pytest.raises(ValueError, match="CUSTOS_SECRET_KEY"):
            Settings(environment=environment)
        with pytest.raises(ValueError, match="CUSTOS_SECRET_KEY"):
            Settings(environment=environment, secret_key="short-secret")
        Settings(environment=environment, secret_key="s" * 40)

    def test_development_accepts_the_default_secret(self) -> None:
        settings = Settings(environment="development")
        assert settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY

    def test_environment_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/custos")
        monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
        monkeypatch.setenv("CUSTOS_CORS_ORIGINS", "https://a.example, https://b.example")
        monkeypatch.setenv("CUSTOS_ACCESS_TOKEN_TTL_SECONDS", "600")
        settings = Settings()
        assert settings.database_url == "postgresql+psycopg://u:p@db:5432/custos"
        assert settings.is_postgres
        assert settings.redis_url == "redis://cache:6379/1"
        assert settings.cors_origins == ["https://a.example", "https://b.example"]
        assert settings.access_token_ttl_seconds == 600

    def test_a_yaml_file_fills_in_below_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config = tmp_path / "custos.yaml"
        config.write_text("access_token_ttl_seconds: 300\nlog_level: DEBUG\n")
        monkeypatch.setenv("CUSTOS_CONFIG", str(config))
        monkeypatch.setenv("CUSTOS_LOG_LEVEL", "ERROR")
        settings = Settings()
        assert settings.access_token_ttl_seconds == 300
        assert settings.log_level == "ERROR"

    def test_a_missing_config_file_is_a_clear_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CUSTOS_CONFIG", str(tmp_path / "nope.yaml"))
        with pytest.raises(ValueError, match="not a file"):
            Settings()

    def test_out_of_range_values_are_refused(self) -> None:
        with pytest.raises(ValueError, match="access_token_ttl_seconds"):
            Settings(access_token_ttl_seconds=5)
        with pytest.raises(ValueError, match="db_runtime_role"):
            Settings(db_runtime_role='x"; DROP ROLE postgres; --')


class TestEventSettings:
    def test_lists_come_comma_separated_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CUSTOS_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1, 10.20.0.0/16,hooks.internal")
        monkeypatch.setenv("CUSTOS_WEBHOOK_RETRY_SCHEDULE", "1,2.5,60")
        settings = Settings()
        assert settings.webhook_allowed_hosts == ["127.0.0.1", "10.20.0.0/16", "hooks.internal"]
        assert settings.webhook_retry_schedule == [1.0, 2.5, 60.0]
        assert not settings.publishes_events

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("CUSTOS_WEBHOOK_ALLOWED_HOSTS", "not a host!"),
            ("CUSTOS_WEBHOOK_ALLOWED_HOSTS", "10.0.0.0/33"),
            ("CUSTOS_WEBHOOK_RETRY_SCHEDULE", "5,0"),
            ("CUSTOS_WEBHOOK_RETRY_SCHEDULE", "5,999999999"),
            ("CUSTOS_EVENTS_PREFIX", "bad prefix with spaces"),
        ],
    )
    def test_a_bad_value_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, name: str, value: str
    ) -> None:
        monkeypatch.setenv(name, value)
        with pytest.raises(ValueError, match=name.removeprefix("CUSTOS_").lower()):
            Settings()

    def test_a_bucket_turns_publishing_on(self) -> None:
        assert Settings(events_bucket="custos-events").publishes_events
