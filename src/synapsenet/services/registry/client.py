"""ModelRegistryClient: the model registry API over HTTP, typed (used by the CLI and the SDK).

Registering a version uploads the artifact first (streamed in blocks of a MiB, with its
BLAKE3 so the server refuses a body that arrives different), then sends the metadata naming
the artifact's hash. A download is checked against the digest the server sends::

    with ModelRegistryClient("http://127.0.0.1:8000", api_key=token) as client:
        client.create_model("churn")
        v1 = client.register_version("churn", Path("model.skops"), flavor="sklearn",
                                     signature={"feature_names": ["age"],
                                                "output_kind": "probability"})
        client.promote("churn", v1.version, reason="beats the baseline")

Errors come back as the :mod:`synapsenet.errors` class the server raised (404
``NotFoundError``, 409 ``ConflictError``, 422 ``InvalidError`` with its ``field``, 500
``CorruptArtifactError``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blake3
import httpx

from synapsenet.core.client import ServiceClient
from synapsenet.services.registry.artifacts import CorruptArtifactError
from synapsenet.services.registry.models import ModelFlavor, ModelSignature, ModelStage
from synapsenet.services.registry.schemas import (
    ArtifactPublic,
    ModelPublic,
    SignatureBody,
    VersionPublic,
)

__all__ = ["API_PREFIX", "ModelRegistryClient"]

API_PREFIX = "/v1/models"
BLAKE3_HEADER = "X-Content-BLAKE3"
_BLOCK = 1 << 20


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            yield block


def _file_blake3(path: Path) -> str:
    hasher = blake3.blake3()
    for block in _blocks(path):
        hasher.update(block)
    return hasher.hexdigest()


def _signature_body(signature: ModelSignature | SignatureBody | Mapping[str, Any]) -> Any:
    if isinstance(signature, ModelSignature):
        return SignatureBody.of(signature).model_dump(mode="json")
    if isinstance(signature, SignatureBody):
        return signature.model_dump(mode="json")
    return dict(signature)


class ModelRegistryClient(ServiceClient):
    """Typed client of ``/v1/models``.

    Takes the arguments of :class:`~synapsenet.core.client.ServiceClient`: the server's base
    URL, an API key (viewer for reads, operator for changes) and optionally an
    :class:`~synapsenet.core.asgi_transport.InProcessTransport`.
    """

    @staticmethod
    def _path(name: str, *parts: str) -> str:
        return "/".join([f"{API_PREFIX}/{quote(name, safe='')}", *parts])

    @classmethod
    def _version_path(cls, name: str, version: str, *parts: str) -> str:
        return cls._path(name, "versions", quote(str(version), safe=""), *parts)

    # ------------------------------------------------------------------ models

    def create_model(self, name: str, *, description: str = "") -> ModelPublic:
        """Register a model name."""
        body = {"name": name, "description": description}
        return ModelPublic.model_validate(self.post_json(API_PREFIX, body))

    def list_models(self) -> list[ModelPublic]:
        """Every registered model, by name."""
        return [ModelPublic.model_validate(m) for m in self.get_json(API_PREFIX)]

    def get_model(self, name: str) -> ModelPublic:
        """One registered model."""
        return ModelPublic.model_validate(self.get_json(self._path(name)))

    def production_version(self, name: str) -> VersionPublic:
        """The model's production version (``NotFoundError`` when it has none)."""
        return VersionPublic.model_validate(self.get_json(self._path(name, "production")))

    # ------------------------------------------------------------------ versions

    def upload_artifact(self, name: str, artifact: bytes | Path) -> ArtifactPublic:
        """Upload a serialised model (bytes, or a file streamed in blocks).

        Returns:
            Its BLAKE3 hash and size, to name in :meth:`register_uploaded`.
        """
        if isinstance(artifact, Path):
            digest, size = _file_blake3(artifact), artifact.stat().st_size
            content: bytes | Iterator[bytes] = _blocks(artifact)
        else:
            digest, size, content = blake3.blake3(artifact).hexdigest(), len(artifact), artifact
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            BLAKE3_HEADER: digest,
        }
        timeout = self._http.timeout
        with self.stream(
            "POST",
            self._path(name, "artifacts"),
            content=content,
            headers=headers,
            timeout=httpx.Timeout(
                timeout.connect, read=None, write=timeout.write, pool=timeout.pool
            ),
        ) as response:
            response.read()
            return ArtifactPublic.model_validate(response.json())

    def register_uploaded(
        self,
        name: str,
        artifact_hash: str,
        *,
        flavor: ModelFlavor | str,
        signature: ModelSignature | SignatureBody | Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
        training_datasets: Sequence[str] = (),
        run_id: str | None = None,
        background: Sequence[Sequence[float]] | None = None,
        description: str = "",
        trusted: bool = False,
    ) -> VersionPublic:
        """Register an uploaded artifact as the model's next version."""
        body = {
            "artifact_hash": artifact_hash,
            "flavor": ModelFlavor(flavor).value,
            "signature": _signature_body(signature),
            "metrics": dict(metrics or {}),
            "training_datasets": list(training_datasets),
            "run_id": run_id,
            "background": None if background is None else [list(map(float, r)) for r in background],
            "description": description,
            "trusted": trusted,
        }
        return VersionPublic.model_validate(self.post_json(self._path(name, "versions"), body))

    def register_version(
        self,
        name: str,
        artifact: bytes | Path,
        *,
        flavor: ModelFlavor | str,
        signature: ModelSignature | SignatureBody | Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
        training_datasets: Sequence[str] = (),
        run_id: str | None = None,
        background: Sequence[Sequence[float]] | None = None,
        description: str = "",
        trusted: bool = False,
    ) -> VersionPublic:
        """Upload an artifact and register it as the model's next version.

        Pickle is refused (``InvalidError`` naming ``trusted``) unless ``trusted=True``.
        """
        uploaded = self.upload_artifact(name, artifact)
        return self.register_uploaded(
            name,
            uploaded.artifact_hash,
            flavor=flavor,
            signature=signature,
            metrics=metrics,
            training_datasets=training_datasets,
            run_id=run_id,
            background=background,
            description=description,
            trusted=trusted,
        )

    def list_versions(self, name: str) -> list[VersionPublic]:
        """Every version of the model, oldest first."""
        listed = self.get_json(self._path(name, "versions"))
        return [VersionPublic.model_validate(v) for v in listed]

    def get_version(self, name: str, version: str) -> VersionPublic:
        """One version."""
        return VersionPublic.model_validate(self.get_json(self._version_path(name, version)))

    def transition(
        self, name: str, version: str, stage: ModelStage | str, *, reason: str = ""
    ) -> VersionPublic:
        """Move a version to a stage."""
        body = {"stage": ModelStage(stage).value, "reason": reason}
        return VersionPublic.model_validate(
            self.post_json(self._version_path(name, version, "stage"), body)
        )

    def promote(self, name: str, version: str, *, reason: str) -> VersionPublic:
        """Make a version the production version (the previous one is archived)."""
        return VersionPublic.model_validate(
            self.post_json(self._version_path(name, version, "promote"), {"reason": reason})
        )

    def demote(self, name: str, version: str, *, reason: str) -> VersionPublic:
        """Take a version out of service (archived)."""
        return VersionPublic.model_validate(
            self.post_json(self._version_path(name, version, "demote"), {"reason": reason})
        )

    def download_artifact(self, name: str, version: str) -> bytes:
        """The version's artifact, checked against the digest the server sends.

        Raises:
            CorruptArtifactError: The bytes received hash to something else.
        """
        response = self.request("GET", self._version_path(name, version, "artifact"))
        expected = response.headers.get(BLAKE3_HEADER, "")
        data = response.content
        actual = blake3.blake3(data).hexdigest()
        if actual != expected:
            raise CorruptArtifactError(f"download of {name}@{version}", expected, actual)
        return data
