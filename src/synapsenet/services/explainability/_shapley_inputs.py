"""Inputs of the model-agnostic Shapley estimators: parameter checks, links and model calls.

The estimators (:mod:`.exact`, :mod:`.kernel_shap`, :mod:`.interactions`) work on a plain
vectorised model function ``f(X) -> outputs`` of shape ``(n, K)``. Everything that can go
wrong at that boundary (a bad parameter, a model returning the wrong shape or NaN) is caught
here, with messages in scikit-learn's format: "The 'n_samples' parameter of KernelSHAP must
be an int >= 1. Got -3 instead."
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, SupportsIndex, TypeAlias

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.models import FloatArray

ModelFunction: TypeAlias = Callable[[FloatArray], npt.ArrayLike]
"""A vectorised model: rows ``(n, M)`` in, outputs ``(n, K)`` (or ``(n,)``) out."""

Link: TypeAlias = Literal["identity", "logit"]

LINKS: tuple[Link, ...] = ("identity", "logit")

LOGIT_CLIP = 1e-7
"""Probabilities are clipped to ``[LOGIT_CLIP, 1 - LOGIT_CLIP]`` before the logit."""

DEFAULT_BATCH_SIZE = 65_536
"""Rows per model call: 65,536 rows of 30 float64 features are 15 MB of masked data."""


def invalid(name: str, owner: str, requirement: str, value: object) -> InvalidError:
    """Build the error for a parameter that breaks its contract.

    Args:
        name: The parameter's name.
        owner: The class or function the parameter belongs to.
        requirement: What the value must be, e.g. "an int >= 1".
        value: The offending value.

    Returns:
        An :class:`InvalidError` naming the parameter in ``field``.
    """
    return InvalidError(
        f"The '{name}' parameter of {owner} must be {requirement}. Got {value!r} instead.",
        field=name,
    )


def check_int(value: object, name: str, owner: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer at least ``minimum``.

    Accepts numpy integers (anything with ``__index__``) but not bools or floats.

    Raises:
        InvalidError: If ``value`` is not an integer >= ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise invalid(name, owner, f"an int >= {minimum}", value)
    number = value.__index__()
    if number < minimum:
        raise invalid(name, owner, f"an int >= {minimum}", value)
    return number


def check_link(value: object, owner: str) -> Link:
    """Return ``value`` if it names a supported link.

    Raises:
        InvalidError: If ``value`` is not ``"identity"`` or ``"logit"``.
    """
    for link in LINKS:
        if value == link:
            return link
    raise invalid("link", owner, "'identity' or 'logit'", value)


def apply_link(outputs: FloatArray, link: Link) -> FloatArray:
    """Map model outputs to the scale the attributions add up on.

    Args:
        outputs: Model outputs (probabilities for the logit link).
        link: ``"identity"`` leaves them alone; ``"logit"`` applies ``log(p / (1 - p))``.

    Returns:
        The outputs on the link scale, same shape.
    """
    if link == "identity":
        return outputs
    clipped = np.clip(outputs, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.asarray(np.log(clipped) - np.log1p(-clipped), dtype=np.float64)


def as_rows(data: npt.ArrayLike, name: str, owner: str) -> FloatArray:
    """Return ``data`` as a 2-D float64 array of rows (a 1-D input is one row).

    Raises:
        InvalidError: If ``data`` is not numeric, has no rows or no columns, or more than
            two dimensions.
    """
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise invalid(name, owner, "a numeric 2-D array", type(data).__name__) from error
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise invalid(name, owner, "a non-empty 2-D array", f"shape {array.shape}")
    return array


def call_model(f: ModelFunction, data: FloatArray, n_outputs: int | None = None) -> FloatArray:
    """Evaluate the model on ``data`` and check what comes back.

    Args:
        f: The vectorised model.
        data: Rows to evaluate, ``(n, M)``.
        n_outputs: The output count seen on an earlier call, to check consistency.

    Returns:
        Outputs as float64, shape ``(n, K)``.

    Raises:
        InvalidError: If the outputs are not ``(n,)`` or ``(n, K)``, change width between
            calls, or contain NaN or infinity.
    """
    outputs = np.asarray(f(data), dtype=np.float64)
    if outputs.ndim == 1:
        outputs = outputs.reshape(-1, 1)
    if outputs.ndim != 2 or outputs.shape[0] != data.shape[0]:
        raise InvalidError(
            f"The model must return one row of outputs per input row: {data.shape[0]} rows "
            f"in, shape {outputs.shape} out.",
            field="f",
        )
    if n_outputs is not None and outputs.shape[1] != n_outputs:
        raise InvalidError(
            f"The model returned {outputs.shape[1]} outputs per row after {n_outputs} on an "
            "earlier call.",
            field="f",
        )
    if not np.all(np.isfinite(outputs)):
        raise InvalidError(
            "The model returned NaN or infinite outputs; check for missing values the model "
            "cannot take.",
            field="f",
        )
    return outputs


def default_names(prefix: str, count: int) -> tuple[str, ...]:
    """Names ``prefix0 .. prefix{count-1}``, used when the caller names nothing."""
    return tuple(f"{prefix}{i}" for i in range(count))


def check_names(
    names: Sequence[str] | None, count: int, name: str, owner: str, prefix: str
) -> tuple[str, ...]:
    """Return ``names`` as a tuple of ``count`` strings, or default names when None.

    Raises:
        InvalidError: If the number of names is not ``count``.
    """
    if names is None:
        return default_names(prefix, count)
    result = tuple(str(n) for n in names)
    if len(result) != count:
        raise invalid(name, owner, f"a sequence of {count} names", f"{len(result)} names")
    return result


def resolve_output_names(names: Sequence[str] | None, count: int, owner: str) -> tuple[str, ...]:
    """Output names: ``("output",)`` for one output, ``output_0 ..`` for several."""
    if names is None and count == 1:
        return ("output",)
    return check_names(names, count, "output_names", owner, "output_")
