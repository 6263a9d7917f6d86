from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from synapsenet.core.auth import ApiKeyRecord, ApiKeyStore, CreatedKey, Role, parse_token
from synapsenet.core.db import Database
from synapsenet.core.outbox import OutboxRecord
from synapsenet.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
)


@pytest.fixture
def keys(db: Database) -> ApiKeyStore:
    return ApiKeyStore(db)


def test_created_key_authenticates_with_its_role(keys: ApiKeyStore) -> None:
    created = keys.create(Role.OPERATOR, name="ci")
    key = keys.authenticate(created.token)
    assert key.id == created.key.id
    assert key.role is Role.OPERATOR
    assert key.name == "ci"
    assert key.last_used_at is not None


def test_secret_is_stored_only_as_a_digest(keys: ApiKeyStore, db: Database) -> None:
    created = keys.create("viewer")
    _, secret = parse_token(created.token)
    with db.transaction() as session:
        record = session.scalars(select(ApiKeyRecord)).one()
    assert secret not in record.secret_digest
    assert len(record.secret_digest) == 64
    assert created.token not in repr(keys.list())


def test_tokens_are_unique_and_high_entropy(keys: ApiKeyStore) -> None:
    tokens = {keys.create("viewer").token for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(parse_token(t)[1]) >= 43 for t in tokens)


@pytest.mark.parametrize(
    "token",
    ["", "snk", "snk_", "snk_abc", "snk__secret", "xyz_abc_def", "snk_unknown_secret"],
)
def test_malformed_or_unknown_tokens_are_unauthorized(keys: ApiKeyStore, token: str) -> None:
    with pytest.raises(UnauthorizedError):
        keys.authenticate(token)


def test_wrong_secret_is_unauthorized(keys: ApiKeyStore) -> None:
    created = keys.create("admin")
    key_id, secret = parse_token(created.token)
    with pytest.raises(UnauthorizedError, match="unknown or revoked"):
        keys.authenticate(f"snk_{key_id}_{secret[:-1]}x")


def test_revoked_key_stops_authenticating(keys: ApiKeyStore) -> None:
    created = keys.create("operator")
    revoked = keys.revoke(created.key.id)
    assert not revoked.active
    with pytest.raises(UnauthorizedError):
        keys.authenticate(created.token)
    assert keys.list() == []
    assert [k.id for k in keys.list(include_revoked=True)] == [created.key.id]


def test_revoking_twice_or_unknown_is_an_error(keys: ApiKeyStore) -> None:
    created = keys.create("operator")
    keys.revoke(created.key.id)
    with pytest.raises(ConflictError, match="already revoked"):
        keys.revoke(created.key.id)
    with pytest.raises(NotFoundError, match="nope"):
        keys.revoke("nope")


def test_unknown_role_names_the_choices(keys: ApiKeyStore) -> None:
    with pytest.raises(InvalidError, match="viewer, operator, admin") as info:
        keys.create("root")
    assert info.value.field == "role"
    with pytest.raises(InvalidError, match="200 characters"):
        keys.create("viewer", name="x" * 201)
    assert keys.list(include_revoked=True) == []


def test_key_lifecycle_goes_through_the_outbox(keys: ApiKeyStore, db: Database) -> None:
    created = keys.create("viewer")
    keys.revoke(created.key.id)
    with db.transaction() as session:
        types = session.scalars(select(OutboxRecord.type).order_by(OutboxRecord.id)).all()
    assert types == ["core.api_key.created", "core.api_key.revoked"]


@pytest.mark.parametrize(
    ("role", "required", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.VIEWER, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.OPERATOR, True),
        (Role.ADMIN, Role.ADMIN, True),
    ],
)
def test_roles_are_ordered(role: Role, required: Role, allowed: bool) -> None:
    assert role.allows(required) is allowed


def test_first_start_writes_an_admin_key_readable_by_owner_only(
    keys: ApiKeyStore, tmp_path: Path
) -> None:
    path = tmp_path / "data" / "admin.key"
    assert keys.ensure_admin_key(path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = keys.authenticate(path.read_text().strip())
    assert key.role is Role.ADMIN
    assert keys.ensure_admin_key(tmp_path / "other.key") is None
    assert not (tmp_path / "other.key").exists()


def test_existing_key_file_is_never_overwritten(keys: ApiKeyStore, tmp_path: Path) -> None:
    path = tmp_path / "admin.key"
    path.write_text("an old key\n")
    with pytest.raises(ConflictError, match="exists but no active API key"):
        keys.ensure_admin_key(path)
    assert path.read_text() == "an old key\n"
    assert keys.list() == []


class _FailingKeyStore(ApiKeyStore):
    """A key store whose database write fails after the key file was reserved."""

    def create(self, role: Role | str, name: str = "") -> CreatedKey:
        raise UnavailableError("database went away")


def test_failed_bootstrap_leaves_no_key_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "admin.key"
    with pytest.raises(UnavailableError):
        _FailingKeyStore(db).ensure_admin_key(path)
    assert not path.exists()
    assert ApiKeyStore(db).ensure_admin_key(path) == path


def test_verified_keys_are_cached_but_revocation_is_immediate(db: Database) -> None:
    keys = ApiKeyStore(db, cache_seconds=60)
    created = keys.create("operator")
    first = keys.authenticate(created.token)
    assert keys.authenticate(created.token) is first  # served from the cache
    keys.revoke(created.key.id)
    with pytest.raises(UnauthorizedError):
        keys.authenticate(created.token)


def test_a_cached_key_still_needs_the_right_secret(db: Database) -> None:
    keys = ApiKeyStore(db, cache_seconds=60)
    created = keys.create("operator")
    keys.authenticate(created.token)
    key_id, secret = parse_token(created.token)
    with pytest.raises(UnauthorizedError):
        keys.authenticate(f"snk_{key_id}_{secret[:-1]}x")


def test_revocation_elsewhere_applies_once_the_cache_expires(db: Database) -> None:
    here = ApiKeyStore(db, cache_seconds=0)
    elsewhere = ApiKeyStore(db)
    created = here.create("viewer")
    here.authenticate(created.token)
    elsewhere.revoke(created.key.id)
    with pytest.raises(UnauthorizedError):
        here.authenticate(created.token)
