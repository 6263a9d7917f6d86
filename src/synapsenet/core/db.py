"""Relational state: the SQLAlchemy engine, transactions and Alembic migrations.

SQLite inside the data directory by default; PostgreSQL when ``SYNAPSENET_DATABASE_URL``
names one. Every table of every service hangs off :data:`Base.metadata` and is created only
by the migrations under ``synapsenet/migrations``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from synapsenet.env_vars import ENV_PREFIX
from synapsenet.errors import ConfigurationError, UnavailableError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

    from synapsenet.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every SynapseNet table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp column that accepts only aware datetimes and always returns UTC.

    SQLite has no time zones; storing naive UTC and re-attaching UTC on the way out keeps
    both backends returning the same aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Reject naive datetimes and normalise aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} given; SynapseNet stores UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        """Return stored values as aware UTC datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for bare PostgreSQL URLs.

    Args:
        url: A SQLAlchemy database URL.

    Returns:
        The URL with ``postgresql+psycopg`` as its driver when none was named.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN, so a write transaction can ask for IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


_SQLITE_BEGIN = "synapsenet_sqlite_begin"


class Database:
    """One database: an engine, a session factory, transactions and migrations.

    Args:
        url: SQLAlchemy URL (``sqlite:///...`` or ``postgresql://...``).
        echo: Log every statement (debugging).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """Build the database the settings name (SQLite under the data directory by default)."""
        return cls(settings.resolved_database_url)

    @property
    def dialect(self) -> str:
        """The backend name: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """Open a session in one transaction: committed on success, rolled back on error.

        Args:
            write: The transaction reads and then writes state that concurrent writers also
                change (read-check-write). On SQLite it then takes the write lock up front
                (``BEGIN IMMEDIATE``), since a deferred transaction that read before another
                writer committed cannot write at all; PostgreSQL callers lock rows with
                ``SELECT ... FOR UPDATE`` instead.

        Yields:
            The session; everything done through it commits or rolls back together.
        """
        with self._sessions() as session, session.begin():
            if write and self.dialect == "sqlite":
                session.connection(execution_options={_SQLITE_BEGIN: "IMMEDIATE"})
            yield session

    def session(self) -> Session:
        """A new session the caller manages (prefer :meth:`transaction`)."""
        return self._sessions()

    def ping(self) -> None:
        """Check that the database answers.

        Raises:
            UnavailableError: When it does not.
        """
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise UnavailableError(f"database unreachable: {_first_line(exc)}") from exc

    def check_reachable(self) -> None:
        """Check the database at start-up, naming the setting when it fails.

        Raises:
            ConfigurationError: Naming ``SYNAPSENET_DATABASE_URL``.
        """
        try:
            self.ping()
        except UnavailableError as exc:
            safe_url = make_url(self.url).render_as_string(hide_password=True)
            raise ConfigurationError(
                ENV_PREFIX + "DATABASE_URL", f"cannot connect to {safe_url} ({exc.detail})"
            ) from exc

    def _alembic_config(self) -> AlembicConfig:
        # Alembic (~11 MB resident) is imported only by what migrates or inspects revisions.
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        location = resources.files("synapsenet") / "migrations"
        config.set_main_option("script_location", str(location))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (all of them by default).

        Args:
            revision: Alembic revision identifier.
        """
        from alembic import command

        config = self._alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        """The revision the database is at, or None before the first migration."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest revision the installed code knows."""
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
