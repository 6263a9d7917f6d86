from __future__ import annotations

import os
from pathlib import Path

import pytest

from synapsenet.config import Environment, Settings, load_settings
from synapsenet.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SYNAPSENET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_no_configuration_gives_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == Path(".synapsenet")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / '.synapsenet/synapsenet.db'}"
    assert settings.resolved_object_store_url == (tmp_path / ".synapsenet/objects").as_uri()
    assert settings.event_bus == "memory"
    assert settings.cache_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.admin_key_path == Path(".synapsenet/admin.key")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAPSENET_EVENT_BUS", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("SYNAPSENET_PORT", "9001")
    monkeypatch.setenv("SYNAPSENET_OBJECT_STORE_URL", "s3://bucket/prefix")
    settings = load_settings()
    assert settings.event_bus == "redis://127.0.0.1:6379/0"
    assert settings.port == 9001
    assert settings.resolved_object_store_url == "s3://bucket/prefix"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SYNAPSENET_PORT=8123\n")
    assert load_settings().port == 8123


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SYNAPSENET_EVENT_BUS", "kafka://broker", "must be 'memory' or a redis:// URL"),
        ("SYNAPSENET_CACHE_URL", "memcached://x", "must be a redis:// URL"),
        ("SYNAPSENET_OBJECT_STORE_URL", "ftp://x/y", "must be a file:// or s3:// URL"),
        ("SYNAPSENET_OBJECT_STORE_URL", "s3:///prefix", "needs a bucket"),
        ("SYNAPSENET_DATABASE_URL", "mysql://x/y", "must be a sqlite:// or postgresql://"),
        ("SYNAPSENET_PORT", "70000", "less than or equal to 65535"),
        ("SYNAPSENET_ENVIRONMENT", "staging", "local"),
    ],
)
def test_bad_setting_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert info.value.setting == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("empty", ["", "none"])
def test_empty_cache_url_means_no_cache(monkeypatch: pytest.MonkeyPatch, empty: str) -> None:
    monkeypatch.setenv("SYNAPSENET_CACHE_URL", empty)
    assert load_settings().cache_url is None


def test_production_refuses_embedded_database() -> None:
    settings = Settings(_env_file=None, environment=Environment.PRODUCTION)
    with pytest.raises(ConfigurationError, match="SYNAPSENET_DATABASE_URL"):
        settings.check_safe()


def test_production_refuses_embedded_object_store() -> None:
    settings = Settings(
        _env_file=None,
        environment=Environment.PRODUCTION,
        database_url="postgresql://db/synapsenet",
    )
    with pytest.raises(ConfigurationError, match="SYNAPSENET_OBJECT_STORE_URL"):
        settings.check_safe()


def test_production_with_explicit_backends_is_accepted() -> None:
    settings = Settings(
        _env_file=None,
        environment=Environment.PRODUCTION,
        database_url="postgresql://db/synapsenet",
        object_store_url="s3://models/prod",
    )
    settings.check_safe()
    Settings(_env_file=None).check_safe()
