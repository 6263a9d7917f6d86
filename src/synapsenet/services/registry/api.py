"""``/v1/models``: the model registry REST API.

Thin routes over :class:`~synapsenet.services.registry.registry.ModelRegistry`. Errors are
not caught here: ``NotFoundError`` (404), ``ConflictError`` (409) and ``InvalidError`` (422,
naming the field) become problem+json responses in the gateway. Reads need a viewer key,
everything else an operator key (enforced by the gateway for the whole ``/v1`` tree, before
an upload's body is read).

A version is registered in two requests: ``POST /models/{name}/artifacts`` with the
serialised model as the raw body (streamed to disk while hashed; send ``X-Content-BLAKE3`` to
have a corrupt upload refused), then ``POST /models/{name}/versions`` with its metadata
naming the returned ``artifact_hash``. ``/models/{name}/predict`` belongs to the inference
service and is not defined here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi import status as http_status
from starlette.concurrency import run_in_threadpool

from synapsenet.services.dataversion.uploads import BLAKE3_HEADER, ExpectedDigests, spool
from synapsenet.services.registry.models import ModelStage
from synapsenet.services.registry.schemas import (
    ArtifactPublic,
    ModelCreate,
    ModelPublic,
    ReasonRequest,
    StageRequest,
    VersionCreate,
    VersionPublic,
)
from synapsenet.services.registry.uploads import read_uploaded, upload_artifact

if TYPE_CHECKING:
    # service.py imports this module for its router; the type is only needed by mypy.
    from synapsenet.services.registry.service import RegistryService

router = APIRouter(prefix="/models", tags=["models"])

_VERSION = "/{name}/versions/{version}"
_EXTENSIONS = {"sklearn": ".skops", "xgboost": ".ubj", "lightgbm": ".txt", "pickle": ".pkl"}


def get_registry_service(request: Request) -> RegistryService:
    """The registry service the gateway hosts."""
    service: RegistryService = request.app.state.services["registry"]
    return service


RegistryDep = Annotated["RegistryService", Depends(get_registry_service)]


@router.post("", status_code=http_status.HTTP_201_CREATED)
def create_model(body: ModelCreate, service: RegistryDep) -> ModelPublic:
    """Register a model name; upload versions to it next."""
    return ModelPublic.of(service.registry.create_model(body.name, description=body.description))


@router.get("")
def list_models(service: RegistryDep) -> list[ModelPublic]:
    """Every registered model, by name, with its production version."""
    return [ModelPublic.of(m) for m in service.registry.list_models()]


@router.get("/{name}")
def get_model(name: str, service: RegistryDep) -> ModelPublic:
    """One registered model."""
    return ModelPublic.of(service.registry.get_model(name))


@router.get("/{name}/production")
def get_production_version(name: str, service: RegistryDep) -> VersionPublic:
    """The model's production version (404 when it has none)."""
    return VersionPublic.of(service.registry.production_version(name))


@router.post("/{name}/artifacts", status_code=http_status.HTTP_201_CREATED)
async def upload(
    name: str,
    request: Request,
    service: RegistryDep,
    x_content_blake3: Annotated[str | None, Header()] = None,
) -> ArtifactPublic:
    """Upload a serialised model as the raw body; name its hash in a new version next.

    The body is streamed to disk in bounded blocks while it is hashed, then stored under its
    BLAKE3 address. With ``X-Content-BLAKE3`` a body that arrived different is refused (422)
    and nothing is stored.
    """
    registry = service.registry
    await run_in_threadpool(registry.get_model, name)
    expected = ExpectedDigests.from_headers(
        blake3=x_content_blake3, sha256=None, length=request.headers.get("content-length")
    )
    spool_dir = service.platform.settings.data_dir / "uploads"
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="model-", dir=spool_dir) as tmp:
        spooled = await spool(request.stream(), Path(tmp) / "artifact", expected)

        def store() -> tuple[str, int]:
            with open(spooled.path, "rb") as handle:
                return upload_artifact(registry, name, handle)

        digest, size = await run_in_threadpool(store)
    return ArtifactPublic(artifact_hash=digest, artifact_size=size)


@router.post("/{name}/versions", status_code=http_status.HTTP_201_CREATED)
def register_version(name: str, body: VersionCreate, service: RegistryDep) -> VersionPublic:
    """Register an uploaded artifact as the model's next version.

    The artifact is read back and loaded as its flavour first; pickle is refused (422
    naming ``trusted``) unless ``trusted`` is true.
    """
    registry = service.registry
    registry.get_model(name)
    data = read_uploaded(registry, body.artifact_hash)
    version = registry.register_version(
        name,
        data,
        flavor=body.flavor,
        signature=body.signature.to_signature(),
        metrics=body.metrics,
        training_datasets=body.training_datasets,
        run_id=body.run_id,
        background=None if body.background is None else np.asarray(body.background, float),
        description=body.description,
        trusted=body.trusted,
    )
    return VersionPublic.of(version)


@router.get("/{name}/versions")
def list_versions(name: str, service: RegistryDep) -> list[VersionPublic]:
    """Every version of the model, oldest first."""
    return [VersionPublic.of(v) for v in service.registry.list_versions(name)]


@router.get(_VERSION)
def get_version(name: str, version: str, service: RegistryDep) -> VersionPublic:
    """One version."""
    return VersionPublic.of(service.registry.get_version(name, version))


@router.post(f"{_VERSION}/stage")
def transition(name: str, version: str, body: StageRequest, service: RegistryDep) -> VersionPublic:
    """Move the version to a stage (to production: the previous one is archived)."""
    return VersionPublic.of(
        service.registry.transition(name, version, body.stage, reason=body.reason)
    )


@router.post(f"{_VERSION}/promote")
def promote(name: str, version: str, body: ReasonRequest, service: RegistryDep) -> VersionPublic:
    """Make the version the production version; the previous one is archived."""
    return VersionPublic.of(
        service.registry.transition(name, version, ModelStage.PRODUCTION, reason=body.reason)
    )


@router.post(f"{_VERSION}/demote")
def demote(name: str, version: str, body: ReasonRequest, service: RegistryDep) -> VersionPublic:
    """Take the version out of service (archived)."""
    return VersionPublic.of(
        service.registry.transition(name, version, ModelStage.ARCHIVED, reason=body.reason)
    )


@router.get(f"{_VERSION}/artifact")
def download_artifact(name: str, version: str, service: RegistryDep) -> Response:
    """The version's artifact, verified against its BLAKE3 digest before it is sent.

    A corrupt stored artifact answers 500 ``corrupt-artifact`` instead of its bytes.
    """
    found = service.registry.get_version(name, version)
    data = service.registry.load_artifact(name, found.version)
    filename = f"{found.model_name}-{found.version}{_EXTENSIONS[found.flavor.value]}"
    return Response(
        content=data,
        media_type="application/octet-stream",
        headers={
            BLAKE3_HEADER: found.artifact_hash,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
