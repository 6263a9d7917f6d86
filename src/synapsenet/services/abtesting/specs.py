"""Experiment specs: validation as a whole, and the allocation each spec starts from."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.assignment import build_layout, validate_variant_weights
from synapsenet.services.abtesting.models import ExperimentSpec, TrafficAllocationStrategy
from synapsenet.services.abtesting.ramping import RampSchedule


def initial_allocation(spec: ExperimentSpec) -> tuple[tuple[Decimal, ...], Decimal]:
    """Effective weights and treatment share when an experiment starts.

    A ramp starts at its first step's share, split among treatments in proportion to their
    target weights; every other strategy starts at the target weights.
    """
    weights = tuple(v.weight for v in spec.variants)
    control = next(i for i, v in enumerate(spec.variants) if v.is_control)
    target_share = 1 - weights[control]
    if spec.strategy is not TrafficAllocationStrategy.RAMPING:
        return weights, target_share
    share = spec.ramp[0].traffic
    return ramp_allocation(weights, control, share), share


def ramp_allocation(
    weights: Sequence[Decimal], control: int, share: Decimal
) -> tuple[Decimal, ...]:
    """Weights at treatment share ``share``: exactly the buckets the layout gives each arm."""
    layout = build_layout(weights, control, treatment_share=share)
    return layout.effective_weights()


def validate_spec(spec: ExperimentSpec) -> None:
    """Check a spec as a whole, naming the field at fault.

    Raises:
        InvalidError: On the first inconsistency found.
    """
    if not spec.name or len(spec.name) > 200:
        raise InvalidError("experiment name must have 1 to 200 characters", field="name")
    if not spec.model_name:
        raise InvalidError("experiment needs the model it tests", field="model_name")
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names) or not all(names):
        raise InvalidError(f"variant names must be unique and non-empty: {names}", field="variants")
    validate_variant_weights(
        [v.weight for v in spec.variants], [v.is_control for v in spec.variants]
    )
    metric_names = [m.name for m in spec.metrics]
    if len(set(metric_names)) != len(metric_names):
        raise InvalidError(f"metric names must be unique: {metric_names}", field="metrics")
    if not isinstance(spec.coverage, Decimal) or not 0 < spec.coverage <= 1:
        raise InvalidError(
            f"coverage must be a Decimal in (0, 1]. Got {spec.coverage!r} instead.",
            field="coverage",
        )
    if spec.strategy is TrafficAllocationStrategy.RAMPING:
        if not spec.ramp:
            raise InvalidError("a ramping experiment needs ramp steps", field="ramp")
        RampSchedule(spec.ramp)
    elif spec.ramp:
        raise InvalidError(
            f"ramp steps are only for the ramping strategy, not {spec.strategy.value}",
            field="ramp",
        )
    if spec.strategy.is_bandit:
        if spec.bandit is None:
            raise InvalidError(f"{spec.strategy.value} needs bandit settings", field="bandit")
        if spec.bandit.reward_metric not in metric_names:
            raise InvalidError(
                f"bandit reward metric {spec.bandit.reward_metric!r} is not among the "
                f"experiment's metrics {metric_names}",
                field="bandit",
            )
