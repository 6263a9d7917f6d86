"""API keys with roles: creation (shown once), hashed storage, constant-time checks.

A token looks like ``snk_<id>_<secret>``. The id is public and indexes the row; only a
SHA-256 digest of the 256-bit random secret is stored, and the check compares digests in
constant time. Roles are ordered: ``viewer`` (read) < ``operator`` (write) < ``admin`` (keys).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from synapsenet.core.db import Base, Database, UTCDateTime, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.errors import ConflictError, InvalidError, NotFoundError, UnauthorizedError

TOKEN_PREFIX = "snk"  # noqa: S105  (a public prefix, not a secret)
EVENT_SOURCE = "/core/auth"
# Writing last_used_at on every request would turn each read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class Role(StrEnum):
    """What a key may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < operator < admin."""
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        """Whether a key with this role may do what ``required`` may."""
        return self.rank >= required.rank


class ApiKeyRecord(Base):
    """A stored API key: its public id, role and the digest of its secret."""

    __tablename__ = "core_api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    secret_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as the platform shows it (never with its secret).

    Attributes:
        id: Public identifier (the middle part of the token).
        name: What the key is for.
        role: What it may do.
        created_at: When it was created (UTC).
        last_used_at: Last successful use, to a minute's resolution.
        revoked_at: When it was revoked; a revoked key authenticates nothing.
    """

    id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates."""
        return self.revoked_at is None

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> ApiKey:
        """Build from a stored row."""
        return cls(
            id=record.id,
            name=record.name,
            role=Role(record.role),
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
        )


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A freshly created key: the only time its full token exists outside the caller."""

    key: ApiKey
    token: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_token(token: str) -> tuple[str, str]:
    """Split a token into its public id and secret.

    Raises:
        UnauthorizedError: When the token does not have the ``snk_<id>_<secret>`` shape.
    """
    prefix, sep, rest = token.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not sep or not sep2 or not key_id or not secret:
        raise UnauthorizedError("malformed API key")
    return key_id, secret


class ApiKeyStore:
    """Creates, lists, revokes and checks API keys.

    Verified keys are remembered for ``cache_seconds`` so that a request does not read the
    database to authenticate; a revocation through this store takes effect at once, one
    made by another process within ``cache_seconds``.

    Args:
        db: The database holding ``core_api_keys``.
        cache_seconds: How long a verified key is trusted without a database read (0: never).
    """

    def __init__(self, db: Database, *, cache_seconds: float = 5.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._verified: dict[tuple[str, str], tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()

    def create(self, role: Role | str, name: str = "") -> CreatedKey:
        """Create a key; the returned token is shown once and never stored.

        Args:
            role: ``viewer``, ``operator`` or ``admin``.
            name: What the key is for (free text, up to 200 characters).

        Raises:
            InvalidError: For an unknown role or an over-long name.
        """
        try:
            role = Role(role)
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise InvalidError(
                f"unknown role {role!r}; use one of {allowed}", field="role"
            ) from None
        if len(name) > 200:
            raise InvalidError("key name must be at most 200 characters", field="name")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        record = ApiKeyRecord(
            id=key_id, name=name, role=role.value, secret_digest=_digest(secret), created_at=now
        )
        with self.db.transaction() as session:
            session.add(record)
            record_event(
                session,
                Event(
                    type="core.api_key.created",
                    source=EVENT_SOURCE,
                    subject=key_id,
                    data={"id": key_id, "role": role.value, "name": name},
                ),
            )
        return CreatedKey(ApiKey.from_record(record), f"{TOKEN_PREFIX}_{key_id}_{secret}")

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Keys, oldest first."""
        query = select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
        if not include_revoked:
            query = query.where(ApiKeyRecord.revoked_at.is_(None))
        with self.db.transaction() as session:
            return [ApiKey.from_record(r) for r in session.scalars(query)]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key so it authenticates nothing from now on.

        Raises:
            NotFoundError: No key has that id.
            ConflictError: The key is already revoked.
        """
        with self.db.transaction(write=True) as session:
            record = session.get(ApiKeyRecord, key_id, with_for_update=True)
            if record is None:
                raise NotFoundError(f"no API key with id {key_id!r}")
            if record.revoked_at is not None:
                raise ConflictError(f"API key {key_id!r} is already revoked")
            record.revoked_at = utcnow()
            with self._lock:
                for cached_key in [k for k in self._verified if k[0] == key_id]:
                    del self._verified[cached_key]
            record_event(
                session,
                Event(
                    type="core.api_key.revoked",
                    source=EVENT_SOURCE,
                    subject=key_id,
                    data={"id": key_id, "role": record.role},
                ),
            )
            return ApiKey.from_record(record)

    def authenticate(self, token: str) -> ApiKey:
        """Return the active key a token belongs to.

        Raises:
            UnauthorizedError: Malformed, unknown or revoked token, or wrong secret; the
                message does not say which, so it leaks nothing.
        """
        key_id, secret = parse_token(token)
        presented = _digest(secret)
        now_mono = time.monotonic()
        with self._lock:
            cached = self._verified.get((key_id, presented))
        if cached is not None and cached[0] > now_mono:
            return cached[1]
        with self.db.transaction() as session:
            record = session.get(ApiKeyRecord, key_id)
            stored = record.secret_digest if record is not None else _digest("")
            matches = hmac.compare_digest(presented, stored)
            if record is None or not matches or record.revoked_at is not None:
                raise UnauthorizedError("unknown or revoked API key")
            key = ApiKey.from_record(record)
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            # A separate write transaction: most requests only read, and a read transaction
            # that later writes cannot wait for SQLite's lock.
            with self.db.transaction(write=True) as session:
                session.execute(
                    update(ApiKeyRecord).where(ApiKeyRecord.id == key_id).values(last_used_at=now)
                )
            key = replace(key, last_used_at=now)
        if self.cache_seconds > 0:
            with self._lock:
                self._verified[(key_id, presented)] = (now_mono + self.cache_seconds, key)
        return key

    def count_active(self) -> int:
        """How many keys can authenticate."""
        return len(self.list())

    def ensure_admin_key(self, path: Path) -> Path | None:
        """On first start, create an admin key and write its token to ``path`` (mode 0600).

        Does nothing when an active key exists already.

        Args:
            path: Where to write the token; must not exist yet.

        Returns:
            The path written, or None when no key was needed.

        Raises:
            ConflictError: ``path`` exists although no active key does (it is never
                overwritten, so a key a user still relies on is not lost).
        """
        if self.count_active() > 0:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConflictError(
                f"{path} exists but no active API key does; move it away to create a new one"
            ) from None
        try:
            created = self.create(Role.ADMIN, name="bootstrap admin")
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(created.token + "\n")
        return path
