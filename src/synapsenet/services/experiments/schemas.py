"""Request and response schemas of the run-tracking API.

Datetimes are ISO 8601 and must carry a timezone (a naive one is a 422 naming the field).
Request bodies forbid unknown fields, so a typo is a 422 rather than a silent default;
response schemas ignore unknown fields, so an older client keeps reading a newer server.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints

from synapsenet.services.experiments.models import (
    DEFAULT_PROJECT,
    LoggedDataset,
    LoggedModel,
    Metric,
    Run,
    RunStatus,
)

MAX_METRICS = 10_000
"""Most metric points one request may carry."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=300)]
ParamValueSchema = bool | int | FiniteFloat | str | None
"""A parameter value: a JSON scalar (``1``, ``1.0`` and ``true`` are different values)."""
_FORBID = ConfigDict(extra="forbid")


class RunCreate(BaseModel):
    """A run to start, with its first params and tags."""

    model_config = _FORBID

    project: Text = DEFAULT_PROJECT
    name: Text | None = None
    params: dict[str, ParamValueSchema] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)


class ParamsRequest(BaseModel):
    """Parameters to log (immutable: logging another value for a key is a 409)."""

    model_config = _FORBID

    params: dict[str, ParamValueSchema]


class TagsRequest(BaseModel):
    """Tags to set (replacing the values of keys already set)."""

    model_config = _FORBID

    tags: dict[str, str]


class MetricIn(BaseModel):
    """One measurement; timestamped on arrival unless it says when it was taken."""

    model_config = _FORBID

    key: Text
    value: FiniteFloat
    step: int = Field(default=0, ge=0)
    timestamp: AwareDatetime | None = None

    def to_domain(self, now: datetime) -> Metric:
        """The domain object (``now`` when no timestamp was sent)."""
        return Metric(self.key, self.value, self.step, self.timestamp or now)


class MetricsRequest(BaseModel):
    """Measurements to log in one transaction (all or none)."""

    model_config = _FORBID

    metrics: list[MetricIn] = Field(min_length=1, max_length=MAX_METRICS)


class DatasetRequest(BaseModel):
    """A dataset version the run read: ``name@vN``, ``name@<tag>`` or ``name``."""

    model_config = _FORBID

    ref: Text


class ModelRequest(BaseModel):
    """A model version the run produced."""

    model_config = _FORBID

    model_name: Text
    version: Text


class EndRequest(BaseModel):
    """How the run ended."""

    model_config = _FORBID

    status: RunStatus = RunStatus.FINISHED


class MetricPublic(BaseModel):
    """One measurement of a metric."""

    key: str
    value: float
    step: int
    timestamp: datetime

    @classmethod
    def of(cls, metric: Metric) -> MetricPublic:
        """Build from the domain object."""
        return cls(key=metric.key, value=metric.value, step=metric.step, timestamp=metric.timestamp)

    def to_domain(self) -> Metric:
        """The domain object."""
        return Metric(self.key, self.value, self.step, self.timestamp)


class MetricsLogged(BaseModel):
    """How many measurements were logged."""

    logged: int


class DatasetPublic(BaseModel):
    """A dataset version a run read."""

    ref: str = Field(description="The exact version, ``name@vN``.")
    requested: str = Field(description="The reference as it was logged.")
    logged_at: datetime

    @classmethod
    def of(cls, dataset: LoggedDataset) -> DatasetPublic:
        """Build from the domain object."""
        return cls(ref=dataset.ref, requested=dataset.requested, logged_at=dataset.logged_at)

    def to_domain(self) -> LoggedDataset:
        """The domain object."""
        return LoggedDataset(self.ref, self.requested, self.logged_at)


class DatasetLogged(BaseModel):
    """The exact version a logged reference resolved to."""

    ref: str = Field(description="The exact version, ``name@vN``.")
    requested: str = Field(description="The reference as it was logged.")


class ModelPublic(BaseModel):
    """A model version a run produced."""

    model_name: str
    version: str
    logged_at: datetime

    @classmethod
    def of(cls, model: LoggedModel) -> ModelPublic:
        """Build from the domain object."""
        return cls(model_name=model.model_name, version=model.version, logged_at=model.logged_at)

    def to_domain(self) -> LoggedModel:
        """The domain object."""
        return LoggedModel(self.model_name, self.version, self.logged_at)


class RunPublic(BaseModel):
    """A run with everything logged to it; ``metrics`` holds each metric's latest value."""

    id: str
    project: str
    name: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None
    params: dict[str, ParamValueSchema]
    metrics: dict[str, float]
    tags: dict[str, str]
    datasets: list[DatasetPublic]
    models: list[ModelPublic]

    @classmethod
    def of(cls, run: Run) -> RunPublic:
        """Build from the domain object."""
        return cls(
            id=run.id,
            project=run.project,
            name=run.name,
            status=run.status,
            started_at=run.started_at,
            ended_at=run.ended_at,
            params=dict(run.params),
            metrics=dict(run.metrics),
            tags=dict(run.tags),
            datasets=[DatasetPublic.of(d) for d in run.datasets],
            models=[ModelPublic.of(m) for m in run.models],
        )

    def to_domain(self) -> Run:
        """The domain object."""
        return Run(
            id=self.id,
            project=self.project,
            name=self.name,
            status=self.status,
            started_at=self.started_at,
            ended_at=self.ended_at,
            params=MappingProxyType(dict(self.params)),
            metrics=MappingProxyType(dict(self.metrics)),
            tags=MappingProxyType(dict(self.tags)),
            datasets=tuple(d.to_domain() for d in self.datasets),
            models=tuple(m.to_domain() for m in self.models),
        )


__all__ = [
    "MAX_METRICS",
    "DatasetLogged",
    "DatasetPublic",
    "DatasetRequest",
    "EndRequest",
    "MetricIn",
    "MetricPublic",
    "MetricsLogged",
    "MetricsRequest",
    "ModelPublic",
    "ModelRequest",
    "ParamsRequest",
    "RunCreate",
    "RunPublic",
    "TagsRequest",
]
