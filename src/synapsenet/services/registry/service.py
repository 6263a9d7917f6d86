"""The model registry service as the gateway hosts it: registry, loader and event consumer."""

from __future__ import annotations

from synapsenet.core.platform import Platform
from synapsenet.services.registry.api import router
from synapsenet.services.registry.consumer import ExperimentOutcomeConsumer
from synapsenet.services.registry.loader import RegistryModelLoader
from synapsenet.services.registry.registry import ModelRegistry


class RegistryService:
    """Everything the model registry runs in one process.

    Args:
        platform: The opened platform (database, object store, bus and inbox).
        loader_capacity: Loaded models the shared loader keeps in memory.
    """

    name = "registry"
    router = router

    def __init__(self, platform: Platform, *, loader_capacity: int = 16) -> None:
        self.platform = platform
        self.registry = ModelRegistry(platform.db, platform.store)
        self.loader = RegistryModelLoader(self.registry, capacity=loader_capacity)
        self.consumer = ExperimentOutcomeConsumer(self.registry, platform.bus, platform.inbox)

    def start(self) -> None:
        """Promote winners and demote rolled-back treatments as experiment events arrive."""
        self.consumer.start()

    def stop(self) -> None:
        """Stop consuming events."""
        self.consumer.stop()
