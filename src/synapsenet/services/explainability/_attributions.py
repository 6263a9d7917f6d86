"""Raw attributions become typed, checked matrices here, in one place.

Every public method of :class:`~.aggregation.FeatureImportanceAggregator` accepts one
explanation, several (stacked along instances), or raw arrays; this module validates them
once into :class:`Attributions`, and checks parameters with scikit-learn's message format:
"The 'output' parameter of FeatureImportanceAggregator must be an int >= 0. Got -1 instead."
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, SupportsIndex

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.models import (
    AggregationMethod,
    Explanation,
    FloatArray,
)

INTERACTION_VALUES_EXTRA: Final = "interaction_values"
"""Key of ``Explanation.extras`` holding ``(n, M, M, K)`` SHAP interaction values."""

OWNER: Final = "FeatureImportanceAggregator"


def invalid(name: str, requirement: str, value: object, owner: str = OWNER) -> InvalidError:
    """The error for a parameter that breaks its contract, naming it in ``field``."""
    return InvalidError(
        f"The '{name}' parameter of {owner} must be {requirement}. Got {value!r} instead.",
        field=name,
    )


def check_int(value: object, name: str, minimum: int, owner: str = OWNER) -> int:
    """``value`` as an int if it is an integer (not a bool) at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise invalid(name, f"an int >= {minimum}", value, owner)
    number = value.__index__()
    if number < minimum:
        raise invalid(name, f"an int >= {minimum}", value, owner)
    return number


def check_open_unit(value: object, name: str) -> float:
    """``value`` as a float if it lies strictly between 0 and 1."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.0 < float(value) < 1.0
    ):
        raise invalid(name, "a float in (0, 1)", value)
    return float(value)


def coerce_method(value: object) -> AggregationMethod:
    """``value`` as an :class:`AggregationMethod`, accepting its string value."""
    if isinstance(value, AggregationMethod):
        return value
    if isinstance(value, str) and value in AggregationMethod._value2member_map_:
        return AggregationMethod(value)
    options = ", ".join(repr(member.value) for member in AggregationMethod)
    raise invalid("method", f"one of {options}", value)


@dataclass(frozen=True)
class Attributions:
    """Attributions gathered from any accepted source, validated once."""

    values: FloatArray
    """``(n, M, K)``."""
    feature_names: tuple[str, ...]
    interaction_values: FloatArray | None
    """``(n, M, M, K)`` when every source carried them."""

    def output(self, output: object) -> FloatArray:
        """The ``(n, M)`` attributions of one output."""
        index = check_int(output, "output", 0)
        if index >= self.values.shape[2]:
            raise invalid("output", f"an int < {self.values.shape[2]} (n_outputs)", output)
        return np.ascontiguousarray(self.values[:, :, index])


def _as_values_array(raw: object, name: str) -> FloatArray:
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise invalid(name, "an array of numbers", type(raw).__name__) from exc
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise invalid(name, "a non-empty (n, M) or (n, M, K) array", array.shape)
    return array


def gather(source: object, feature_names: Sequence[str] | None) -> Attributions:
    """Validate any accepted source into one :class:`Attributions`."""
    if isinstance(source, Explanation):
        source = [source]
    if isinstance(source, Sequence) and source and isinstance(source[0], Explanation):
        explanations = list(source)
        if not all(isinstance(item, Explanation) for item in explanations):
            raise invalid("explanations", "a sequence of Explanation only", source)
        if feature_names is not None:
            raise invalid("feature_names", "None when explanations carry their names", "...")
        first = explanations[0]
        for item in explanations[1:]:
            if item.feature_names != first.feature_names or item.n_outputs != first.n_outputs:
                raise InvalidError(
                    "Explanations aggregated together must share feature names and outputs; "
                    f"got {item.feature_names} x {item.n_outputs} after "
                    f"{first.feature_names} x {first.n_outputs}.",
                    field="explanations",
                )
        values = _as_values_array(np.concatenate([e.values for e in explanations]), "values")
        names = first.feature_names
        interactions = None
        if all(INTERACTION_VALUES_EXTRA in e.extras for e in explanations):
            interactions = np.concatenate(
                [interaction_array(e.extras[INTERACTION_VALUES_EXTRA]) for e in explanations]
            )
    else:
        values = _as_values_array(source, "explanations")
        n_features = values.shape[1]
        if feature_names is None:
            names = tuple(f"feature_{j}" for j in range(n_features))
        else:
            names = tuple(str(name) for name in feature_names)
            if len(names) != n_features:
                raise invalid("feature_names", f"{n_features} names", len(names))
        interactions = None
    if not np.all(np.isfinite(values)):
        raise InvalidError("Attributions must be finite; found NaN or infinity.", field="values")
    if len(names) != values.shape[1]:
        raise InvalidError(
            f"{len(names)} feature names for {values.shape[1]} features.", field="feature_names"
        )
    if interactions is not None and interactions.shape[:2] != values.shape[:2]:
        raise InvalidError(
            f"Interaction values of shape {interactions.shape} do not match attributions of "
            f"shape {values.shape}.",
            field="interaction_values",
        )
    return Attributions(values, names, interactions)


def interaction_array(raw: object) -> FloatArray:
    """``(n, M, M)`` or ``(n, M, M, K)`` interaction values as a 4-D float array."""
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[1] != array.shape[2] or 0 in array.shape:
        raise invalid("interaction_values", "an (n, M, M) or (n, M, M, K) array", array.shape)
    if not np.all(np.isfinite(array)):
        raise InvalidError("Interaction values must be finite.", field="interaction_values")
    return array


def names_for(
    n_features: int, feature_names: Sequence[str] | None, attributions: Attributions | None
) -> tuple[str, ...]:
    """Names of the features of raw interaction values."""
    if attributions is not None:
        names = attributions.feature_names
    elif feature_names is None:
        names = tuple(f"feature_{j}" for j in range(n_features))
    else:
        names = tuple(str(name) for name in feature_names)
    if len(names) != n_features:
        raise invalid("feature_names", f"{n_features} names", len(names))
    return names


def feature_matrix(X: npt.ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:  # noqa: N803
    """Feature values for the dependence heuristic, checked against the attributions."""
    if X is None:
        raise InvalidError(
            "Without interaction values, interactions() needs the feature values X to "
            "measure SHAP dependence.",
            field="X",
        )
    try:
        matrix = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise invalid("X", "an (n, M) array of numbers", type(X).__name__) from exc
    if matrix.shape != shape[:2]:
        raise invalid("X", f"an array of shape {shape[:2]}", matrix.shape)
    if not np.all(np.isfinite(matrix)):
        raise InvalidError("Feature values X must be finite for the dependence heuristic.")
    return matrix
