"""JSON and time coercion shared by the lineage modules.

Raw documents become typed values in one place: every helper either returns a valid value
or raises an :class:`~synapsenet.errors.InvalidError` that names the offending field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from synapsenet.errors import InvalidError


def freeze_json(value: object, *, field: str) -> Any:
    """Validate a JSON value and make it immutable (read-only mappings, tuples).

    Args:
        value: Nested mappings with string keys, sequences, strings, finite numbers,
            booleans and None.
        field: Field named in the error message.

    Returns:
        The frozen value.

    Raises:
        InvalidError: When something in ``value`` is not JSON; the message gives its path.
    """
    return _freeze(value, field, field)


def _freeze(value: object, path: str, field: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidError(
                f"{path} must be a finite number. Got {value!r} instead.", field=field
            )
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidError(
                    f"{path} has a non-string key {key!r}; JSON keys are strings", field=field
                )
            frozen[key] = _freeze(item, f"{path}[{key!r}]", field)
        return MappingProxyType(frozen)
    if isinstance(value, list | tuple):
        return tuple(_freeze(item, f"{path}[{index}]", field) for index, item in enumerate(value))
    raise InvalidError(
        f"{path} must be JSON (object, array, string, number, boolean or null). "
        f"Got {type(value).__name__} instead.",
        field=field,
    )


def thaw_json(value: Any) -> Any:
    """Inverse of :func:`freeze_json`: plain dicts and lists, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [thaw_json(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """Serialise to canonical JSON: sorted keys, no whitespace, UTF-8 text, no NaN."""
    return json.dumps(
        thaw_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def require_utc(value: object, field: str) -> datetime:
    """Refuse naive datetimes; convert aware ones to UTC.

    Raises:
        InvalidError: When ``value`` is not a datetime or has no timezone.
    """
    if not isinstance(value, datetime):
        raise InvalidError(f"{field} must be a datetime", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidError(
            f"{field} must be timezone-aware (UTC). Got naive {value.isoformat()} instead.",
            field=field,
        )
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """ISO 8601 with microseconds, so one instant always has one string form."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_utc(text: str, field: str) -> datetime:
    """Parse an ISO 8601 timestamp, refusing naive ones."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidError(f"{field} is not an ISO 8601 timestamp: {text!r}", field=field) from None
    return require_utc(value, field)


def require_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidError(
            f"{field} must be a non-empty string without surrounding whitespace. "
            f"Got {value!r} instead.",
            field=field,
        )


def require_mapping(data: object, what: str) -> None:
    if not isinstance(data, Mapping):
        raise InvalidError(f"a {what} must be a JSON object. Got {type(data).__name__} instead.")


def require_field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise InvalidError(f"missing field {key!r}", field=key)
    value = data[key]
    if not isinstance(value, kind):
        raise InvalidError(
            f"field {key!r} must be a {kind.__name__}. Got {type(value).__name__} instead.",
            field=key,
        )
    return value


def require_choice(data: Mapping[str, Any], key: str, choices: type[StrEnum]) -> str:
    value = require_field(data, key, str)
    allowed = [choice.value for choice in choices]
    if value not in allowed:
        raise InvalidError(
            f"field {key!r} must be one of {', '.join(allowed)}. Got {value!r} instead.",
            field=key,
        )
    return str(value)


def load_object(document: str | bytes, what: str) -> Mapping[str, Any]:
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise InvalidError(f"malformed {what} JSON: {exc}") from None
    require_mapping(data, what)
    return data  # type: ignore[no-any-return]
