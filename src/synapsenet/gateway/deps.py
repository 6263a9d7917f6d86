"""FastAPI dependencies every router uses: the platform and the caller's API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from synapsenet.core.auth import ApiKey, Role
from synapsenet.core.platform import Platform
from synapsenet.errors import ForbiddenError, UnauthorizedError

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_platform(request: Request) -> Platform:
    """The platform the application was created with."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def authenticate(
    request: Request,
    platform: PlatformDep,
    token: Annotated[str | None, Depends(_api_key_header)],
) -> ApiKey:
    """The caller's API key; reads need ``viewer``, anything else ``operator``.

    Raises:
        UnauthorizedError: No key, or one that is unknown or revoked (401).
        ForbiddenError: A viewer key on a write request (403).
    """
    if not token:
        raise UnauthorizedError(f"missing API key; send it in the {API_KEY_HEADER} header")
    key = platform.keys.authenticate(token)
    required = Role.VIEWER if request.method in _READ_METHODS else Role.OPERATOR
    if not key.role.allows(required):
        raise ForbiddenError(
            f"a {key.role.value} key may not {request.method} {request.url.path}; "
            f"it needs {required.value}"
        )
    request.state.api_key = key
    return key


CurrentKey = Annotated[ApiKey, Depends(authenticate)]


def require_role(role: Role) -> Callable[[ApiKey], ApiKey]:
    """A dependency that refuses keys below ``role`` (403)."""

    def check(key: CurrentKey) -> ApiKey:
        if not key.role.allows(role):
            raise ForbiddenError(f"this needs the {role.value} role; the key has {key.role.value}")
        return key

    return check


AdminKey = Annotated[ApiKey, Depends(require_role(Role.ADMIN))]
