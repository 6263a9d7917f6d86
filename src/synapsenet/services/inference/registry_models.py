"""Served models from the model registry: production versions and the registry's loader."""

from __future__ import annotations

import threading
import time

from synapsenet.services.explainability.loader import LoadedModel
from synapsenet.services.registry.loader import RegistryModelLoader
from synapsenet.services.registry.registry import ModelRegistry


class RegistryServedModels:
    """The registry as inference sees it.

    Which version is in production is read at most once per ``ttl`` seconds per model, so a
    promotion or demotion takes effect within ``ttl``; loaded models come from the
    registry's LRU loader (hash-verified on load).

    Args:
        registry: The model registry.
        loader: Its loader.
        ttl: Seconds a production version is cached.
    """

    def __init__(
        self, registry: ModelRegistry, loader: RegistryModelLoader, *, ttl: float = 1.0
    ) -> None:
        self.registry = registry
        self.loader = loader
        self.ttl = ttl
        self._production: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def production_version(self, name: str) -> str:
        """The version of ``name`` in production (NotFoundError if none)."""
        now = time.monotonic()
        with self._lock:
            cached = self._production.get(name)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        version = self.registry.production_version(name).version
        with self._lock:
            self._production[name] = (now, version)
        return version

    def load(self, name: str, version: str) -> LoadedModel:
        """The loaded, verified model version."""
        return self.loader.load(name, version)
