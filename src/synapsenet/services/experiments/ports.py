"""What run tracking asks of the data versioning service, in-process and over HTTP.

Two narrow interfaces: :class:`DatasetResolver` turns whatever reference a user logs
(``orders``, ``orders@production``, ``orders@v3``) into the exact numbered version at that
moment, and :class:`LineageLinker` records usage edges in the lineage graph.
:class:`~synapsenet.services.dataversion.lineage.LineageGraph` is a ``LineageLinker`` as it is.
"""

from __future__ import annotations

import re
from typing import Protocol

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.client import DataVersionClient
from synapsenet.services.dataversion.engine import DatasetVersioningEngine
from synapsenet.services.dataversion.lineage_model import NodeRef

_CANONICAL = re.compile(r"^(?P<name>[^\s@]+)@v(?P<number>[1-9][0-9]*)$")


class DatasetResolver(Protocol):
    """Resolves dataset references to exact versions."""

    def resolve(self, ref: str) -> str:
        """The exact version ``ref`` names now, as ``name@vN``.

        Raises:
            NotFoundError: No such dataset, version or tag.
            InvalidError: ``ref`` is malformed.
        """


class LineageLinker(Protocol):
    """Records usage edges of the lineage graph (idempotently)."""

    def link(self, source: NodeRef, target: NodeRef) -> None:
        """Record that ``source`` was used by ``target`` (a read, or a model produced)."""


def parse_canonical(ref: str) -> tuple[str, int]:
    """Split an exact version reference ``name@vN`` into its name and number.

    Raises:
        InvalidError: ``ref`` is not of that form (a tag or a bare name needs a resolver).
    """
    match = _CANONICAL.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise InvalidError(
            f"dataset reference {ref!r} is not an exact version name@vN; tags and bare "
            "names can only be logged when the tracker has a dataset resolver",
            field="ref",
        )
    return match["name"], int(match["number"])


class EngineDatasetResolver:
    """Resolves references with a data versioning engine in this process.

    Args:
        engine: The engine holding the datasets.
    """

    def __init__(self, engine: DatasetVersioningEngine) -> None:
        self.engine = engine

    def resolve(self, ref: str) -> str:
        """The exact version ``ref`` names now, as ``name@vN``."""
        return self.engine.resolve(ref).ref


class ClientDatasetResolver:
    """Resolves references through the data versioning REST API.

    Args:
        client: A client of ``/v1/datasets`` (a viewer key suffices).
    """

    def __init__(self, client: DataVersionClient) -> None:
        self.client = client

    def resolve(self, ref: str) -> str:
        """The exact version ``ref`` names now, as ``name@vN``."""
        name, _, at = ref.partition("@")
        return self.client.get_version(name, at or "head").ref


class ClientLineageLinker:
    """Records lineage links through the data versioning REST API.

    Args:
        client: A client of ``/v1/datasets`` with an operator key.
    """

    def __init__(self, client: DataVersionClient) -> None:
        self.client = client

    def link(self, source: NodeRef, target: NodeRef) -> None:
        """Record the edge ``source -> target``."""
        self.client.link(str(source), str(target))
