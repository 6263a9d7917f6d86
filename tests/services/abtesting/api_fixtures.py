"""Request bodies shared by the A/B testing API and CLI tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def spec_body(
    name: str = "fraud-canary",
    *,
    canary_weight: str = "0.1",
    consecutive_breaches: int = 2,
    cooldown_seconds: float = 30.0,
    **overrides: Any,
) -> dict[str, Any]:
    """A control/canary experiment as the API takes it: conversion, latency, error guardrail."""
    control_weight = str(Decimal(1) - Decimal(canary_weight))
    body: dict[str, Any] = {
        "name": name,
        "model_name": "fraud",
        "variants": [
            {
                "name": "control",
                "model_version": "v1",
                "weight": control_weight,
                "is_control": True,
            },
            {"name": "canary", "model_version": "v2", "weight": canary_weight},
        ],
        "metrics": [
            {"name": "conversion", "kind": "binary"},
            {"name": "latency_ms", "kind": "continuous", "direction": "lower"},
            {
                "name": "error",
                "kind": "binary",
                "direction": "lower",
                "guardrail": True,
                "allowed_degradation": 0.1,
                "min_samples": 100,
            },
        ],
        "rollback_policy": {
            "consecutive_breaches": consecutive_breaches,
            "cooldown_seconds": cooldown_seconds,
        },
    }
    body.update(overrides)
    return body


def observation(
    event_id: str,
    variant: str,
    metric: str | None = None,
    value: float | None = None,
    *,
    time: datetime | None = None,
) -> dict[str, Any]:
    """One observation in its JSON form (aware UTC time unless given)."""
    data: dict[str, Any] = {
        "event_id": event_id,
        "unit_id": f"u-{event_id}",
        "variant": variant,
        "time": (time or datetime.now(UTC)).isoformat(),
    }
    if metric is not None:
        data["metric"] = metric
        data["value"] = value
    return data


def binary_outcomes(
    prefix: str, variant: str, metric: str, *, n: int, successes: int
) -> list[dict[str, Any]]:
    """``n`` outcomes of a binary metric, ``successes`` of them 1, spread evenly."""
    step = n / successes if successes else 0
    hits = {round(i * step) for i in range(successes)}
    return [
        observation(f"{prefix}-{variant}-{metric}-{i}", variant, metric, 1.0 if i in hits else 0.0)
        for i in range(n)
    ]


def exposures(prefix: str, variant: str, n: int) -> list[dict[str, Any]]:
    """``n`` bare exposures of a variant."""
    return [observation(f"{prefix}-{variant}-x-{i}", variant) for i in range(n)]
