"""Running registered transformations: load inputs, run, commit outputs, record lineage."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from synapsenet.core.db import utcnow
from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage import LineageGraph
from synapsenet.services.dataversion.lineage_model import (
    JSONValue,
    NodeRef,
)
from synapsenet.services.dataversion.models import DatasetVersion
from synapsenet.services.dataversion.transforms import RegisteredTransform


def run_transform(
    engine: DatasetVersioningEngine,
    entry: RegisteredTransform,
    inputs: Sequence[str],
    parameters: Mapping[str, Any],
) -> tuple[Any, ...]:
    """Call a registered transformation on input versions loaded as tables.

    Args:
        engine: Loads the inputs (hash-verified).
        entry: The registered transformation.
        inputs: Version references, passed positionally in this order.
        parameters: Keyword arguments.

    Returns:
        The outputs: the callable's tuple, or its single result as a 1-tuple.
    """
    tables = [engine.load_table(ref) for ref in inputs]
    result = entry.fn(*tables, **parameters)
    return tuple(result) if isinstance(result, tuple) else (result,)


def apply_transform(
    engine: DatasetVersioningEngine,
    lineage: LineageGraph,
    entry: RegisteredTransform,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    parameters: Mapping[str, JSONValue] | None = None,
    message: str = "",
    author: str = "",
) -> list[DatasetVersion]:
    """Run a registered transformation, commit its outputs and record the lineage edge.

    Args:
        engine: The versioning engine.
        lineage: Where the transformation is recorded.
        entry: The registered transformation.
        inputs: Input version references (``name@vN``, tags...), in argument order.
        outputs: One dataset name per output of the callable.
        parameters: JSON keyword arguments (recorded with the lineage).
        message: Commit message of the outputs (defaults to the transformation's name).
        author: Who runs it.

    Returns:
        The committed output versions.

    Raises:
        InvalidError: The callable returned a different number of outputs.
    """
    params = dict(parameters or {})
    resolved = [engine.resolve(ref) for ref in inputs]
    started = utcnow()
    results = run_transform(engine, entry, [v.ref for v in resolved], params)
    if len(results) != len(outputs):
        raise InvalidError(
            f"{entry.reference} returned {len(results)} output(s) for {len(outputs)} "
            "output dataset(s)",
            field="outputs",
        )
    committed = [
        engine.commit(
            name,
            result,
            message=message or f"{entry.reference} of {', '.join(v.ref for v in resolved)}",
            author=author,
        )
        for name, result in zip(outputs, results, strict=True)
    ]
    inputs_nodes = [NodeRef.dataset_version(v.dataset, v.number) for v in resolved]
    # An output identical to one of its inputs is that same version (commits of identical
    # content are no-ops): there is no new version to draw an edge to.
    new_outputs = [
        node
        for node in (NodeRef.dataset_version(v.dataset, v.number) for v in committed)
        if node not in inputs_nodes
    ]
    if new_outputs:
        lineage.record(
            entry.record(
                id=secrets.token_hex(16),
                inputs=inputs_nodes,
                outputs=new_outputs,
                started_at=started,
                finished_at=utcnow(),
                parameters=params,
            )
        )
    return committed
