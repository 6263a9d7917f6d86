"""The inference service as the gateway hosts it: the engine over its neighbours."""

from __future__ import annotations

from synapsenet.core.platform import Platform
from synapsenet.services.inference.api import router
from synapsenet.services.inference.engine import InferenceEngine
from synapsenet.services.inference.ports import (
    ExposureRecorder,
    PredictionExplainer,
    ServedModels,
    TrafficRouter,
)


class InferenceService:
    """Serves ``/v1/models/{name}/predict`` in the platform process.

    Args:
        platform: The opened platform (its metrics registry times every request).
        models: Model versions and loaded models (the registry).
        router: Routing by running experiments (the A/B testing engine), None for none.
        exposures: Where exposures go (the A/B testing exposure log), None for none.
        explainer: The explanation service, None to refuse ``explain=true``.
    """

    name = "inference"
    router = router

    def __init__(
        self,
        platform: Platform,
        *,
        models: ServedModels,
        router: TrafficRouter | None = None,
        exposures: ExposureRecorder | None = None,
        explainer: PredictionExplainer | None = None,
    ) -> None:
        self.platform = platform
        self.engine = InferenceEngine(
            models,
            router=router,
            exposures=exposures,
            explainer=explainer,
            registry=platform.metrics,
        )

    def start(self) -> None:
        """Nothing runs in the background (exposures are written by the A/B service)."""

    def stop(self) -> None:
        """Nothing to stop."""
