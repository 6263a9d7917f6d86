"""How the explanation service gets a model: a narrow loader interface and two local defaults.

The service never imports the registry. It asks a :class:`ModelLoader` for
``(name, version)`` and gets a :class:`LoadedModel`: the fitted model plus the metadata an
explanation needs (feature names and types, output names, background rows) and a content
hash that changes whenever the artifact does. The registry service implements the protocol
for real deployments; here are the defaults:

- :class:`InMemoryModelLoader`: models registered from Python (tests, demos, notebooks),
  including text and image models, which are prediction functions (a list of strings, or a
  batch of images, in; probabilities or values out) and have no file format here;
- :class:`FileModelLoader`: ``<root>/<name>/<version>/`` directories holding a native
  XGBoost (``model.json``) or LightGBM (``model.txt``) model and a ``meta.json``. Nothing is
  unpickled: background rows are read with ``numpy.load(allow_pickle=False)``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import blake3
import numpy as np

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.explainability.models import FloatArray

__all__ = [
    "FeatureType",
    "FileModelLoader",
    "InMemoryModelLoader",
    "InputKind",
    "LoadedModel",
    "ModelLoader",
]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InputKind(StrEnum):
    """What a model takes: rows of features, raw strings, or images."""

    TABULAR = "tabular"
    TEXT = "text"
    IMAGE = "image"


MODES: tuple[str, ...] = ("classification", "regression")
"""What a text or image model returns: class probabilities, or values."""


class FeatureType(StrEnum):
    """How a feature is perturbed: as a number or as a category code."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to explain, with the metadata explanations need.

    Attributes:
        name: The model's registered name.
        version: Its version.
        model: The fitted model (scikit-learn, XGBoost, LightGBM) or a prediction function.
        feature_names: The model's input columns, in order.
        feature_types: Numeric or categorical, one per feature.
        output_names: Names of the outputs (class labels), None to take them from the model.
        background: Reference rows ``(n, M)`` for interventional SHAP and LIME, or None.
        content_hash: Changes whenever the model or its metadata does; part of cache keys.
        input_kind: Rows of features (the default), text or images.
        mode: For text and image models, ``"classification"`` (the model returns class
            probabilities) or ``"regression"``; None for tabular models, whose output kind
            is read from the model itself.
    """

    name: str
    version: str
    model: object
    feature_names: tuple[str, ...]
    feature_types: tuple[FeatureType, ...]
    output_names: tuple[str, ...] | None
    background: FloatArray | None
    content_hash: str
    input_kind: InputKind = InputKind.TABULAR
    mode: str | None = None

    @property
    def n_features(self) -> int:
        """How many input columns the model takes."""
        return len(self.feature_names)

    @property
    def categorical_features(self) -> tuple[int, ...]:
        """Indices of the categorical features."""
        return tuple(
            i for i, kind in enumerate(self.feature_types) if kind is FeatureType.CATEGORICAL
        )


class ModelLoader(Protocol):
    """Finds a model version and loads it with its metadata."""

    def load(self, name: str, version: str) -> LoadedModel:
        """The model ``name`` at ``version``.

        Raises:
            NotFoundError: No such model or version.
        """
        ...


def _check_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not _SAFE_NAME.match(value):
        raise InvalidError(
            f"The model {field} must be 1-128 letters, digits, '.', '_' or '-' (not starting "
            f"with a symbol). Got {value!r} instead.",
            field=field,
        )
    return value


def _feature_types(
    types: Sequence[str] | None, n_features: int, source: str
) -> tuple[FeatureType, ...]:
    if types is None:
        return (FeatureType.NUMERIC,) * n_features
    if len(types) != n_features:
        raise InvalidError(
            f"{source}: feature_types has {len(types)} entries for {n_features} features",
            field="feature_types",
        )
    try:
        return tuple(FeatureType(t) for t in types)
    except ValueError:
        raise InvalidError(
            f"{source}: feature_types must each be 'numeric' or 'categorical'. Got {types!r}.",
            field="feature_types",
        ) from None


def _background(value: object, n_features: int, source: str) -> FloatArray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != n_features or array.shape[0] == 0:
        raise InvalidError(
            f"{source}: background must be a non-empty (n, {n_features}) array. "
            f"Got shape {array.shape} instead.",
            field="background",
        )
    return array


class InMemoryModelLoader:
    """Models registered from Python: tests, the demo, notebooks.

    Example:
        >>> loader = InMemoryModelLoader()
        >>> loader.register("churn", "1", model, feature_names=["age", "tenure"])  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        version: str,
        model: object,
        *,
        feature_names: Sequence[str],
        feature_types: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        background: object | None = None,
    ) -> LoadedModel:
        """Make a fitted model loadable as ``(name, version)``, replacing any earlier one.

        The content hash is fresh for every registration (an in-memory model has no
        canonical bytes), so re-registering a version never serves its old explanations.

        Returns:
            The model as the service will load it.

        Raises:
            InvalidError: On a bad name, types or background shape.
        """
        source = f"model {name}:{version}"
        names = tuple(str(n) for n in feature_names)
        loaded = LoadedModel(
            name=_check_name(name, "name"),
            version=_check_name(version, "version"),
            model=model,
            feature_names=names,
            feature_types=_feature_types(feature_types, len(names), source),
            output_names=None if output_names is None else tuple(map(str, output_names)),
            background=_background(background, len(names), source),
            content_hash=blake3.blake3(f"{name}\0{version}\0{uuid.uuid4()}".encode()).hexdigest(),
        )
        with self._lock:
            self._models[(name, version)] = loaded
        return loaded

    def register_text(
        self,
        name: str,
        version: str,
        predict_fn: Callable[[list[str]], object],
        *,
        mode: str = "classification",
        output_names: Sequence[str] | None = None,
    ) -> LoadedModel:
        """Make a text model loadable: a function from a list of strings to its outputs.

        Args:
            name: The model's name.
            version: Its version.
            predict_fn: Takes ``list[str]``; returns ``(n, n_classes)`` probabilities
                (``mode="classification"``) or ``(n,)`` / ``(n, K)`` values.
            mode: ``"classification"`` or ``"regression"``.
            output_names: Names of the outputs (class labels).

        Returns:
            The model as the service will load it.

        Raises:
            InvalidError: On a bad name, a non-callable or an unknown mode.
        """
        return self._register_function(
            name, version, predict_fn, InputKind.TEXT, mode, output_names
        )

    def register_image(
        self,
        name: str,
        version: str,
        predict_fn: Callable[[FloatArray], object],
        *,
        mode: str = "classification",
        output_names: Sequence[str] | None = None,
    ) -> LoadedModel:
        """Make an image model loadable: a function from a batch of images to its outputs.

        Args:
            name: The model's name.
            version: Its version.
            predict_fn: Takes ``(n, H, W)`` or ``(n, H, W, C)`` float images; returns
                ``(n, n_classes)`` probabilities (``mode="classification"``) or values.
            mode: ``"classification"`` or ``"regression"``.
            output_names: Names of the outputs (class labels).

        Returns:
            The model as the service will load it.

        Raises:
            InvalidError: On a bad name, a non-callable or an unknown mode.
        """
        return self._register_function(
            name, version, predict_fn, InputKind.IMAGE, mode, output_names
        )

    def _register_function(
        self,
        name: str,
        version: str,
        predict_fn: object,
        kind: InputKind,
        mode: str,
        output_names: Sequence[str] | None,
    ) -> LoadedModel:
        if not callable(predict_fn):
            raise InvalidError(
                f"A {kind.value} model must be a callable prediction function. "
                f"Got {type(predict_fn).__name__} instead.",
                field="model",
            )
        if mode not in MODES:
            raise InvalidError(
                f"The 'mode' of {kind.value} models must be one of 'classification', "
                f"'regression'. Got {mode!r} instead.",
                field="mode",
            )
        loaded = LoadedModel(
            name=_check_name(name, "name"),
            version=_check_name(version, "version"),
            model=predict_fn,
            feature_names=(),
            feature_types=(),
            output_names=None if output_names is None else tuple(map(str, output_names)),
            background=None,
            content_hash=blake3.blake3(f"{name}\0{version}\0{uuid.uuid4()}".encode()).hexdigest(),
            input_kind=kind,
            mode=mode,
        )
        with self._lock:
            self._models[(name, version)] = loaded
        return loaded

    def load(self, name: str, version: str) -> LoadedModel:
        """The registered model.

        Raises:
            NotFoundError: Nothing is registered under ``(name, version)``.
        """
        with self._lock:
            loaded = self._models.get((name, version))
        if loaded is None:
            raise NotFoundError(f"no model {name!r} version {version!r}")
        return loaded


def _read_model(directory: Path) -> tuple[object, bytes]:
    """The native model in ``directory`` and its bytes (for the content hash)."""
    xgb_path, lgb_path = directory / "model.json", directory / "model.txt"
    if xgb_path.is_file():
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(xgb_path))
        return booster, xgb_path.read_bytes()
    if lgb_path.is_file():
        import lightgbm

        text = lgb_path.read_text(encoding="utf-8")
        return lightgbm.Booster(model_str=text), text.encode()
    raise InvalidError(
        f"{directory} holds no model.json (XGBoost) or model.txt (LightGBM); pickled "
        "artifacts are not loaded",
        field="model",
    )


class FileModelLoader:
    """Models stored as files: ``<root>/<name>/<version>/``, least recently used evicted.

    Each version directory holds the model in a native, non-executable format and its
    metadata::

        model.json | model.txt   XGBoost JSON model, or LightGBM text model
        meta.json                {"feature_names": [...], "feature_types": [...],
                                  "output_names": [...], "background": "background.npy"}
        background.npy           optional float array (n, M), read without pickle

    Args:
        root: Directory holding one sub-directory per model name.
        max_models: Loaded models kept in memory.
    """

    def __init__(self, root: Path | str, *, max_models: int = 8) -> None:
        if max_models < 1:
            raise InvalidError(
                "The 'max_models' parameter of FileModelLoader must be an int >= 1. "
                f"Got {max_models} instead.",
                field="max_models",
            )
        self.root = Path(root)
        self.max_models = max_models
        self._loaded: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, name: str, version: str) -> LoadedModel:
        """Load (or return the cached) model version.

        Raises:
            InvalidError: A name or version with path characters, or unusable files.
            NotFoundError: No such directory or meta.json.
        """
        key = (_check_name(name, "name"), _check_name(version, "version"))
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        loaded = self._read(name, version)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > self.max_models:
                self._loaded.popitem(last=False)
        return loaded

    def _read(self, name: str, version: str) -> LoadedModel:
        directory = self.root / name / version
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise NotFoundError(f"no model {name!r} version {version!r}")
        source = str(meta_path)
        meta_bytes = meta_path.read_bytes()
        try:
            meta = json.loads(meta_bytes)
        except json.JSONDecodeError as exc:
            raise InvalidError(f"{source} is not valid JSON: {exc}", field="meta") from None
        names = meta.get("feature_names") if isinstance(meta, dict) else None
        if not isinstance(names, list) or not names:
            raise InvalidError(f"{source} must list feature_names", field="feature_names")
        model, model_bytes = _read_model(directory)
        hasher = blake3.blake3(model_bytes)
        hasher.update(meta_bytes)
        background = None
        if meta.get("background") is not None:
            background_path = directory / str(meta["background"])
            if background_path.parent != directory or not background_path.is_file():
                raise InvalidError(
                    f"{source}: background must name a .npy file in {directory}",
                    field="background",
                )
            raw = background_path.read_bytes()
            hasher.update(raw)
            with background_path.open("rb") as handle:
                background = _background(np.load(handle, allow_pickle=False), len(names), source)
        outputs = meta.get("output_names")
        return LoadedModel(
            name=name,
            version=version,
            model=model,
            feature_names=tuple(map(str, names)),
            feature_types=_feature_types(meta.get("feature_types"), len(names), source),
            output_names=None if outputs is None else tuple(map(str, outputs)),
            background=background,
            content_hash=hasher.hexdigest(),
        )
