"""The lineage DAG and its queries: ancestry, paths, impact and replay plans.

The graph is in memory and pure: the store loads transformations and usage edges from its
tables and builds a :class:`LineageDAG` (``from_edges`` for a bulk load, ``add`` for one new
record, which is refused if it would close a cycle). Every traversal is iterative and every
result is in a deterministic order that does not depend on insertion order, so the graph
can hold a hundred thousand edges and two loads of the same rows answer identically.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.lineage_model import (
    NodeKind,
    NodeRef,
    Transformation,
    TransformationStatus,
)

__all__ = [
    "USAGE_EDGE_KINDS",
    "CycleError",
    "Edge",
    "ImpactReport",
    "LineageDAG",
    "NodeDistance",
]

USAGE_EDGE_KINDS: Mapping[tuple[NodeKind, NodeKind], str] = {
    (NodeKind.DATASET_VERSION, NodeKind.RUN): "the run read the dataset version",
    (NodeKind.MODEL_VERSION, NodeKind.RUN): "the run started from or evaluated the model",
    (NodeKind.RUN, NodeKind.MODEL_VERSION): "the run produced the model version",
    (NodeKind.RUN, NodeKind.DATASET_VERSION): "the run wrote the dataset version",
}
"""The (source kind, target kind) pairs a usage edge may connect, and what each means.

Data-to-data edges are always transformations, so that every dataset version derived from
another one carries its parameters and code identity.
"""


class CycleError(ConflictError):
    """Recording a transformation or edge would make the lineage graph cyclic.

    Attributes:
        cycle: The nodes of the cycle, first and last the same.
        transformation_id: The transformation that would have closed it, if any.
    """

    def __init__(self, cycle: Sequence[NodeRef], *, transformation_id: str | None = None) -> None:
        what = "an edge" if transformation_id is None else f"transformation {transformation_id!r}"
        path = " -> ".join(str(node) for node in cycle)
        super().__init__(
            f"{what} would create a lineage cycle: {path}",
            cycle=[str(node) for node in cycle],
        )
        self.cycle = tuple(cycle)
        self.transformation_id = transformation_id


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge of the graph.

    Attributes:
        source: Upstream node.
        target: Downstream node.
        transformation_id: The transformation the edge belongs to; None for a usage edge
            (a run reading a dataset version, a run producing a model version, ...).
    """

    source: NodeRef
    target: NodeRef
    transformation_id: str | None = None


@dataclass(frozen=True, slots=True)
class NodeDistance:
    """A node reached by a traversal, with the fewest edges it is away from the start."""

    node: NodeRef
    distance: int


@dataclass(frozen=True, slots=True)
class ImpactReport:
    """Everything downstream of a node: what a bad version contaminated.

    Attributes:
        source: The node the analysis started from.
        dataset_versions: Downstream dataset versions, nearest first.
        runs: Downstream experiment runs, nearest first.
        model_versions: Downstream model versions, nearest first.
        transformations: Transformations that read the source or anything downstream of
            it, in an order that can re-run them (producers before consumers).
    """

    source: NodeRef
    dataset_versions: tuple[NodeRef, ...]
    runs: tuple[NodeRef, ...]
    model_versions: tuple[NodeRef, ...]
    transformations: tuple[Transformation, ...]

    @property
    def nodes(self) -> tuple[NodeRef, ...]:
        """All affected nodes: dataset versions, then runs, then model versions."""
        return self.dataset_versions + self.runs + self.model_versions

    @property
    def is_empty(self) -> bool:
        """Whether nothing depends on the source."""
        return not self.nodes


def _preference(transformation: Transformation) -> tuple[datetime, datetime, str]:
    # Completed transformations always have finished_at; the first to finish is the one
    # that created the version, later producers only recomputed identical content.
    assert transformation.finished_at is not None
    return (transformation.finished_at, transformation.started_at, transformation.id)


def _label_key(label: str | None) -> tuple[bool, str]:
    return (label is not None, label or "")


class LineageDAG:
    """A directed acyclic graph of dataset versions, runs and model versions.

    Transformations contribute an edge from each input to each output; usage edges
    (:data:`USAGE_EDGE_KINDS`) connect runs. Queries on a node the graph has never seen
    return empty results: it has no recorded lineage. Not thread-safe; build one per
    request or guard it.
    """

    def __init__(self) -> None:
        self._succ: dict[NodeRef, dict[NodeRef, set[str | None]]] = {}
        self._pred: dict[NodeRef, set[NodeRef]] = {}
        self._transformations: dict[str, Transformation] = {}
        # Keyed by transformation id: str hashing is far cheaper than a dataclass's.
        self._producers: dict[NodeRef, list[str]] = {}
        self._consumers: dict[NodeRef, list[str]] = {}
        self._rank: dict[str, tuple[datetime, datetime, str]] = {}
        self._usage: set[tuple[NodeRef, NodeRef]] = set()

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def from_edges(
        cls,
        transformations: Iterable[Transformation] = (),
        edges: Iterable[tuple[NodeRef, NodeRef]] = (),
        nodes: Iterable[NodeRef] = (),
    ) -> LineageDAG:
        """Build a graph from stored records, checking for cycles once at the end.

        This is linear in the size of the graph, where adding records one by one can cost
        a traversal each; use it to load lineage from the store.

        Args:
            transformations: Completed transformations, in any order.
            edges: Usage edges as (source, target) pairs, in any order.
            nodes: Extra nodes to include even without edges.

        Returns:
            The graph.

        Raises:
            CycleError: When the records contain a cycle (named in the message).
            ConflictError: When two different transformations share an id.
            InvalidError: When a record is not completed or an edge joins the wrong kinds.
        """
        dag = cls()
        for transformation in transformations:
            if dag._check_transformation(transformation):
                dag._insert_transformation(transformation)
        for source, target in edges:
            _check_usage_edge(source, target)
            dag._insert_usage(source, target)
        for node in nodes:
            dag.add_node(node)
        cycle = dag._find_any_cycle()
        if cycle is not None:
            raise CycleError(cycle)
        return dag

    def add(self, transformation: Transformation) -> None:
        """Record a completed transformation.

        Adding the same transformation twice is a no-op, so a store can replay its log.

        Args:
            transformation: The transformation; its status must be COMPLETED.

        Raises:
            CycleError: When an output is also an input, or an output already reaches an
                input; the graph is left unchanged.
            ConflictError: When a different transformation already has this id.
            InvalidError: When the transformation is not completed.
        """
        if not self._check_transformation(transformation):
            return
        found = self._find_path(transformation.outputs, set(transformation.inputs))
        if found is not None:
            # found runs output -> ... -> input; the new edge input -> output closes it.
            raise CycleError([found[-1], *found], transformation_id=transformation.id)
        self._insert_transformation(transformation)

    def add_edge(self, source: NodeRef, target: NodeRef) -> None:
        """Record a usage edge, e.g. a run reading a dataset version. Idempotent.

        Args:
            source: Upstream node.
            target: Downstream node; the pair of kinds must be in :data:`USAGE_EDGE_KINDS`.

        Raises:
            InvalidError: When the kinds may not be joined by a usage edge.
            CycleError: When ``target`` already reaches ``source``.
        """
        _check_usage_edge(source, target)
        found = self._find_path([target], {source})
        if found is not None:
            raise CycleError([source, *found])
        self._insert_usage(source, target)

    def add_node(self, node: NodeRef) -> None:
        """Include a node that has no edges yet (so exports show it). Idempotent."""
        if not isinstance(node, NodeRef):
            raise InvalidError(f"a lineage node must be a NodeRef. Got {node!r} instead.")
        self._succ.setdefault(node, {})
        self._pred.setdefault(node, set())

    # --- reading ----------------------------------------------------------------------------

    def __contains__(self, node: object) -> bool:
        return node in self._succ

    def __len__(self) -> int:
        return len(self._succ)

    def has_edge(self, source: NodeRef, target: NodeRef) -> bool:
        """Whether any edge (of a transformation or a usage edge) joins the two nodes."""
        return target in self._succ.get(source, {})

    def has_transformation(self, transformation_id: str) -> bool:
        """Whether a transformation with this id is recorded."""
        return transformation_id in self._transformations

    def nodes(self) -> tuple[NodeRef, ...]:
        """Every node, in natural order."""
        return tuple(sorted(self._succ))

    def edges(self) -> tuple[Edge, ...]:
        """Every edge (one per transformation per input/output pair), sorted."""
        return tuple(
            Edge(source, target, label)
            for source in sorted(self._succ)
            for target in sorted(self._succ[source])
            for label in sorted(self._succ[source][target], key=_label_key)
        )

    def usage_edges(self) -> tuple[Edge, ...]:
        """The edges that belong to no transformation, sorted."""
        return tuple(Edge(s, t) for s, t in sorted(self._usage))

    def transformations(self) -> tuple[Transformation, ...]:
        """Every transformation, in topological order (producers before consumers)."""
        return self._in_topological_order(self._transformations)

    def transformation(self, transformation_id: str) -> Transformation:
        """The transformation with this id.

        Raises:
            NotFoundError: When there is none.
        """
        try:
            return self._transformations[transformation_id]
        except KeyError:
            raise NotFoundError(f"no transformation {transformation_id!r} in lineage") from None

    def producers(self, node: NodeRef) -> tuple[Transformation, ...]:
        """Transformations that output ``node``, the one that created it first."""
        ids = sorted(self._producers.get(node, ()), key=self._rank.__getitem__)
        return tuple(self._transformations[i] for i in ids)

    def consumers(self, node: NodeRef) -> tuple[Transformation, ...]:
        """Transformations that read ``node``, earliest first."""
        ids = sorted(self._consumers.get(node, ()), key=self._rank.__getitem__)
        return tuple(self._transformations[i] for i in ids)

    # --- queries ----------------------------------------------------------------------------

    def ancestors(self, node: NodeRef, depth: int | None = None) -> tuple[NodeDistance, ...]:
        """Everything upstream of ``node``, nearest first.

        Args:
            node: Where to start.
            depth: Follow at most this many edges; None for no limit.

        Returns:
            Each upstream node once, with its shortest distance, ordered by distance then
            by node.

        Raises:
            InvalidError: When ``depth`` is negative.
        """
        return self._reach(node, depth, self._pred)

    def descendants(self, node: NodeRef, depth: int | None = None) -> tuple[NodeDistance, ...]:
        """Everything downstream of ``node``, nearest first (see :meth:`ancestors`)."""
        return self._reach(node, depth, self._succ)

    def path(self, source: NodeRef, target: NodeRef) -> tuple[Edge, ...] | None:
        """A shortest chain of edges from ``source`` down to ``target``.

        Args:
            source: The upstream end.
            target: The downstream end.

        Returns:
            The edges in order (empty when both ends are the same node), or None when
            ``target`` is not downstream of ``source``. Among equally short paths the
            result is deterministic.
        """
        if source == target:
            return ()
        nodes = self._find_path([source], {target})
        if nodes is None:
            return None
        return tuple(Edge(a, b, min(self._succ[a][b], key=_label_key)) for a, b in pairwise(nodes))

    def impact(self, node: NodeRef) -> ImpactReport:
        """Every dataset version, run and model version downstream of ``node``."""
        reached = self.descendants(node)
        by_kind: dict[NodeKind, list[NodeRef]] = {kind: [] for kind in NodeKind}
        for item in reached:
            by_kind[item.node.kind].append(item.node)
        affected = {
            transformation_id
            for upstream in (node, *(item.node for item in reached))
            for transformation_id in self._consumers.get(upstream, ())
        }
        return ImpactReport(
            source=node,
            dataset_versions=tuple(by_kind[NodeKind.DATASET_VERSION]),
            runs=tuple(by_kind[NodeKind.RUN]),
            model_versions=tuple(by_kind[NodeKind.MODEL_VERSION]),
            transformations=self._in_topological_order(affected),
        )

    def upstream_chain(self, node: NodeRef) -> tuple[Transformation, ...]:
        """The replay plan: transformations that rebuild ``node`` from its sources.

        A dataset version is rebuilt by the transformation that first produced it (see
        :meth:`producers`), whose inputs are rebuilt in turn; a dataset version nothing
        produced is a source. For a run or a model version the plan rebuilds every
        version upstream of it. Ingest transformations (no inputs) are included: the
        replayer decides whether it can re-run them or must take their outputs as given.

        Returns:
            The transformations in topological order: each one after the producers of its
            inputs. Empty for a source.
        """
        needed: set[str] = set()
        seen = {node}
        stack = [node]
        while stack:
            current = stack.pop()
            if current.kind is NodeKind.DATASET_VERSION:
                producers = self._producers.get(current)
                if not producers:
                    continue
                producer = min(producers, key=self._rank.__getitem__)
                needed.add(producer)
                upstream: Iterable[NodeRef] = self._transformations[producer].inputs
            else:
                upstream = self._pred.get(current, ())
            for parent in upstream:
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return self._in_topological_order(needed)

    def topological_order(self) -> tuple[NodeRef, ...]:
        """Every node, each after all of its ancestors (ties in natural order)."""
        indegree = {node: len(parents) for node, parents in self._pred.items()}
        ready = [node for node, count in indegree.items() if count == 0]
        heapq.heapify(ready)
        order: list[NodeRef] = []
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for child in self._succ[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    heapq.heappush(ready, child)
        return tuple(order)

    def subgraph(self, nodes: Iterable[NodeRef]) -> LineageDAG:
        """The part of the graph around ``nodes``, e.g. for display.

        Keeps each transformation with an output among ``nodes`` and, unless it is an
        ingest, an input among them (whole, with all its inputs and outputs), and each
        usage edge with both ends among them.
        """
        keep = {node for node in nodes if node in self._succ}
        sub = LineageDAG()
        for node in keep:
            sub.add_node(node)
        for transformation in self._transformations.values():
            if keep.isdisjoint(transformation.outputs):
                continue
            if transformation.inputs and keep.isdisjoint(transformation.inputs):
                continue
            sub._insert_transformation(transformation)
        for source, target in self._usage:
            if source in keep and target in keep:
                sub._insert_usage(source, target)
        return sub

    def neighbourhood(self, node: NodeRef, depth: int | None = None) -> LineageDAG:
        """The subgraph of ``node`` with its ancestors and descendants up to ``depth``."""
        around = [item.node for item in self.ancestors(node, depth)]
        around += [item.node for item in self.descendants(node, depth)]
        return self.subgraph([node, *around])

    # --- internals --------------------------------------------------------------------------

    def _check_transformation(self, transformation: Transformation) -> bool:
        """Validate a transformation; False when it is already recorded."""
        if not isinstance(transformation, Transformation):
            raise InvalidError(f"expected a Transformation. Got {transformation!r} instead.")
        if transformation.status is not TransformationStatus.COMPLETED:
            raise InvalidError(
                f"transformation {transformation.id!r} is {transformation.status.value}; "
                "only completed transformations are lineage",
                field="status",
            )
        existing = self._transformations.get(transformation.id)
        if existing is not None:
            if existing == transformation:
                return False
            raise ConflictError(
                f"transformation {transformation.id!r} is already recorded with different content",
                transformation_id=transformation.id,
            )
        loops = set(transformation.inputs).intersection(transformation.outputs)
        if loops:
            looped = min(loops)
            raise CycleError([looped, looped], transformation_id=transformation.id)
        return True

    def _insert_transformation(self, transformation: Transformation) -> None:
        transformation_id = transformation.id
        self._transformations[transformation_id] = transformation
        self._rank[transformation_id] = _preference(transformation)
        for output in transformation.outputs:
            self.add_node(output)
            self._producers.setdefault(output, []).append(transformation_id)
        for source in transformation.inputs:
            self.add_node(source)
            self._consumers.setdefault(source, []).append(transformation_id)
            children = self._succ[source]
            for output in transformation.outputs:
                children.setdefault(output, set()).add(transformation_id)
                self._pred[output].add(source)

    def _insert_usage(self, source: NodeRef, target: NodeRef) -> None:
        self.add_node(source)
        self.add_node(target)
        self._succ[source].setdefault(target, set()).add(None)
        self._pred[target].add(source)
        self._usage.add((source, target))

    def _reach(
        self,
        node: NodeRef,
        depth: int | None,
        adjacency: Mapping[NodeRef, Iterable[NodeRef]],
    ) -> tuple[NodeDistance, ...]:
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)):
            raise InvalidError(
                f"depth must be an int or None. Got {depth!r} instead.", field="depth"
            )
        if depth is not None and depth < 0:
            raise InvalidError(f"depth must be >= 0. Got {depth!r} instead.", field="depth")
        distances = {node: 0}
        frontier = [node]
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            following: list[NodeRef] = []
            for current in frontier:
                for neighbour in adjacency.get(current, ()):
                    if neighbour not in distances:
                        distances[neighbour] = level
                        following.append(neighbour)
            frontier = following
        del distances[node]
        ordered = sorted(distances.items(), key=lambda item: (item[1], item[0].sort_key))
        return tuple(NodeDistance(reached, distance) for reached, distance in ordered)

    def _find_path(self, starts: Iterable[NodeRef], goals: set[NodeRef]) -> list[NodeRef] | None:
        """A shortest forward path from one of ``starts`` to one of ``goals``, or None."""
        parents: dict[NodeRef, NodeRef | None] = {}
        frontier: list[NodeRef] = []
        for start in sorted(starts):
            if start in self._succ and start not in parents:
                parents[start] = None
                frontier.append(start)
        while frontier:
            following: list[NodeRef] = []
            for current in frontier:
                if current in goals:
                    path = [current]
                    step = parents[current]
                    while step is not None:
                        path.append(step)
                        step = parents[step]
                    return path[::-1]
                for child in sorted(self._succ[current]):
                    if child not in parents:
                        parents[child] = current
                        following.append(child)
            frontier = following
        return None

    def _find_any_cycle(self) -> list[NodeRef] | None:
        """Some cycle of the graph, first node repeated at the end, or None if acyclic."""
        indegree = {node: len(parents) for node, parents in self._pred.items()}
        ready = [node for node, count in indegree.items() if count == 0]
        while ready:
            node = ready.pop()
            for child in self._succ[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    ready.append(child)
        # Every node Kahn could not remove has a parent it could not remove either, so
        # walking parents inside that set must eventually revisit a node.
        stuck = {node for node, count in indegree.items() if count > 0}
        if not stuck:
            return None
        walk: dict[NodeRef, int] = {}
        current = min(stuck)
        while current not in walk:
            walk[current] = len(walk)
            current = min(parent for parent in self._pred[current] if parent in stuck)
        backwards = list(walk)[walk[current] :]
        cycle = backwards[::-1]
        return [*cycle, cycle[0]]

    def _in_topological_order(self, ids: Iterable[str]) -> tuple[Transformation, ...]:
        """Order transformations so each follows every producer of its inputs among them."""
        members = set(ids)
        blockers: dict[str, int] = {}
        followers: dict[str, list[str]] = {member: [] for member in members}
        for member in members:
            producers = {
                producer
                for source in self._transformations[member].inputs
                for producer in self._producers.get(source, ())
                if producer in members
            }
            blockers[member] = len(producers)
            for producer in producers:
                followers[producer].append(member)
        rank = self._rank
        ready = [rank[member] for member, count in blockers.items() if count == 0]
        heapq.heapify(ready)
        order: list[Transformation] = []
        while ready:
            *_, member = heapq.heappop(ready)
            order.append(self._transformations[member])
            for follower in followers[member]:
                blockers[follower] -= 1
                if blockers[follower] == 0:
                    heapq.heappush(ready, rank[follower])
        return tuple(order)


def _check_usage_edge(source: NodeRef, target: NodeRef) -> None:
    if not isinstance(source, NodeRef) or not isinstance(target, NodeRef):
        raise InvalidError(f"edge ends must be NodeRef values. Got {source!r} -> {target!r}.")
    if (source.kind, target.kind) not in USAGE_EDGE_KINDS:
        if source.kind is NodeKind.DATASET_VERSION and target.kind is NodeKind.DATASET_VERSION:
            hint = "; record a Transformation for data derived from data"
        else:
            hint = ""
        allowed = ", ".join(f"{a.value} -> {b.value}" for a, b in USAGE_EDGE_KINDS)
        raise InvalidError(
            f"a usage edge cannot join {source} to {target} ({source.kind.value} -> "
            f"{target.kind.value}); allowed: {allowed}{hint}",
            field="edge",
        )
