"""The FastAPI application: every service router under ``/v1``, auth, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI

from synapsenet import __version__
from synapsenet.config import Settings, load_settings
from synapsenet.core.platform import Platform
from synapsenet.core.services import HostedService
from synapsenet.gateway import health, keys
from synapsenet.gateway.deps import authenticate
from synapsenet.gateway.middleware import MetricsMiddleware, RequestIdMiddleware
from synapsenet.gateway.problems import install_problem_handlers
from synapsenet.services.abtesting.service import ABTestingService
from synapsenet.services.dataversion.service import DataVersionService
from synapsenet.services.experiments.service import RunTrackingService
from synapsenet.services.explainability.loader import FileModelLoader
from synapsenet.services.explainability.loader_chain import ChainedModelLoader
from synapsenet.services.explainability.service import ExplanationService
from synapsenet.services.inference.registry_models import RegistryServedModels
from synapsenet.services.inference.service import InferenceService
from synapsenet.services.registry.service import RegistryService

logger = logging.getLogger(__name__)


def host_services(platform: Platform) -> list[HostedService]:
    """Build the services hosted in this process, wired to each other in-process.

    Inference routes through the A/B testing engine and records exposures in its log,
    serves models from the registry and explains through the explanation service; the
    explanation service loads registered models first and model files under the data
    directory second.
    """
    abtesting = ABTestingService(platform)
    registry = RegistryService(platform)
    files = FileModelLoader(Path(platform.settings.data_dir) / "models")
    explanations = ExplanationService(platform, loader=ChainedModelLoader([registry.loader, files]))
    inference = InferenceService(
        platform,
        models=RegistryServedModels(registry.registry, registry.loader),
        router=abtesting.engine,
        exposures=abtesting.exposures,
        explainer=explanations,
    )
    return [
        abtesting,
        DataVersionService(platform),
        explanations,
        registry,
        RunTrackingService(platform),
        inference,
    ]


def bootstrap_admin_key(platform: Platform) -> None:
    """On first start with no keys, write an admin key under the data directory."""
    path = platform.keys.ensure_admin_key(platform.settings.admin_key_path)
    if path is not None:
        message = f"Created the first admin API key; it is in {path.resolve()} (mode 0600)."
        logger.info(message)
        print(message, flush=True)


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> FastAPI:
    """Build the API application.

    Args:
        settings: Settings to open the platform from (embedded defaults when None); ignored
            when ``platform`` is given.
        platform: An already opened platform; the caller then closes it.

    Returns:
        The application. Its lifespan creates the first admin key if none exists and runs the
        outbox relay; it closes the platform on shutdown when it opened it.

    Raises:
        ConfigurationError: When a backend named by the settings is unusable.
    """
    owns_platform = platform is None
    current = platform if platform is not None else Platform.open(settings or load_settings())
    services = {service.name: service for service in host_services(current)}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        bootstrap_admin_key(current)
        current.start()
        for service in services.values():
            service.start()
        try:
            yield
        finally:
            for service in services.values():
                service.stop()
            if owns_platform:
                current.close()
            else:
                current.relay.stop()

    app = FastAPI(
        title="SynapseNet",
        version=__version__,
        summary="Safe model rollouts, versioned training data, and explained predictions.",
        lifespan=lifespan,
    )
    app.state.platform = current
    app.state.services = services
    install_problem_handlers(app)
    app.include_router(health.router)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authenticate)])
    v1.include_router(keys.router)
    for service in services.values():
        v1.include_router(service.router)
    app.include_router(v1)
    app.add_middleware(MetricsMiddleware, registry=current.metrics)
    app.add_middleware(RequestIdMiddleware)
    return app
