"""Routing units to variants: compiled bucket layouts, cached per experiment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapsenet.services.abtesting.assignment import Assigner, build_layout
from synapsenet.services.abtesting.models import Experiment, ExperimentStatus


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a unit's request goes.

    Attributes:
        experiment_id: The experiment that routed it.
        variant: The arm's name.
        model_version: The model version to serve.
        in_experiment: False when the unit got the control because the experiment is not
            running or the unit is outside its coverage (it is then not an exposure).
    """

    experiment_id: str
    variant: str
    model_version: str
    in_experiment: bool


@dataclass
class _Route:
    experiment: Experiment
    assigner: Assigner | None
    expires: float


class Router:
    """Routes units of any experiment, reusing each compiled layout for ``ttl`` seconds.

    Args:
        load: Reads an experiment by id or name (the engine's ``get``).
        ttl: Seconds a compiled layout is reused before the experiment is re-read;
            :meth:`forget` drops them at once (the engine calls it on every change it makes).
    """

    def __init__(self, load: Callable[[str], Experiment], ttl: float) -> None:
        self._load = load
        self.ttl = ttl
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self.generation = 0
        """Counts :meth:`forget` calls: a cache built on this router's answers is stale once
        it changes (an experiment started, ended or was reallocated in this process)."""

    def experiment(self, experiment_id: str) -> Experiment:
        """The (possibly cached) experiment."""
        return self._route(experiment_id).experiment

    def assign(self, experiment_id: str, unit_id: str) -> Assignment:
        """Route one unit: sticky, deterministic, and the control outside the experiment."""
        route = self._route(experiment_id)
        experiment = route.experiment
        if route.assigner is None:
            control = experiment.control
            return Assignment(experiment.id, control.name, control.model_version, False)
        variant = experiment.variants[route.assigner.assign(unit_id)]
        return Assignment(experiment.id, variant.name, variant.model_version, True)

    def assign_batch(
        self, experiment_id: str, unit_ids: npt.NDArray[np.generic] | Sequence[str]
    ) -> list[str]:
        """Route many units at once; the same answers as :meth:`assign` one by one."""
        route = self._route(experiment_id)
        if route.assigner is None:
            return [route.experiment.control.name] * len(unit_ids)
        names = [v.name for v in route.experiment.variants]
        return [names[i] for i in route.assigner.assign_batch(unit_ids).tolist()]

    def forget(self) -> None:
        """Drop every cached layout (they are keyed by id and by name; rebuilding is cheap)."""
        with self._lock:
            self._routes.clear()
            self.generation += 1

    def _route(self, experiment_id: str) -> _Route:
        now = time.monotonic()
        with self._lock:
            route = self._routes.get(experiment_id)
        if route is not None and route.expires > now:
            return route
        experiment = self._load(experiment_id)
        route = _Route(experiment, _layout_for(experiment), now + self.ttl)
        with self._lock:
            self._routes[experiment_id] = route
            self._routes[experiment.id] = route
        return route


def _layout_for(experiment: Experiment) -> Assigner | None:
    if experiment.status is not ExperimentStatus.RUNNING:
        return None
    layout = build_layout(
        experiment.allocation,
        experiment.control_index,
        coverage=experiment.spec.coverage,
    )
    return Assigner(layout, experiment.salt)
