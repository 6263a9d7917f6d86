"""LineageGraph: the persisted lineage of dataset versions, runs and model versions.

Transformations and usage links are stored as rows; queries load them into a
:class:`~synapsenet.services.dataversion.graph.LineageDAG` and run there. Recording takes the
database write lock, so two concurrent records cannot together close a cycle that each alone
would not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from synapsenet.core.db import Database, utcnow
from synapsenet.core.events import Event
from synapsenet.core.outbox import record_event
from synapsenet.services.dataversion.graph import Edge, ImpactReport, LineageDAG, NodeDistance
from synapsenet.services.dataversion.lineage_export import to_dot, to_mermaid, to_openlineage
from synapsenet.services.dataversion.lineage_model import NodeRef, Transformation
from synapsenet.services.dataversion.store import LineageEdgeRecord, TransformationRecord

EVENT_SOURCE = "/dataversion"


class LineageGraph:
    """The DAG of transformations between dataset versions, and the runs and models using them.

    Args:
        db: The platform database.
        namespace: OpenLineage namespace of exported events.
        producer: OpenLineage ``producer`` URI of exported events.
        clock: Source of the current time (aware UTC).
    """

    def __init__(
        self,
        db: Database,
        *,
        namespace: str = "synapsenet",
        producer: str = "urn:synapsenet:dataversion",
        clock: Any = utcnow,
    ) -> None:
        self.db = db
        self.namespace = namespace
        self.producer = producer
        self.clock = clock

    def record(self, transformation: Transformation) -> Transformation:
        """Store a completed transformation and its edges (idempotent by id).

        Raises:
            CycleError: It would make an output its own ancestor (nothing is stored).
            ConflictError: A different transformation has the same id.
        """
        now: datetime = self.clock()
        with self.db.transaction(write=True) as session:
            dag = self._load(session)
            known = transformation.id in {t.id for t in dag.transformations()}
            dag.add(transformation)
            if known:
                return transformation
            session.add(
                TransformationRecord(
                    id=transformation.id, document=transformation.to_json(), recorded_at=now
                )
            )
            session.flush()  # the edges reference it
            for source in transformation.inputs:
                for target in transformation.outputs:
                    session.add(
                        LineageEdgeRecord(
                            source=str(source),
                            target=str(target),
                            transformation_id=transformation.id,
                            recorded_at=now,
                        )
                    )
            record_event(
                session,
                Event(
                    type="dataversion.lineage.recorded",
                    source=EVENT_SOURCE,
                    subject=transformation.id,
                    data={
                        "transformation": transformation.id,
                        "name": transformation.name,
                        "type": transformation.type.value,
                        "inputs": [str(n) for n in transformation.inputs],
                        "outputs": [str(n) for n in transformation.outputs],
                    },
                ),
            )
        return transformation

    def link(self, source: NodeRef, target: NodeRef) -> None:
        """Record a usage edge: a run read a dataset version, or produced a model version.

        Idempotent.

        Raises:
            InvalidError: The kinds may not be linked that way.
            CycleError: The link would close a cycle.
        """
        now: datetime = self.clock()
        with self.db.transaction(write=True) as session:
            existing = session.scalars(
                select(LineageEdgeRecord.id)
                .where(LineageEdgeRecord.source == str(source))
                .where(LineageEdgeRecord.target == str(target))
                .where(LineageEdgeRecord.transformation_id.is_(None))
            ).first()
            if existing is not None:
                return
            self._load(session).add_edge(source, target)
            session.add(
                LineageEdgeRecord(
                    source=str(source), target=str(target), transformation_id=None, recorded_at=now
                )
            )
            record_event(
                session,
                Event(
                    type="dataversion.lineage.linked",
                    source=EVENT_SOURCE,
                    subject=str(target),
                    data={"source": str(source), "target": str(target)},
                ),
            )

    def dag(self, *, nodes: Iterable[NodeRef] = ()) -> LineageDAG:
        """The whole graph, loaded for queries."""
        with self.db.transaction() as session:
            dag = self._load(session)
        for node in nodes:
            dag.add_node(node)
        return dag

    def transformation(self, transformation_id: str) -> Transformation:
        """A recorded transformation by id."""
        return self.dag().transformation(transformation_id)

    def ancestors(self, node: NodeRef, *, depth: int | None = None) -> tuple[NodeDistance, ...]:
        """Everything upstream of ``node`` (with distance), nearest first."""
        return self.dag(nodes=[node]).ancestors(node, depth)

    def descendants(self, node: NodeRef, *, depth: int | None = None) -> tuple[NodeDistance, ...]:
        """Everything downstream of ``node`` (with distance), nearest first."""
        return self.dag(nodes=[node]).descendants(node, depth)

    def path(self, source: NodeRef, target: NodeRef) -> tuple[Edge, ...] | None:
        """The shortest chain of edges from ``source`` to ``target``, or None."""
        return self.dag(nodes=[source, target]).path(source, target)

    def impact(self, node: NodeRef) -> ImpactReport:
        """Every dataset version, run and model version downstream of ``node``."""
        return self.dag(nodes=[node]).impact(node)

    def upstream_chain(self, node: NodeRef) -> tuple[Transformation, ...]:
        """The transformations that rebuild ``node`` from its sources, in run order."""
        return self.dag(nodes=[node]).upstream_chain(node)

    def openlineage_events(self, node: NodeRef | None = None) -> list[dict[str, Any]]:
        """OpenLineage RunEvents of every transformation (upstream of ``node`` if given)."""
        dag = self.dag()
        chosen = dag.transformations() if node is None else dag.upstream_chain(node)
        return [to_openlineage(t, namespace=self.namespace, producer=self.producer) for t in chosen]

    def to_dot(self, node: NodeRef | None = None, *, depth: int | None = None) -> str:
        """Graphviz DOT of the graph, or of the neighbourhood of ``node``."""
        dag = self.dag(nodes=[node] if node else [])
        if node is not None:
            dag = dag.neighbourhood(node, depth)
        return to_dot(dag, highlight=[node] if node else None)

    def to_mermaid(self, node: NodeRef | None = None, *, depth: int | None = None) -> str:
        """A Mermaid flowchart of the graph, or of the neighbourhood of ``node``."""
        dag = self.dag(nodes=[node] if node else [])
        if node is not None:
            dag = dag.neighbourhood(node, depth)
        return to_mermaid(dag, highlight=[node] if node else None)

    @staticmethod
    def _load(session: Any) -> LineageDAG:
        transformations = [
            Transformation.from_json(document)
            for document in session.scalars(select(TransformationRecord.document))
        ]
        links = [
            (NodeRef.parse(row.source), NodeRef.parse(row.target))
            for row in session.scalars(
                select(LineageEdgeRecord).where(LineageEdgeRecord.transformation_id.is_(None))
            )
        ]
        return LineageDAG.from_edges(transformations, links)
