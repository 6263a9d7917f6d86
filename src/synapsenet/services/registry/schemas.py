"""Request and response schemas of the model registry API.

Request bodies forbid unknown fields, so a typo is a 422 instead of a silent default.
Response schemas ignore unknown fields, so an older client keeps parsing a newer server's
answers. Datetimes are ISO 8601 with a timezone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints

from synapsenet.services.registry.models import (
    FeatureType,
    ModelFlavor,
    ModelSignature,
    ModelStage,
    ModelVersion,
    OutputKind,
    RegisteredModel,
)

__all__ = [
    "ArtifactPublic",
    "ModelCreate",
    "ModelPublic",
    "ReasonRequest",
    "SignatureBody",
    "StageRequest",
    "VersionCreate",
    "VersionPublic",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_FORBID = ConfigDict(extra="forbid")


class ModelCreate(BaseModel):
    """A new registered model."""

    model_config = _FORBID

    name: Name
    description: str = Field(default="", max_length=10_000)


class ModelPublic(BaseModel):
    """A registered model, its newest version number and its production version."""

    name: str
    description: str
    created_at: datetime
    latest_version: int
    production_version: str | None

    @classmethod
    def of(cls, model: RegisteredModel) -> ModelPublic:
        """Build from the domain object."""
        return cls(
            name=model.name,
            description=model.description,
            created_at=model.created_at,
            latest_version=model.latest_version,
            production_version=model.production_version,
        )


class SignatureBody(BaseModel):
    """What a model takes and returns; ``feature_types`` defaults to all numeric."""

    model_config = _FORBID

    feature_names: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1)
    feature_types: list[FeatureType] | None = None
    output_kind: OutputKind
    output_names: list[str] | None = None

    def to_signature(self) -> ModelSignature:
        """The domain signature (checked: lengths agree, names are unique)."""
        types = self.feature_types or [FeatureType.NUMERIC] * len(self.feature_names)
        return ModelSignature(
            tuple(self.feature_names),
            tuple(types),
            self.output_kind,
            None if self.output_names is None else tuple(self.output_names),
        )

    @classmethod
    def of(cls, signature: ModelSignature) -> SignatureBody:
        """Build from the domain object."""
        return cls(
            feature_names=list(signature.feature_names),
            feature_types=list(signature.feature_types),
            output_kind=signature.output_kind,
            output_names=None if signature.output_names is None else list(signature.output_names),
        )


class ArtifactPublic(BaseModel):
    """An uploaded artifact, ready to be named by a new version."""

    artifact_hash: str
    artifact_size: int


class VersionCreate(BaseModel):
    """A new version of an uploaded artifact (``POST .../artifacts`` first)."""

    model_config = _FORBID

    artifact_hash: str = Field(description="BLAKE3 of the uploaded artifact.")
    flavor: ModelFlavor
    signature: SignatureBody
    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    training_datasets: list[str] = Field(default_factory=list, description="name@vN refs.")
    run_id: str | None = Field(default=None, max_length=200)
    background: list[list[float]] | None = Field(
        default=None, description="Reference rows for explanations, one list per row."
    )
    description: str = Field(default="", max_length=10_000)
    trusted: bool = Field(
        default=False, description="Vouch for the artifact; required for the pickle flavour."
    )


class VersionPublic(BaseModel):
    """One version of a model."""

    model_name: str
    version: str
    flavor: ModelFlavor
    stage: ModelStage
    signature: SignatureBody
    artifact_hash: str
    artifact_size: int
    metrics: dict[str, float]
    training_datasets: list[str]
    run_id: str | None
    created_at: datetime
    stage_changed_at: datetime | None
    description: str
    trusted: bool
    has_background: bool

    @classmethod
    def of(cls, version: ModelVersion) -> VersionPublic:
        """Build from the domain object."""
        return cls(
            model_name=version.model_name,
            version=version.version,
            flavor=version.flavor,
            stage=version.stage,
            signature=SignatureBody.of(version.signature),
            artifact_hash=version.artifact_hash,
            artifact_size=version.artifact_size,
            metrics=dict(version.metrics),
            training_datasets=list(version.training_datasets),
            run_id=version.run_id,
            created_at=version.created_at,
            stage_changed_at=version.stage_changed_at,
            description=version.description,
            trusted=version.trusted,
            has_background=version.background_hash is not None,
        )


class StageRequest(BaseModel):
    """Move a version to a stage."""

    model_config = _FORBID

    stage: ModelStage
    reason: str = Field(default="", max_length=10_000)


class ReasonRequest(BaseModel):
    """Why a version is promoted or demoted (recorded in its event)."""

    model_config = _FORBID

    reason: str = Field(min_length=1, max_length=10_000)
