"""The input contract every explainer shares: parameters, instances, backgrounds, accuracy.

Raw user input (numpy arrays, pandas or polars frames, nested lists) becomes a 2-D float64
matrix here, in one place, so the algorithms only ever see typed, checked matrices. Messages
follow scikit-learn's: "The 'n_samples' parameter of SHAPExplainer must be an int >= 1. Got
-3 instead." Every check raises :class:`~synapsenet.errors.InvalidError` naming the field.

The local-accuracy check (values + base = prediction) also lives here, because every SHAP
algorithm must pass it and the tolerance it uses is part of the contract.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, SupportsIndex

import numpy as np

from synapsenet.errors import InvalidError, SynapseNetError

from .models import FloatArray


def invalid_parameter(name: str, owner: str, requirement: str, value: object) -> InvalidError:
    """Build the error for a parameter that breaks its contract.

    Args:
        name: The parameter's name.
        owner: The class or function the parameter belongs to.
        requirement: What the value must be, e.g. "an int >= 1".
        value: The offending value.

    Returns:
        An :class:`InvalidError` whose ``field`` is ``name``.
    """
    return InvalidError(
        f"The '{name}' parameter of {owner} must be {requirement}. Got {value!r} instead.",
        field=name,
    )


def check_choice(value: object, name: str, owner: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``.

    Raises:
        InvalidError: If ``value`` is not one of the allowed strings.
    """
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(choice) for choice in choices)
        raise invalid_parameter(name, owner, f"one of {options}", value)
    return value


def check_int(value: object, name: str, owner: str, *, minimum: int) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``.

    Numpy integers are accepted; bools and floats are not (``True`` samples is a mistake).

    Raises:
        InvalidError: If ``value`` is not an integer >= ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise invalid_parameter(name, owner, f"an int >= {minimum}", value)
    number = value.__index__()
    if number < minimum:
        raise invalid_parameter(name, owner, f"an int >= {minimum}", value)
    return number


def check_optional_positive(value: object, name: str, owner: str) -> float | None:
    """Return ``value`` as a float if it is a finite number > 0, or None if it is None.

    Raises:
        InvalidError: If ``value`` is neither None nor a finite positive number.
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating | np.integer)
        or not np.isfinite(float(value))
        or float(value) <= 0.0
    ):
        raise invalid_parameter(name, owner, "a finite float > 0 or None", value)
    return float(value)


# ---------------------------------------------------------------------- matrices


def feature_names_of(data: object) -> tuple[str, ...] | None:
    """The column names of a pandas or polars frame, or None for anything else.

    Args:
        data: Instances or a background, in any accepted form.

    Returns:
        The names as strings, in column order, or None when ``data`` has no column names.
    """
    columns = getattr(data, "columns", None)
    if columns is None or isinstance(data, np.ndarray):
        return None
    return tuple(str(column) for column in columns)


def _to_numpy(data: object, name: str, owner: str) -> np.ndarray[Any, Any]:
    if hasattr(data, "to_numpy") and not isinstance(data, np.ndarray):
        # pandas and polars frames both offer to_numpy; non-numeric columns come back as
        # object arrays and are rejected below with the offending column named.
        _reject_non_numeric_columns(data, name, owner)
        converted: np.ndarray[Any, Any] = np.asarray(data.to_numpy())
        return converted
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as error:
        raise InvalidError(
            f"The '{name}' parameter of {owner} must be a 2-D array-like of numbers. "
            f"Got {type(data).__name__} instead.",
            field=name,
        ) from error


def _reject_non_numeric_columns(frame: Any, name: str, owner: str) -> None:
    dtypes = getattr(frame, "dtypes", None)
    columns = getattr(frame, "columns", None)
    if dtypes is None or columns is None:
        return
    for column, dtype in zip(columns, dtypes, strict=False):
        numpy_dtype = getattr(dtype, "numpy_dtype", dtype)
        try:
            numeric = np.issubdtype(np.dtype(numpy_dtype), np.number) or np.issubdtype(
                np.dtype(numpy_dtype), np.bool_
            )
        except TypeError:
            # pandas categoricals and polars types have no numpy dtype at all.
            numeric = str(dtype).lower().startswith(("int", "uint", "float", "bool"))
        if not numeric:
            raise InvalidError(
                f"The '{name}' parameter of {owner} must hold numeric columns only; "
                f"column {str(column)!r} has dtype {dtype}. Encode categorical features as "
                "numbers before explaining.",
                field=name,
            )


def as_matrix(data: object, name: str, owner: str) -> FloatArray:
    """Convert instances in any accepted form to a 2-D float64 matrix.

    A single 1-D row becomes a one-row matrix, as in shap.

    Args:
        data: A numpy array, a pandas or polars frame, or a nested sequence of numbers.
        name: The parameter's name, for messages.
        owner: The class or function receiving it, for messages.

    Returns:
        A C-contiguous float64 array of shape ``(n_rows, n_features)``.

    Raises:
        InvalidError: If ``data`` is not numeric or not one- or two-dimensional.
    """
    array = _to_numpy(data, name, owner)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidError(
            f"The '{name}' parameter of {owner} must be a 2-D array (rows x features). "
            f"Got an array of shape {array.shape} instead.",
            field=name,
        )
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidError(
                f"The '{name}' parameter of {owner} must contain numbers only. "
                f"Got dtype {array.dtype} instead.",
                field=name,
            ) from error
    return np.ascontiguousarray(array, dtype=np.float64)


def align_columns(data: object, expected: Sequence[str] | None, *, name: str, owner: str) -> object:
    """Put a frame's columns in the model's order, matching them by name.

    A model fitted on a DataFrame knows its features by name; a frame with the same columns
    in another order must not be explained position by position (every attribution would
    land on the wrong feature). Arrays and frames without names pass through unchanged.

    Args:
        data: Instances or a background.
        expected: The model's feature names, or None when it has none.
        name: The parameter's name, for messages.
        owner: The class or function receiving it, for messages.

    Returns:
        ``data``, reordered if it is a frame whose columns are a permutation of ``expected``.

    Raises:
        InvalidError: If the frame's column names are not the model's feature names.
    """
    columns = feature_names_of(data)
    if columns is None or expected is None:
        return data
    wanted = tuple(str(column) for column in expected)
    if columns == wanted:
        return data
    missing = [column for column in wanted if column not in columns]
    unexpected = [column for column in columns if column not in wanted]
    if missing or unexpected or len(columns) != len(wanted):
        raise InvalidError(
            f"The '{name}' parameter of {owner} must have the model's feature columns. "
            f"Missing: {missing}; unexpected: {unexpected}.",
            field=name,
        )
    frame: Any = data
    return frame[list(wanted)]


def validate_instances(
    data: object,
    n_features: int | None,
    allow_nan: bool,
    *,
    name: str = "X",
    owner: str = "SHAPExplainer.explain",
    allow_empty: bool = False,
) -> FloatArray:
    """Check instances to explain (or a background) and return them as a float64 matrix.

    Args:
        data: The instances, in any form :func:`as_matrix` accepts.
        n_features: The feature count the model expects, or None when it is unknown.
        allow_nan: Whether the model accepts missing values (NaN) in its input.
        name: The parameter's name, for messages.
        owner: The class or function receiving it, for messages.
        allow_empty: Whether zero rows are acceptable.

    Returns:
        The instances as a ``(n_rows, n_features)`` float64 matrix.

    Raises:
        InvalidError: On the wrong feature count, no rows, infinities, or NaN that the model
            cannot take; the message names the parameter and the first offending row.
    """
    matrix = as_matrix(data, name, owner)
    if matrix.shape[0] == 0 and not allow_empty:
        raise InvalidError(
            f"The '{name}' parameter of {owner} must have at least one row. Got 0 rows instead.",
            field=name,
        )
    if n_features is not None and matrix.shape[1] != n_features:
        raise InvalidError(
            f"The '{name}' parameter of {owner} must have {n_features} features (columns), "
            f"as the model does. Got {matrix.shape[1]} instead.",
            field=name,
        )
    if np.isinf(matrix).any():
        row = int(np.argwhere(np.isinf(matrix))[0, 0])
        raise InvalidError(
            f"The '{name}' parameter of {owner} must not contain infinite values "
            f"(first at row {row}).",
            field=name,
        )
    if not allow_nan:
        missing = np.isnan(matrix)
        if missing.any():
            row, column = (int(i) for i in np.argwhere(missing)[0])
            raise InvalidError(
                f"The '{name}' parameter of {owner} contains NaN (first at row {row}, feature "
                f"{column}), and this model cannot take missing values. Impute them first.",
                field=name,
            )
    return matrix


def validate_background(
    data: object,
    n_features: int | None,
    allow_nan: bool,
    *,
    owner: str = "SHAPExplainer",
) -> FloatArray:
    """Check a background dataset: at least one row, the model's features, numbers only.

    Args:
        data: The background rows, in any form :func:`as_matrix` accepts.
        n_features: The feature count the model expects, or None when it is unknown.
        allow_nan: Whether the model accepts missing values.
        owner: The class or function receiving it, for messages.

    Returns:
        The background as a float64 matrix.

    Raises:
        InvalidError: If the background is empty or breaks the instance contract.
    """
    matrix = as_matrix(data, "background", owner)
    if matrix.shape[0] == 0:
        raise InvalidError(
            f"The 'background' parameter of {owner} must have at least one row; an empty "
            "background gives no reference to attribute against. Got 0 rows instead.",
            field="background",
        )
    return validate_instances(matrix, n_features, allow_nan, name="background", owner=owner)


def resolve_feature_names(
    given: Collection[str] | None,
    *candidates: tuple[str, ...] | None,
    n_features: int,
    owner: str,
) -> tuple[str, ...]:
    """Pick the feature names: given ones, else the first candidate, else ``x0, x1, ...``.

    Args:
        given: Names the caller passed explicitly.
        *candidates: Names found elsewhere (the model, a DataFrame), in order of preference.
        n_features: How many names are needed.
        owner: The class or function receiving them, for messages.

    Returns:
        Exactly ``n_features`` names.

    Raises:
        InvalidError: If explicitly given names do not match the feature count.
    """
    if given is not None:
        names = tuple(str(name) for name in given)
        if len(names) != n_features:
            raise invalid_parameter(
                "feature_names", owner, f"a sequence of {n_features} names", list(names)
            )
        return names
    for candidate in candidates:
        if candidate is not None and len(candidate) == n_features:
            return candidate
    return tuple(f"x{i}" for i in range(n_features))


# ---------------------------------------------------------------------- local accuracy


@dataclass(frozen=True)
class AccuracyTolerance:
    """How far ``sum(values) + base`` may be from the prediction: ``atol + rtol * scale``.

    ``scale`` is ``max(1, max over rows and outputs of |base| + sum_j |values_j|)``: the
    rounding error of a sum grows with the magnitudes of its terms, not with the result, so
    large attributions that cancel still get room for their rounding (a margin built from
    float32 contributions of +-200 carries ~1e-4 of it).

    Attributes:
        atol: Absolute part.
        rtol: Part relative to the scale.
    """

    atol: float
    rtol: float

    def allowed(self, values: FloatArray, base_values: FloatArray) -> float:
        """The largest error allowed for these attributions.

        Args:
            values: Attributions, ``(n, M, K)``.
            base_values: Base values, ``(n, K)``.
        """
        if values.size == 0:
            return self.atol + self.rtol
        magnitude = np.abs(values).sum(axis=1) + np.abs(base_values)
        finite = magnitude[np.isfinite(magnitude)]
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        return self.atol + self.rtol * scale


class LocalAccuracyError(SynapseNetError):
    """An explanation whose attributions do not add up to the prediction they explain.

    This is a bug in an explainer or a model whose output the explainer misread (wrong
    output scale, wrong feature order), never bad user input, so it maps to HTTP 500.
    """

    code = "local-accuracy"
    title = "Local accuracy violated"

    def __init__(self, method: str, error: float, allowed: float, row: int, output: int) -> None:
        super().__init__(
            f"{method} explanation violates local accuracy: |sum(values) + base - prediction| "
            f"= {error:.3g} at row {row}, output {output}, above the tolerance {allowed:.3g}. "
            "The attributions do not explain this prediction; check that the model output "
            "being explained (raw margin vs probability, link) matches the explainer's.",
            error=error,
            allowed=allowed,
            row=row,
            output=output,
        )
        self.error = error
        self.allowed = allowed


def local_accuracy_error(
    values: FloatArray, base_values: FloatArray, predictions: FloatArray
) -> tuple[float, int, int]:
    """The largest ``|sum(values) + base - prediction|`` and where it occurs.

    Args:
        values: Attributions, ``(n, M, K)``.
        base_values: Base values, ``(n, K)``.
        predictions: Predictions being explained, ``(n, K)``.

    Returns:
        ``(error, row, output)``; ``(0.0, 0, 0)`` when there is nothing to compare. A NaN
        anywhere counts as an infinite error.
    """
    if values.size == 0 or predictions.size == 0:
        return 0.0, 0, 0
    gap = np.abs(values.sum(axis=1) + base_values - predictions)
    gap = np.where(np.isnan(gap), np.inf, gap)
    row, output = np.unravel_index(int(np.argmax(gap)), gap.shape)
    return float(gap[row, output]), int(row), int(output)


def check_local_accuracy(
    method: str,
    values: FloatArray,
    base_values: FloatArray,
    predictions: FloatArray,
    tolerance: AccuracyTolerance,
) -> float:
    """Measure local accuracy and raise if it is worse than the tolerance.

    Args:
        method: The algorithm's name, for the message.
        values: Attributions, ``(n, M, K)``.
        base_values: Base values, ``(n, K)``.
        predictions: Independently computed predictions, ``(n, K)``.
        tolerance: What the algorithm guarantees.

    Returns:
        The largest error observed (stored as ``Explanation.local_accuracy_error``).

    Raises:
        LocalAccuracyError: If the error exceeds ``tolerance``.
    """
    error, row, output = local_accuracy_error(values, base_values, predictions)
    allowed = tolerance.allowed(values, base_values)
    if not error <= allowed:
        raise LocalAccuracyError(method, error, allowed, row, output)
    return error
