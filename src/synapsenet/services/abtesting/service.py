"""The A/B testing service as the gateway hosts it: engine, controller, exposures, router."""

from __future__ import annotations

from synapsenet.core.platform import Platform
from synapsenet.services.abtesting.api import router
from synapsenet.services.abtesting.controller import ExperimentController
from synapsenet.services.abtesting.engine import ABTestingEngine, ModelRegistryPort
from synapsenet.services.abtesting.exposures import ExposureLog
from synapsenet.services.abtesting.training_data import TrainingDataWatcher


class ABTestingService:
    """Everything the A/B testing service runs in one process.

    Args:
        platform: The opened platform.
        registry: The model registry to tell about promotions and rollbacks, if wired.
    """

    name = "abtesting"
    router = router

    def __init__(self, platform: Platform, *, registry: ModelRegistryPort | None = None) -> None:
        self.platform = platform
        self.engine = ABTestingEngine(platform.db, registry=registry)
        self.controller = ExperimentController(self.engine)
        self.exposures = ExposureLog(self.engine, registry=platform.metrics)
        self.training_data = TrainingDataWatcher(self.engine, platform.bus, platform.inbox)

    def start(self) -> None:
        """Run guardrail checks, ramps and bandit reweights on the configured schedule."""
        self.controller.start(self.platform.settings.experiment_tick_seconds)
        self.exposures.start()
        self.training_data.start()

    def stop(self) -> None:
        """Stop the scheduler; write the exposures still buffered."""
        self.training_data.stop()
        self.controller.stop()
        self.exposures.stop()
