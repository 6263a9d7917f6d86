"""DatasetReconstructor: get back exactly the data a model saw.

Three ways in: the version current at an instant (``as_of``), the versions an experiment run
read (``for_experiment``), and re-running the recorded transformation chain of a version
(``replay``), checking step by step that each output hashes to the recorded root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from synapsenet.errors import NotFoundError
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import NodeKind, NodeRef
from synapsenet.services.dataversion.models import DatasetVersion
from synapsenet.services.dataversion.pipelines import run_transform
from synapsenet.services.dataversion.transforms import TransformRegistry


class RunDatasetsPort(Protocol):
    """Which dataset versions an experiment run read (run tracking implements it)."""

    def datasets_of_run(self, run_id: str) -> Sequence[str]:
        """Version references (``name@vN``) the run read, or raise NotFoundError."""


class LineageRunDatasets:
    """The default: the run's reads as recorded by lineage links (dataset -> run).

    Args:
        lineage: The lineage graph.
    """

    def __init__(self, lineage: LineageGraph) -> None:
        self.lineage = lineage

    def datasets_of_run(self, run_id: str) -> Sequence[str]:
        """Version references linked into the run, in name order."""
        run = NodeRef.run(run_id)
        dag = self.lineage.dag()
        if run not in dag:
            raise NotFoundError(f"no experiment run {run_id!r} is recorded in the lineage")
        parents = [d.node for d in dag.ancestors(run, 1) if d.node.kind is NodeKind.DATASET_VERSION]
        return sorted(f"{node.name}@v{node.version_number}" for node in parents)


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One transformation of a replay.

    Attributes:
        transformation_id: The recorded transformation.
        name: Its registered name and version.
        outputs: The output versions it recorded.
        expected: Recorded roots of those outputs.
        actual: Roots the re-run produced (empty when skipped or failed).
        skipped: The outputs were intact, so the step was not re-run.
        error: Why the step could not run, if it could not.
    """

    transformation_id: str
    name: str
    outputs: tuple[str, ...]
    expected: tuple[str, ...]
    actual: tuple[str, ...] = ()
    skipped: bool = False
    error: str | None = None

    @property
    def matches(self) -> bool:
        """Whether the re-run reproduced every output byte for byte (or was skipped)."""
        return self.error is None and (self.skipped or self.actual == self.expected)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """The outcome of replaying a version's transformation chain.

    Attributes:
        target: The version replayed.
        steps: Each transformation, in run order.
    """

    target: str
    steps: tuple[ReplayStep, ...]

    @property
    def reproducible(self) -> bool:
        """Whether every step reproduced its recorded outputs."""
        return all(step.matches for step in self.steps)


class DatasetReconstructor:
    """Reconstructs past datasets by time, by experiment run, or by replay.

    Args:
        engine: The versioning engine.
        lineage: The lineage graph.
        registry: Registered transformations (for replay).
        runs: Where a run's datasets are recorded; lineage links by default.
    """

    def __init__(
        self,
        engine: DatasetVersioningEngine,
        lineage: LineageGraph,
        *,
        registry: TransformRegistry | None = None,
        runs: RunDatasetsPort | None = None,
    ) -> None:
        self.engine = engine
        self.lineage = lineage
        self.registry = registry or TransformRegistry()
        self.runs = runs or LineageRunDatasets(lineage)

    def as_of(self, dataset: str, timestamp: datetime) -> DatasetVersion:
        """The version of ``dataset`` that was current at ``timestamp``.

        Raises:
            InvalidError: ``timestamp`` is naive.
            NotFoundError: The dataset had no version yet at that time.
        """
        version = self.engine.versions_at(dataset, timestamp)
        if version is None:
            raise NotFoundError(f"dataset {dataset!r} had no version at {timestamp.isoformat()}")
        return version

    def for_experiment(self, run_id: str) -> list[DatasetVersion]:
        """The exact versions an experiment run read."""
        return [self.engine.resolve(ref) for ref in self.runs.datasets_of_run(run_id)]

    def replay(self, ref: str, *, skip_intact: bool = False) -> ReplayReport:
        """Re-run the transformations that produced ``ref`` and compare output hashes.

        Args:
            ref: The version to rebuild.
            skip_intact: Skip steps whose recorded outputs still verify (every chunk
                present and hashing right); only re-run what is damaged or missing.

        Returns:
            One step per transformation, in run order, each saying whether the re-run
            output hashed to the recorded root.
        """
        target = self.engine.resolve(ref)
        node = NodeRef.dataset_version(target.dataset, target.number)
        steps = []
        for transformation in self.lineage.upstream_chain(node):
            outputs = tuple(f"{o.name}@v{o.version_number}" for o in transformation.outputs)
            expected = tuple(self.engine.resolve(o).root for o in outputs)
            label = f"{transformation.name}@{transformation.version or '?'}"
            if skip_intact and all(self.engine.verify(o).ok for o in outputs):
                steps.append(ReplayStep(transformation.id, label, outputs, expected, skipped=True))
                continue
            if transformation.version is None or (
                (transformation.name, transformation.version) not in self.registry
            ):
                steps.append(
                    ReplayStep(
                        transformation.id,
                        label,
                        outputs,
                        expected,
                        error=f"{label} is not registered here, so it cannot be re-run",
                    )
                )
                continue
            entry = self.registry.get(transformation.name, transformation.version)
            inputs = [f"{i.name}@v{i.version_number}" for i in transformation.inputs]
            try:
                results = run_transform(
                    self.engine, entry, inputs, transformation.plain_parameters()
                )
                actual = tuple(
                    self.engine.content_root(o.name, result)
                    for o, result in zip(transformation.outputs, results, strict=True)
                )
            except Exception as exc:
                steps.append(
                    ReplayStep(
                        transformation.id,
                        label,
                        outputs,
                        expected,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
            steps.append(ReplayStep(transformation.id, label, outputs, expected, actual=actual))
        return ReplayReport(target.ref, tuple(steps))
