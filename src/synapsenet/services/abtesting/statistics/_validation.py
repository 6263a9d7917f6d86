"""Parameter checks shared by the statistics modules, with one message format.

Messages follow scikit-learn's: "The 'alpha' parameter of StatisticalAnalyzer must be a
float in (0, 1). Got 1.5 instead." They are for programmer mistakes only; degenerate data
never reaches these checks (it becomes a result code instead).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import SupportsIndex, TypeGuard, TypeVar

from synapsenet.errors import InvalidError

E = TypeVar("E", bound=StrEnum)


def invalid(name: str, owner: str, requirement: str, value: object) -> InvalidError:
    """Build the error for a parameter that breaks its contract.

    Args:
        name: The parameter's name.
        owner: The class or function the parameter belongs to.
        requirement: What the value must be, e.g. "a float in (0, 1)".
        value: The offending value.

    Returns:
        An :class:`InvalidError` naming the parameter in ``field``.
    """
    return InvalidError(
        f"The '{name}' parameter of {owner} must be {requirement}. Got {value!r} instead.",
        field=name,
    )


def _is_real(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass, but True as a probability is always a mistake.
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_unit_interval(value: object, name: str, owner: str) -> float:
    """Return ``value`` as a float if it lies in the open interval (0, 1).

    Raises:
        InvalidError: If ``value`` is not a real number strictly between 0 and 1.
    """
    if not _is_real(value) or not 0.0 < float(value) < 1.0:
        raise invalid(name, owner, "a float in (0, 1)", value)
    return float(value)


def check_probability(value: object, name: str, owner: str) -> float:
    """Return ``value`` as a float if it lies in the closed interval [0, 1].

    Raises:
        InvalidError: If ``value`` is not a real number in [0, 1].
    """
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise invalid(name, owner, "a float in [0, 1]", value)
    return float(value)


def check_positive(value: object, name: str, owner: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is finite and positive (or zero when allowed).

    Raises:
        InvalidError: If ``value`` is not a finite real number above (or at) zero.
    """
    requirement = "a finite float >= 0" if allow_zero else "a finite float > 0"
    if not _is_real(value) or not math.isfinite(value):
        raise invalid(name, owner, requirement, value)
    if value < 0.0 or (value == 0.0 and not allow_zero):
        raise invalid(name, owner, requirement, value)
    return float(value)


def check_finite(value: object, name: str, owner: str) -> float:
    """Return ``value`` as a float if it is a finite real number.

    Raises:
        InvalidError: If ``value`` is not a finite real number.
    """
    if not _is_real(value) or not math.isfinite(float(value)):
        raise invalid(name, owner, "a finite float", value)
    return float(value)


def check_count(value: object, name: str, owner: str, *, minimum: int = 0) -> int:
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


def coerce_enum(enum: type[E], value: object, name: str, owner: str) -> E:
    """Return ``value`` as a member of ``enum``, accepting the member's string value.

    Raises:
        InvalidError: If ``value`` names no member of ``enum``.
    """
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    options = ", ".join(repr(member.value) for member in enum)
    raise invalid(name, owner, f"one of {options}", value)
