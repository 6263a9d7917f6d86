"""The data versioning service as the gateway hosts it."""

from __future__ import annotations

from synapsenet.core.platform import Platform
from synapsenet.services.dataversion.api import router
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.reconstruction import DatasetReconstructor
from synapsenet.services.dataversion.transforms import TransformRegistry


class DataVersionService:
    """Everything the data versioning service runs in one process.

    Args:
        platform: The opened platform (database and object store).
        registry: Registered transformations available for replays.
    """

    name = "dataversion"
    router = router

    def __init__(self, platform: Platform, *, registry: TransformRegistry | None = None) -> None:
        self.platform = platform
        self.engine = DatasetVersioningEngine(platform.db, platform.store)
        self.lineage = LineageGraph(platform.db)
        self.transforms = registry or TransformRegistry()
        self.reconstructor = DatasetReconstructor(
            self.engine, self.lineage, registry=self.transforms
        )

    def start(self) -> None:
        """Nothing runs in the background (gc is run on demand)."""

    def stop(self) -> None:
        """Nothing to stop."""
