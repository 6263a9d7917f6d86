"""The registry's domain: registered models, their versions, stages, flavours and signatures.

Everything here is a frozen value. A version's artifact is addressed by its BLAKE3 hash; its
signature says what the model takes (feature names and types) and what it returns (a
regression value, class probabilities or labels).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.explainability.loader import FeatureType

__all__ = [
    "FeatureType",
    "ModelFlavor",
    "ModelSignature",
    "ModelStage",
    "ModelVersion",
    "OutputKind",
    "RegisteredModel",
    "check_dataset_refs",
    "check_metrics",
    "check_model_name",
    "parse_version",
]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DATASET_REF = re.compile(r"^[^@\s]+@v[0-9]+$")


class ModelFlavor(StrEnum):
    """How a version's artifact is serialised (and so how it is loaded).

    ``sklearn`` is a skops archive, ``xgboost`` a native UBJSON (or JSON) model, ``lightgbm``
    a native text model; none of them runs code when loaded. ``pickle`` does, so it is
    accepted only from an upload marked trusted.
    """

    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    PICKLE = "pickle"


class ModelStage(StrEnum):
    """Where a version is in its life: one ``production`` version per model at most."""

    NONE = "none"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class OutputKind(StrEnum):
    """What the model's prediction is."""

    REGRESSION = "regression"
    PROBABILITY = "probability"
    LABEL = "label"


def check_model_name(value: str, field: str = "name") -> str:
    """Check a model name (also used for path segments and object keys).

    Raises:
        InvalidError: Naming ``field`` when it is not 1-128 letters, digits, '.', '_', '-'.
    """
    if not isinstance(value, str) or not _SAFE_NAME.match(value):
        raise InvalidError(
            f"The model {field} must be 1-128 letters, digits, '.', '_' or '-' (not starting "
            f"with a symbol). Got {value!r} instead.",
            field=field,
        )
    return value


def parse_version(version: str | int) -> int:
    """A version number from ``"3"``, ``"v3"`` or ``3``.

    Raises:
        NotFoundError: Anything else (no version can have that name).
    """
    text = str(version)
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit() or int(digits) < 1:
        raise NotFoundError(f"no model version {text!r}; versions are numbered 1, 2, ...")
    return int(digits)


@dataclass(frozen=True)
class ModelSignature:
    """What a model takes and returns.

    Attributes:
        feature_names: The input columns, in order.
        feature_types: Numeric or categorical, one per feature.
        output_kind: Regression value, class probabilities (``predict_proba``) or labels.
        output_names: The class labels of a classifier, in output order; None otherwise.
    """

    feature_names: tuple[str, ...]
    feature_types: tuple[FeatureType, ...]
    output_kind: OutputKind
    output_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        names = tuple(self.feature_names)
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise InvalidError(
                "signature.feature_names must be a non-empty list of non-empty names",
                field="signature.feature_names",
            )
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise InvalidError(
                f"signature.feature_names repeats {duplicates}", field="signature.feature_names"
            )
        if len(self.feature_types) != len(names):
            raise InvalidError(
                f"signature.feature_types has {len(self.feature_types)} entries for "
                f"{len(names)} features",
                field="signature.feature_types",
            )
        try:
            types = tuple(FeatureType(t) for t in self.feature_types)
            kind = OutputKind(self.output_kind)
        except ValueError as exc:
            raise InvalidError(f"signature: {exc}", field="signature") from None
        outputs = None if self.output_names is None else tuple(map(str, self.output_names))
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "feature_types", types)
        object.__setattr__(self, "output_kind", kind)
        object.__setattr__(self, "output_names", outputs)

    @classmethod
    def numeric(
        cls,
        feature_names: Sequence[str],
        output_kind: OutputKind,
        output_names: Sequence[str] | None = None,
    ) -> ModelSignature:
        """A signature whose features are all numeric."""
        names = tuple(map(str, feature_names))
        return cls(
            names,
            (FeatureType.NUMERIC,) * len(names),
            output_kind,
            None if output_names is None else tuple(map(str, output_names)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The signature as JSON-ready data."""
        return {
            "feature_names": list(self.feature_names),
            "feature_types": [t.value for t in self.feature_types],
            "output_kind": self.output_kind.value,
            "output_names": None if self.output_names is None else list(self.output_names),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSignature:
        """Inverse of :meth:`to_dict`; ``feature_types`` defaults to all numeric.

        Raises:
            InvalidError: A missing or malformed member, naming it.
        """
        names = data.get("feature_names")
        if not isinstance(names, list | tuple):
            raise InvalidError(
                "signature.feature_names must be a list", field="signature.feature_names"
            )
        types = data.get("feature_types")
        if types is None:
            types = [FeatureType.NUMERIC.value] * len(names)
        if not isinstance(types, list | tuple):
            raise InvalidError(
                "signature.feature_types must be a list", field="signature.feature_types"
            )
        outputs = data.get("output_names")
        if outputs is not None and not isinstance(outputs, list | tuple):
            raise InvalidError(
                "signature.output_names must be a list or null", field="signature.output_names"
            )
        return cls(
            tuple(names),
            tuple(types),
            data.get("output_kind", ""),  # checked in __post_init__
            None if outputs is None else tuple(outputs),
        )


def check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    """Metrics as a plain dict of finite floats.

    Raises:
        InvalidError: Naming ``metrics`` on an empty name or a non-finite value.
    """
    checked: dict[str, float] = {}
    for name, value in (metrics or {}).items():
        if not isinstance(name, str) or not name:
            raise InvalidError("metric names must be non-empty strings", field="metrics")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidError(
                f"metric {name!r} must be a number. Got {value!r} instead.", field="metrics"
            ) from None
        if not math.isfinite(number):
            raise InvalidError(
                f"metric {name!r} must be finite. Got {value!r} instead.", field="metrics"
            )
        checked[name] = number
    return checked


def check_dataset_refs(refs: Sequence[str]) -> tuple[str, ...]:
    """Training dataset versions as ``name@vN`` references.

    Raises:
        InvalidError: Naming ``training_datasets`` on a reference of another form.
    """
    if isinstance(refs, str):
        refs = (refs,)
    for ref in refs:
        if not isinstance(ref, str) or not _DATASET_REF.match(ref):
            raise InvalidError(
                f"training datasets are named name@vN (e.g. orders@v3). Got {ref!r} instead.",
                field="training_datasets",
            )
    return tuple(refs)


@dataclass(frozen=True)
class RegisteredModel:
    """A named model; its versions carry the artifacts.

    Attributes:
        name: Unique name.
        description: What it is for.
        created_at: When it was created (aware UTC).
        latest_version: The highest version number given so far (0 before the first).
        production_version: The version in production, if any.
    """

    name: str
    description: str
    created_at: datetime
    latest_version: int = 0
    production_version: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model: an artifact in the object store and what is known about it.

    Attributes:
        model_name: The registered model.
        version: ``"1"``, ``"2"``, ... numbered per model in registration order.
        flavor: How the artifact is serialised.
        stage: Where the version is in its life.
        signature: Inputs and output.
        artifact_hash: BLAKE3 hex digest of the artifact (its content address).
        artifact_size: Bytes of the artifact.
        metrics: Evaluation metrics.
        training_datasets: Dataset versions it was trained on (``name@vN``).
        run_id: The training run that produced it, if known.
        created_at: When it was registered (aware UTC).
        description: Free text.
        trusted: The uploader vouched for the artifact (required for pickle).
        background_hash: BLAKE3 of the background rows (``.npy``), if any were given.
        stage_changed_at: When the stage last changed.
    """

    model_name: str
    version: str
    flavor: ModelFlavor
    stage: ModelStage
    signature: ModelSignature
    artifact_hash: str
    artifact_size: int
    metrics: Mapping[str, float]
    training_datasets: tuple[str, ...]
    run_id: str | None
    created_at: datetime
    description: str = ""
    trusted: bool = False
    background_hash: str | None = None
    stage_changed_at: datetime | None = field(default=None)

    @property
    def ref(self) -> str:
        """``name@version``, e.g. ``churn@3``."""
        return f"{self.model_name}@{self.version}"
