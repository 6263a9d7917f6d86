"""The run-tracking service as the gateway hosts it."""

from __future__ import annotations

from synapsenet.core.platform import Platform
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.experiments.api import router
from synapsenet.services.experiments.ports import EngineDatasetResolver
from synapsenet.services.experiments.tracker import RunTracker


class RunTrackingService:
    """Everything run tracking runs in one process.

    Logged dataset references resolve against the data versioning engine over the same
    database and object store, and reads and models produced are linked in the same lineage
    graph, so impact analysis of a dataset version reaches the runs and models built on it.

    Args:
        platform: The opened platform (database and object store).
    """

    name = "experiments"
    router = router

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.lineage = LineageGraph(platform.db)
        engine = DatasetVersioningEngine(platform.db, platform.store)
        self.tracker = RunTracker(
            platform.db, lineage=self.lineage, datasets=EngineDatasetResolver(engine)
        )

    def start(self) -> None:
        """Nothing runs in the background."""

    def stop(self) -> None:
        """Nothing to stop."""
