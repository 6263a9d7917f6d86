"""Traffic weights of experiment arms: validation and exact normalization.

Weights are ``Decimal`` values that sum *exactly* to 1, so a layout built from them never
loses or gains a bucket to float rounding. :func:`normalize_weights` turns any non-negative
allocation (a bandit's posterior, say) into such weights with ``WEIGHT_DECIMALS`` places, one
bucket of :data:`~synapsenet.services.abtesting.assignment.NUM_BUCKETS` each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Final

from synapsenet.errors import InvalidError

__all__ = [
    "WEIGHT_DECIMALS",
    "normalize_weights",
    "validate_variant_weights",
    "validate_weights",
]

WEIGHT_DECIMALS: Final = 4
"""Decimal places of weights produced by :func:`normalize_weights` (one bucket each)."""

_WEIGHT_UNITS: Final = 10**WEIGHT_DECIMALS


def validate_weights(weights: Sequence[Decimal], *, field: str = "variants") -> None:
    """Check that weights are finite non-negative ``Decimal`` values summing exactly to 1.

    Args:
        weights: One weight per arm.
        field: The field named in the error.

    Raises:
        InvalidError: If any weight is not a finite ``Decimal``, is negative, or the weights do
            not sum exactly to 1.
    """
    if not weights:
        raise InvalidError("At least one weight is required. Got none.", field=field)
    for i, weight in enumerate(weights):
        if not isinstance(weight, Decimal) or not weight.is_finite():
            raise InvalidError(
                f"Weight {i} must be a finite Decimal. Got {weight!r} instead.", field=field
            )
        if weight < 0:
            raise InvalidError(f"Weight {i} must be >= 0. Got {weight} instead.", field=field)
    total = sum(weights, Decimal(0))
    if total != 1:
        raise InvalidError(f"Weights must sum exactly to 1. Got {total} instead.", field=field)


def validate_variant_weights(
    weights: Sequence[Decimal], is_control: Sequence[bool], *, field: str = "variants"
) -> int:
    """Check an experiment's variants: at least two, exactly one control, valid weights.

    Args:
        weights: Each variant's weight, in variant order.
        is_control: Each variant's control flag, in variant order.
        field: The field named in the error.

    Returns:
        The index of the control variant.

    Raises:
        InvalidError: If there are fewer than two variants, not exactly one control, or the
            weights fail :func:`validate_weights`.
    """
    if len(weights) != len(is_control):
        raise InvalidError(
            f"Got {len(weights)} weights for {len(is_control)} variants.", field=field
        )
    if len(weights) < 2:
        raise InvalidError(
            f"An experiment needs at least 2 variants. Got {len(weights)} instead.", field=field
        )
    controls = [i for i, flag in enumerate(is_control) if flag]
    if len(controls) != 1:
        raise InvalidError(
            f"Exactly one variant must be the control. Got {len(controls)} instead.", field=field
        )
    validate_weights(weights, field=field)
    return controls[0]


def normalize_weights(
    weights: Sequence[float | Decimal],
    *,
    floor: Decimal = Decimal(0),
    eligible: Sequence[bool] | None = None,
) -> tuple[Decimal, ...]:
    """Turn non-negative allocations into ``Decimal`` weights that sum exactly to 1.

    Every eligible arm first gets ``floor``; the rest of the traffic is split in proportion to
    ``weights`` among eligible arms (evenly if all of them are 0). Ineligible arms get exactly
    0. Shares are rounded to ``WEIGHT_DECIMALS`` places by largest remainder (ties to the lower
    index), computed in exact rationals so the floor and the sum hold exactly.

    Args:
        weights: Non-negative finite allocations, one per arm; need not sum to 1.
        floor: Minimum weight of each eligible arm, a multiple of ``10**-WEIGHT_DECIMALS``.
        eligible: Which arms may get traffic; all of them by default.

    Returns:
        One weight per arm, each with ``WEIGHT_DECIMALS`` places, summing exactly to 1.

    Raises:
        InvalidError: If a weight is negative or not finite, no arm is eligible, the floor is
            not a multiple of ``10**-WEIGHT_DECIMALS`` or the floors of the eligible arms
            exceed 1.
    """
    flags = [True] * len(weights) if eligible is None else list(eligible)
    if len(flags) != len(weights):
        raise InvalidError(
            f"Got {len(weights)} weights but {len(flags)} eligibility flags.", field="weights"
        )
    if not any(flags):
        raise InvalidError("At least one arm must be eligible for traffic.", field="weights")
    quotas: list[Fraction] = []
    for i, weight in enumerate(weights):
        if not math.isfinite(weight) or weight < 0:
            raise InvalidError(
                f"Weight {i} must be a finite number >= 0. Got {weight!r} instead.",
                field="weights",
            )
        quotas.append(Fraction(weight) if flags[i] else Fraction(0))
    floor_units = _floor_units(floor)
    free_units = _WEIGHT_UNITS - floor_units * sum(flags)
    if free_units < 0:
        raise InvalidError(
            f"The floor {floor} times {sum(flags)} eligible arms exceeds 1.", field="floor"
        )
    total = sum(quotas, Fraction(0))
    if total == 0:
        # Nothing to go on: split evenly rather than refuse, so a cold start still allocates.
        quotas = [Fraction(int(flag)) for flag in flags]
        total = Fraction(sum(flags))
    scaled = [q * free_units / total for q in quotas]
    units = [math.floor(s) for s in scaled]
    leftover = free_units - sum(units)
    by_remainder = sorted(range(len(scaled)), key=lambda i: (units[i] - scaled[i], i))
    for i in by_remainder[:leftover]:
        units[i] += 1
    return tuple(
        Decimal(u + (floor_units if flag else 0)).scaleb(-WEIGHT_DECIMALS)
        for u, flag in zip(units, flags, strict=True)
    )


def _floor_units(floor: Decimal) -> int:
    if not isinstance(floor, Decimal) or not floor.is_finite() or not 0 <= floor <= 1:
        raise InvalidError(f"The floor must be a Decimal in [0, 1]. Got {floor!r}.", field="floor")
    units = floor.scaleb(WEIGHT_DECIMALS)
    if units != units.to_integral_value():
        raise InvalidError(
            f"The floor must have at most {WEIGHT_DECIMALS} decimal places. Got {floor}.",
            field="floor",
        )
    return int(units)
