"""Serialising models safely, by flavour, and reading them back.

- ``sklearn``: a skops archive. Reading it lists the types it would build, and only types
  from scikit-learn, NumPy and SciPy (and the builtins skops itself trusts) are allowed;
  an archive naming anything else is refused, never loaded.
- ``xgboost``: the native UBJSON model (JSON accepted on upload). A model saved from the
  scikit-learn wrapper comes back as ``XGBClassifier`` or ``XGBRegressor``.
- ``lightgbm``: the native text model, read back as a ``lightgbm.Booster``.
- ``pickle``: only for artifacts the uploader marked trusted; the registry refuses the
  flavour otherwise, before any byte is unpickled.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from typing import Any

from synapsenet.errors import InvalidError
from synapsenet.services.registry.models import ModelFlavor

__all__ = [
    "SKOPS_TRUSTED_MODULES",
    "UntrustedArtifactError",
    "deserialize",
    "detect_flavor",
    "serialize",
    "sklearn_untrusted_types",
]

SKOPS_TRUSTED_MODULES = ("sklearn", "numpy", "scipy")
"""Top-level modules whose types a scikit-learn skops archive may build."""


class UntrustedArtifactError(InvalidError):
    """An artifact that would run or build code outside what its flavour allows (HTTP 422)."""

    code = "untrusted-artifact"
    title = "Untrusted model artifact"


def _top_module(obj: object) -> str:
    return type(obj).__module__.split(".", 1)[0]


def detect_flavor(model: object) -> ModelFlavor:
    """The safe flavour a fitted model is saved in.

    Raises:
        InvalidError: The model is none of scikit-learn, XGBoost or LightGBM (register its
            pickle with ``register_version(..., flavor="pickle", trusted=True)`` instead).
    """
    module = _top_module(model)
    if module == "xgboost":
        return ModelFlavor.XGBOOST
    if module == "lightgbm":
        return ModelFlavor.LIGHTGBM
    if module == "sklearn":
        return ModelFlavor.SKLEARN
    from sklearn.base import BaseEstimator

    if isinstance(model, BaseEstimator):
        return ModelFlavor.SKLEARN
    raise InvalidError(
        f"cannot save a {type(model).__module__}.{type(model).__name__} in a safe format "
        "(scikit-learn, XGBoost or LightGBM); pass trusted=True to store it as a pickle",
        field="model",
    )


def serialize(model: object, flavor: ModelFlavor) -> bytes:
    """The artifact bytes of ``model`` in ``flavor``.

    Raises:
        InvalidError: The model does not fit the flavour, or a scikit-learn model holds
            types outside scikit-learn, NumPy and SciPy.
    """
    if flavor is ModelFlavor.SKLEARN:
        import skops.io

        data = skops.io.dumps(model)
        sklearn_untrusted_types(data)
        return bytes(data)
    if flavor is ModelFlavor.XGBOOST:
        return _xgboost_bytes(model)
    if flavor is ModelFlavor.LIGHTGBM:
        booster = getattr(model, "booster_", model)
        if _top_module(booster) != "lightgbm" or not hasattr(booster, "model_to_string"):
            raise InvalidError("a lightgbm artifact needs a fitted LightGBM model", field="model")
        return str(booster.model_to_string()).encode("utf-8")
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def _xgboost_bytes(model: object) -> bytes:
    if _top_module(model) != "xgboost" or not hasattr(model, "save_model"):
        raise InvalidError("an xgboost artifact needs a fitted XGBoost model", field="model")
    # save_model keeps the scikit-learn wrapper's attributes (estimator type, classes).
    with tempfile.TemporaryDirectory(prefix="synapsenet-xgb-") as tmp:
        path = os.path.join(tmp, "model.ubj")
        model.save_model(path)
        with open(path, "rb") as handle:
            return handle.read()


def sklearn_untrusted_types(data: bytes) -> list[str]:
    """The types a skops archive builds beyond skops' defaults, all within the allowed modules.

    Returns:
        The extra types to trust when loading it.

    Raises:
        UntrustedArtifactError: The archive is not a skops file, or names a type outside
            :data:`SKOPS_TRUSTED_MODULES`.
    """
    import skops.io

    try:
        untrusted = list(skops.io.get_untrusted_types(data=data))
    except Exception as exc:
        raise UntrustedArtifactError(
            f"the sklearn artifact is not a readable skops archive: {exc}", field="artifact"
        ) from None
    refused = sorted(t for t in untrusted if t.split(".", 1)[0] not in SKOPS_TRUSTED_MODULES)
    if refused:
        raise UntrustedArtifactError(
            f"the sklearn artifact would build types outside scikit-learn, NumPy and SciPy: "
            f"{', '.join(refused)}; it is not loaded",
            field="artifact",
            types=refused,
        )
    return untrusted


def deserialize(data: bytes, flavor: ModelFlavor) -> object:
    """The model an artifact holds (callers check its hash and trust first).

    Raises:
        InvalidError: The bytes are not a model of that flavour.
        UntrustedArtifactError: A skops archive names types outside the allowed modules.
    """
    try:
        if flavor is ModelFlavor.SKLEARN:
            import skops.io

            trusted = sklearn_untrusted_types(data)
            return skops.io.loads(data, trusted=trusted)
        if flavor is ModelFlavor.XGBOOST:
            return _load_xgboost(data)
        if flavor is ModelFlavor.LIGHTGBM:
            import lightgbm

            return lightgbm.Booster(model_str=data.decode("utf-8"))
        # The registry only reaches this for versions registered as trusted.
        return pickle.loads(data)  # noqa: S301
    except InvalidError:
        raise
    except Exception as exc:
        raise InvalidError(
            f"the artifact is not a readable {flavor.value} model: {type(exc).__name__}: {exc}",
            field="artifact",
        ) from None


def _load_xgboost(data: bytes) -> object:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    wrapper = _sklearn_wrapper(booster.attr("scikit_learn"))
    if wrapper is None:
        return booster
    model: Any = wrapper()
    model.load_model(bytearray(data))
    return model


def _sklearn_wrapper(attribute: str | None) -> type[Any] | None:
    if not attribute:
        return None
    import xgboost

    try:
        estimator_type = json.loads(attribute).get("_estimator_type")
    except (json.JSONDecodeError, AttributeError):
        return None
    if estimator_type == "classifier":
        return xgboost.XGBClassifier
    if estimator_type == "regressor":
        return xgboost.XGBRegressor
    return None


def load_npy(data: bytes) -> Any:
    """A ``.npy`` array read without pickle."""
    import numpy as np

    return np.load(io.BytesIO(data), allow_pickle=False)
