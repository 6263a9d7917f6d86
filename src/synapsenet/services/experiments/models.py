"""The run-tracking domain: training runs, their parameters, metrics, inputs and outputs.

A *run* is one execution of training code. Runs are grouped by *project* (what MLflow calls an
experiment; the word "experiment" here already means an A/B test, see
:mod:`synapsenet.services.abtesting`). A run records the parameters it was configured with
(immutable once logged), metrics over steps, the exact dataset versions it read and the model
versions it produced.

Raw input becomes typed values here, in one place: every ``validate_*`` helper returns a valid
value or raises :class:`~synapsenet.errors.InvalidError` naming the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TypeAlias

from synapsenet.errors import InvalidError

ParamValue: TypeAlias = str | int | float | bool | None
"""A parameter's value: a JSON scalar."""

MAX_KEY_LENGTH = 250
"""Longest parameter, metric or tag key."""
MAX_PARAM_LENGTH = 6000
"""Longest parameter value, in characters of its JSON form (MLflow's limit)."""
MAX_TAG_LENGTH = 5000
"""Longest tag value."""
DEFAULT_PROJECT = "default"
"""The project of runs started without one."""

# Keys read well in a URL path, a shell and a log line: letters, digits, and "_-./ ".
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-./ ]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
# Lineage model references are "name@version" with neither part holding "@" or whitespace.
_MODEL_PART = re.compile(r"^[^\s@]+$")


class RunStatus(StrEnum):
    """Where a run is in its life: running, or ended one of three ways."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended (nothing moves it on from here)."""
        return self is not RunStatus.RUNNING


@dataclass(frozen=True, slots=True)
class Metric:
    """One measurement of a metric.

    Attributes:
        key: The metric's name (``loss``, ``val/auc``).
        value: A finite number.
        step: Training step, epoch or iteration it belongs to (0 when not stepped).
        timestamp: When it was measured (aware UTC).
    """

    key: str
    value: float
    step: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class LoggedDataset:
    """A dataset version a run read.

    Attributes:
        ref: The exact version, ``name@vN``.
        requested: The reference as given when logged (``orders@production``, ``orders``).
        logged_at: When it was logged.
    """

    ref: str
    requested: str
    logged_at: datetime

    @property
    def dataset(self) -> str:
        """The dataset's name."""
        return self.ref.rpartition("@v")[0]

    @property
    def number(self) -> int:
        """The version number."""
        return int(self.ref.rpartition("@v")[2])


@dataclass(frozen=True, slots=True)
class LoggedModel:
    """A model version a run produced.

    Attributes:
        model_name: The registered model's name.
        version: Its version, as the registry names it.
        logged_at: When it was logged.
    """

    model_name: str
    version: str
    logged_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.model_name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Run:
    """A training run.

    Attributes:
        id: Identifier: 32 hex digits that sort by start time.
        project: The group of runs it belongs to (MLflow's "experiment").
        name: A human name (not unique).
        status: Running, or how it ended.
        started_at: When it started (aware UTC).
        ended_at: When it ended, once it has.
        params: Parameters by key (immutable once logged).
        metrics: The latest value of each metric (highest step, then newest).
        tags: Free-form labels (changeable at any time).
        datasets: The exact dataset versions it read, in the order logged.
        models: The model versions it produced, in the order logged.
    """

    id: str
    project: str
    name: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    params: Mapping[str, ParamValue] = field(default_factory=lambda: MappingProxyType({}))
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    datasets: tuple[LoggedDataset, ...] = ()
    models: tuple[LoggedModel, ...] = ()

    @property
    def dataset_refs(self) -> tuple[str, ...]:
        """The exact versions it read, ``name@vN``, in the order logged."""
        return tuple(d.ref for d in self.datasets)


# ---------------------------------------------------------------------- validation


def validate_key(key: object, *, kind: str) -> str:
    """Check a parameter, metric or tag key.

    Args:
        key: The key.
        kind: ``param``, ``metric`` or ``tag``: named in the message and as the field.

    Raises:
        InvalidError: Naming the key and the rule it breaks.
    """
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise InvalidError(
            f"{kind} key {key!r} must start with a letter, digit or '_' and contain only "
            f"letters, digits, '_', '-', '.', '/' and spaces (at most {MAX_KEY_LENGTH} "
            "characters)",
            field=kind,
        )
    return key


def validate_name(value: object, *, field_name: str) -> str:
    """Check a project or run name: letters, digits, ``.``, ``_``, ``-``; 1 to 200 characters.

    Raises:
        InvalidError: Naming the field and the rule it breaks.
    """
    if not isinstance(value, str) or len(value) > 200 or not _NAME.match(value):
        raise InvalidError(
            f"{field_name} {value!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '_' and '-' (at most 200 characters)",
            field=field_name,
        )
    return value


def validate_run_name(value: object) -> str:
    """Check a run's name: 1 to 200 printable characters.

    Raises:
        InvalidError: Naming the name and the rule it breaks.
    """
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 200
        or not value.isprintable()
        or value != value.strip()
    ):
        raise InvalidError(
            f"run name {value!r} must be 1 to 200 printable characters, without leading or "
            "trailing spaces",
            field="name",
        )
    return value


def encode_param(key: str, value: object) -> str:
    """The canonical JSON text of a parameter value, as stored and compared.

    ``1``, ``1.0`` and ``true`` are three different values: a run configured with the integer
    1 was not configured with the boolean true.

    Raises:
        InvalidError: The value is not a JSON scalar, is a non-finite number, or is too long.
    """
    if value is not None and not isinstance(value, str | int | float):
        raise InvalidError(
            f"param {key!r} must be a string, number, boolean or null. "
            f"Got {type(value).__name__} instead.",
            field="params",
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidError(
            f"param {key!r} must be a finite number. Got {value!r} instead.", field="params"
        )
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_PARAM_LENGTH:
        raise InvalidError(
            f"param {key!r} is {len(text)} characters long; at most {MAX_PARAM_LENGTH} are kept",
            field="params",
        )
    return text


def decode_param(text: str) -> ParamValue:
    """A stored parameter value back as its Python value."""
    value: ParamValue = json.loads(text)
    return value


def validate_params(params: Mapping[str, object]) -> dict[str, str]:
    """Check every key and value of ``params``; their canonical JSON texts by key.

    Raises:
        InvalidError: Naming the first bad key or value (nothing is logged then).
    """
    if not isinstance(params, Mapping):
        raise InvalidError("params must be a mapping of key to value", field="params")
    return {validate_key(k, kind="param"): encode_param(k, v) for k, v in params.items()}


def validate_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """Check every key and value of ``tags`` (values are strings).

    Raises:
        InvalidError: Naming the first bad key or value.
    """
    if not isinstance(tags, Mapping):
        raise InvalidError("tags must be a mapping of key to string", field="tags")
    checked: dict[str, str] = {}
    for key, value in tags.items():
        validate_key(key, kind="tag")
        if not isinstance(value, str) or len(value) > MAX_TAG_LENGTH:
            raise InvalidError(
                f"tag {key!r} must be a string of at most {MAX_TAG_LENGTH} characters. "
                f"Got {value!r} instead.",
                field="tags",
            )
        checked[key] = value
    return checked


def validate_metric(key: object, value: object, step: object, timestamp: object) -> Metric:
    """Check one measurement.

    Raises:
        InvalidError: A bad key, a value that is not a finite number (NaN and infinities are
            refused: they would poison every comparison of runs), a negative step, or a naive
            timestamp.
    """
    checked_key = validate_key(key, kind="metric")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidError(
            f"metric {checked_key!r} must be a number. Got {value!r} instead.", field="metrics"
        )
    if not math.isfinite(value):
        raise InvalidError(
            f"metric {checked_key!r} must be a finite number. Got {value!r} instead.",
            field="metrics",
        )
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InvalidError(
            f"the step of metric {checked_key!r} must be an int >= 0. Got {step!r} instead.",
            field="step",
        )
    if not isinstance(timestamp, datetime) or timestamp.utcoffset() is None:
        raise InvalidError(
            f"the timestamp of metric {checked_key!r} must be an aware datetime. "
            f"Got {timestamp!r} instead.",
            field="timestamp",
        )
    return Metric(checked_key, float(value), step, timestamp)


def validate_model(model_name: object, version: object) -> tuple[str, str]:
    """Check a model version's name and version (``name@version`` must parse back).

    Raises:
        InvalidError: Either is empty, too long, or holds ``@`` or whitespace.
    """
    for value, field_name in ((model_name, "model_name"), (version, "version")):
        if not isinstance(value, str) or len(value) > 200 or not _MODEL_PART.match(value):
            raise InvalidError(
                f"{field_name} {value!r} must be 1 to 200 characters without '@' or whitespace",
                field=field_name,
            )
    assert isinstance(model_name, str)
    assert isinstance(version, str)
    return model_name, version
