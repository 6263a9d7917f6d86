"""Assertions shared by the statistics tests."""

from __future__ import annotations

import dataclasses
import math


def assert_no_nan(value: object, path: str = "result") -> None:
    """Fail if any number inside ``value`` (a result dataclass, tuple...) is NaN or infinite."""
    if isinstance(value, float):
        assert math.isfinite(value), f"{path} is {value!r}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            assert_no_nan(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            assert_no_nan(item, f"{path}[{index}]")


def assert_close(
    actual: float | None, expected: float, rel: float = 1e-9, abs_: float = 0.0
) -> None:
    """Fail unless ``actual`` equals ``expected`` to a relative (or absolute) tolerance."""
    assert actual is not None
    assert math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_), (actual, expected)
