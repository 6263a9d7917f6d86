"""The contract between the gateway and each service it hosts."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter


class HostedService(Protocol):
    """A service running inside the platform process.

    The gateway builds one per service from the opened platform, mounts its router under
    ``/v1``, starts its background work with the app, and stops it on shutdown.
    """

    name: str
    router: APIRouter

    def start(self) -> None:
        """Start background work (schedulers, consumers)."""

    def stop(self) -> None:
        """Stop background work; called once on shutdown."""
