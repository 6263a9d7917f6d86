"""Settings: one validated object, read from ``SYNAPSENET_*`` environment variables.

No configuration at all gives a working single-process platform under ``./.synapsenet/``:
SQLite for state, a local directory for objects, the in-process event bus and no shared cache.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from synapsenet.env_vars import ENV_PREFIX
from synapsenet.errors import ConfigurationError

__all__ = ["ENV_PREFIX", "Environment", "Settings", "load_settings"]


class Environment(StrEnum):
    """Where the platform runs; ``production`` refuses unsafe embedded defaults."""

    LOCAL = "local"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All settings of a SynapseNet process.

    Every field is read from the environment variable ``SYNAPSENET_<FIELD>`` (case-insensitive)
    or from a ``.env`` file in the working directory. Pass an instance around; never import
    a global one, so tests can build their own.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Environment = Field(
        default=Environment.LOCAL,
        description="`local` or `production`; production refuses embedded defaults.",
    )
    data_dir: Path = Field(
        default=Path(".synapsenet"),
        description="Directory for the SQLite database, local objects and the admin key.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default `sqlite:///<data_dir>/synapsenet.db`.",
    )
    object_store_url: str | None = Field(
        default=None,
        description="`file:///path` or `s3://bucket/prefix`; default `<data_dir>/objects`.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto); default AWS."
    )
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret key.")
    event_bus: str = Field(
        default="memory",
        description="`memory` (in-process) or a `redis://` URL (Redis Streams).",
    )
    event_stream: str = Field(
        default="synapsenet:events", description="Redis stream key the bus publishes to."
    )
    cache_url: str | None = Field(
        default=None, description="`redis://` URL of the shared cache; none means in-process."
    )
    host: str = Field(default="127.0.0.1", description="Address the API server binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API server binds.")
    outbox_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often the outbox relay looks for unsent events."
    )
    experiment_tick_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often running experiments get guardrail checks, ramps and reweights.",
    )

    @field_validator("event_bus")
    @classmethod
    def _check_event_bus(cls, value: str) -> str:
        if value == "memory":
            return value
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss"):
            raise ValueError(f"must be 'memory' or a redis:// URL, got {value!r}")
        return value

    @field_validator("cache_url")
    @classmethod
    def _check_cache_url(cls, value: str | None) -> str | None:
        if value in (None, "", "none"):
            return None
        assert value is not None
        if urlsplit(value).scheme not in ("redis", "rediss"):
            raise ValueError(f"must be a redis:// URL or empty, got {value!r}")
        return value

    @field_validator("object_store_url")
    @classmethod
    def _check_object_store_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("file", "s3"):
            raise ValueError(f"must be a file:// or s3:// URL, got {value!r}")
        if parts.scheme == "s3" and not parts.netloc:
            raise ValueError(f"an s3:// URL needs a bucket, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = urlsplit(value).scheme.split("+")[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"must be a sqlite:// or postgresql:// URL, got {value!r}")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'synapsenet.db').resolve()}"

    @property
    def resolved_object_store_url(self) -> str:
        """The object store URL, defaulting to a directory inside the data directory."""
        if self.object_store_url is not None:
            return self.object_store_url
        return (self.data_dir / "objects").resolve().as_uri()

    @property
    def admin_key_path(self) -> Path:
        """Where the first admin key is written on first start (mode 0600)."""
        return self.data_dir / "admin.key"

    def check_safe(self) -> None:
        """Refuse embedded defaults that are unsafe outside local mode.

        Raises:
            ConfigurationError: In production without an explicit database or object store.
        """
        if self.environment is not Environment.PRODUCTION:
            return
        if self.database_url is None or self.database_url.startswith("sqlite"):
            raise ConfigurationError(
                ENV_PREFIX + "DATABASE_URL", "production needs a PostgreSQL database URL"
            )
        if self.object_store_url is None:
            raise ConfigurationError(
                ENV_PREFIX + "OBJECT_STORE_URL", "production needs an explicit object store"
            )


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, turning validation errors into one clear error.

    Args:
        **overrides: Values that take precedence over the environment.

    Returns:
        The validated settings.

    Raises:
        ConfigurationError: Naming the first invalid setting by its environment variable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(ENV_PREFIX + field.upper(), message) from None
