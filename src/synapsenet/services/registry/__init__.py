"""The model registry: versions with verified artifacts, stages, promotion, and a loader."""

from synapsenet.services.registry.artifacts import CorruptArtifactError
from synapsenet.services.registry.flavors import UntrustedArtifactError
from synapsenet.services.registry.loader import RegistryModelLoader
from synapsenet.services.registry.models import (
    FeatureType,
    ModelFlavor,
    ModelSignature,
    ModelStage,
    ModelVersion,
    OutputKind,
    RegisteredModel,
)
from synapsenet.services.registry.registry import ModelRegistry

__all__ = [
    "CorruptArtifactError",
    "FeatureType",
    "ModelFlavor",
    "ModelRegistry",
    "ModelSignature",
    "ModelStage",
    "ModelVersion",
    "OutputKind",
    "RegisteredModel",
    "RegistryModelLoader",
    "UntrustedArtifactError",
]
