"""Fixtures for A/B testing: an engine on each database and a canary spec."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from synapsenet.core.db import Database
from synapsenet.services.abtesting.engine import ABTestingEngine
from synapsenet.services.abtesting.models import (
    ExperimentSpec,
    MetricDefinition,
    MetricDirection,
    MetricKind,
    RampStep,
    TrafficAllocationStrategy,
    Variant,
)


@pytest.fixture
def engine(db: Database) -> ABTestingEngine:
    """An engine on the parametrized database (SQLite and PostgreSQL)."""
    return ABTestingEngine(db, route_ttl=0.0)


def canary_spec(
    name: str = "fraud-canary",
    *,
    canary_weight: str = "0.1",
    strategy: TrafficAllocationStrategy = TrafficAllocationStrategy.PERCENTAGE_SPLIT,
    ramp: tuple[RampStep, ...] = (),
) -> ExperimentSpec:
    """A control/canary experiment with a conversion metric and an error-rate guardrail."""
    return ExperimentSpec(
        name=name,
        model_name="fraud",
        variants=(
            Variant("control", "v1", Decimal(1) - Decimal(canary_weight), is_control=True),
            Variant("canary", "v2", Decimal(canary_weight)),
        ),
        metrics=(
            MetricDefinition("conversion", MetricKind.BINARY),
            MetricDefinition(
                "error",
                MetricKind.BINARY,
                MetricDirection.LOWER_IS_BETTER,
                guardrail=True,
                allowed_degradation=0.1,
                hard_threshold=0.05,
                min_samples=200,
            ),
            MetricDefinition("latency_ms", MetricKind.CONTINUOUS, MetricDirection.LOWER_IS_BETTER),
        ),
        strategy=strategy,
        ramp=ramp,
    )


def ramp_steps() -> tuple[RampStep, ...]:
    """5% -> 20% -> 50% with small minimums."""
    return (
        RampStep(Decimal("0.05"), timedelta(minutes=10), 100),
        RampStep(Decimal("0.2"), timedelta(minutes=10), 100),
        RampStep(Decimal("0.5"), timedelta(minutes=10), 100),
    )
