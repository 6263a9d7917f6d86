"""Fixtures for gateway tests: an embedded platform, the app, and keys of each role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from synapsenet.core.auth import Role
from synapsenet.core.platform import Platform
from synapsenet.gateway import create_app


@pytest.fixture
def app(platform: Platform) -> FastAPI:
    """The gateway application over the test platform."""
    return create_app(platform=platform)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client running the app's lifespan (admin key bootstrap, relay)."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def tokens(platform: Platform, client: TestClient) -> dict[Role, str]:
    """One fresh token per role (the client fixture has bootstrapped the admin key)."""
    return {role: platform.keys.create(role, name=f"test {role.value}").token for role in Role}
