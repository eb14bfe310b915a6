"""Settings fail at start-up with a message that names the offending variable."""

from __future__ import annotations

import pytest

from common.platform.config import ConfigError, EmbeddingProvider, Mode, load_settings


def test_defaults_run_offline_with_local_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_INFRA_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.mode is Mode.LOCAL
    assert settings.embedding_provider is EmbeddingProvider.LOCAL
    assert settings.resolved_embedding_dim == 384


def test_vertex_defaults_to_gemini_embedding_with_1536_dimensions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_INFRA_EMBEDDING_PROVIDER", "vertex")
    settings = load_settings()
    assert settings.resolved_embedding_model == "gemini-embedding-001"
    assert settings.resolved_embedding_dim == 1536


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"AI_INFRA_CHUNK_TOKENS": "many"}, "AI_INFRA_CHUNK_TOKENS"),
        ({"AI_INFRA_DB_POOL_SIZE": "0"}, "AI_INFRA_DB_POOL_SIZE"),
        ({"AI_INFRA_MODE": "staging"}, "AI_INFRA_MODE"),
        ({"AI_INFRA_EMBEDDING_PROVIDER": "openai"}, "AI_INFRA_EMBEDDING_PROVIDER"),
        ({"AI_INFRA_LOG_LEVEL": "LOUD"}, "AI_INFRA_LOG_LEVEL"),
        (
            {"AI_INFRA_DB_INSTANCE_CONNECTION_NAME": "not a name"},
            "AI_INFRA_DB_INSTANCE_CONNECTION_NAME",
        ),
        ({"AI_INFRA_EMBEDDING_MODEL": "my-model"}, "AI_INFRA_EMBEDDING_DIM"),
        ({"AI_INFRA_CHUNK_OVERLAP_TOKENS": "300"}, "AI_INFRA_CHUNK_OVERLAP_TOKENS"),
        ({"AI_INFRA_GENERATION_PROVIDER": "openai"}, "AI_INFRA_OPENAI_BASE_URL"),
    ],
)
def test_malformed_variable_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


@pytest.mark.parametrize(
    "missing", ["AI_INFRA_DB_INSTANCE_CONNECTION_NAME", "AI_INFRA_DB_IAM_USER"]
)
def test_cloud_mode_without_database_settings_fails_naming_the_missing_one(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv("AI_INFRA_DATABASE_URL", raising=False)
    monkeypatch.setenv("AI_INFRA_MODE", "cloud")
    monkeypatch.setenv("AI_INFRA_DB_INSTANCE_CONNECTION_NAME", "proj:us-central1:db")
    monkeypatch.setenv("AI_INFRA_DB_IAM_USER", "sa@proj.iam")
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError, match=missing):
        load_settings()


def test_cloud_mode_refuses_to_start_with_loopback_url_fetches_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AI_INFRA_MODE", "cloud")
    monkeypatch.setenv("AI_INFRA_DATABASE_URL", "postgresql+pg8000://u@h/db")
    monkeypatch.setenv("AI_INFRA_URL_FETCH_ALLOW_LOOPBACK", "true")
    with pytest.raises(ConfigError, match="AI_INFRA_URL_FETCH_ALLOW_LOOPBACK"):
        load_settings()
    monkeypatch.setenv("AI_INFRA_MODE", "local")
    assert load_settings().url_fetch_allow_loopback
