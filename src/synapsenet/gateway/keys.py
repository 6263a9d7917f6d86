"""``/v1/keys``: API key administration (admin role)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from synapsenet.core.auth import ApiKey, Role
from synapsenet.gateway.deps import AdminKey, PlatformDep

router = APIRouter(prefix="/keys", tags=["keys"])


class KeyCreate(BaseModel):
    """A new key's role and purpose."""

    role: Role
    name: str = Field(default="", max_length=200)


class KeyPublic(BaseModel):
    """A key as listed: never its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        """Build from the domain object."""
        return cls(
            id=key.id,
            name=key.name,
            role=key.role,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(KeyPublic):
    """A freshly created key, with the token shown this once."""

    token: str


@router.post("", response_model=KeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, platform: PlatformDep, _admin: AdminKey) -> KeyCreated:
    """Create a key; store the returned token now, it is never shown again."""
    created = platform.keys.create(body.role, name=body.name)
    return KeyCreated(**KeyPublic.of(created.key).model_dump(), token=created.token)


@router.get("", response_model=list[KeyPublic])
def list_keys(
    platform: PlatformDep, _admin: AdminKey, include_revoked: bool = False
) -> list[KeyPublic]:
    """List keys, oldest first."""
    return [KeyPublic.of(k) for k in platform.keys.list(include_revoked=include_revoked)]


@router.delete("/{key_id}", response_model=KeyPublic)
def revoke_key(key_id: str, platform: PlatformDep, _admin: AdminKey) -> KeyPublic:
    """Revoke a key; it authenticates nothing from now on."""
    return KeyPublic.of(platform.keys.revoke(key_id))
