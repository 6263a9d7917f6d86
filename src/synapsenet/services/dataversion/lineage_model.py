"""The lineage domain: node references, code identities and recorded transformations.

Everything here is an immutable value with a canonical JSON form (sorted keys, no
whitespace, UTC timestamps with microseconds), so the store can persist it as text and hash
it, and so two processes that record the same transformation produce the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion._lineage_json import (
    canonical_json,
    format_utc,
    freeze_json,
    load_object,
    parse_utc,
    require_choice,
    require_field,
    require_mapping,
    require_text,
    require_utc,
    thaw_json,
)

__all__ = [
    "CodeHashBasis",
    "CodeIdentity",
    "JSONValue",
    "NodeKind",
    "NodeRef",
    "Transformation",
    "TransformationStatus",
    "TransformationType",
    "canonical_json",
    "freeze_json",
    "thaw_json",
]

JSONValue: TypeAlias = (
    bool | int | float | str | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)
"""A JSON document as Python values (frozen ones use tuples and read-only mappings)."""


class TransformationType(StrEnum):
    """What kind of operation turned input versions into output versions."""

    INGEST = "ingest"
    FILTER = "filter"
    MAP = "map"
    JOIN = "join"
    AGGREGATE = "aggregate"
    SPLIT = "split"
    SAMPLE = "sample"
    AUGMENT = "augment"
    FEATURE_ENGINEERING = "feature_engineering"
    CLEAN = "clean"
    DEDUPLICATE = "deduplicate"
    UNION = "union"
    CUSTOM = "custom"


class TransformationStatus(StrEnum):
    """How a recorded transformation ended (or that it has not ended yet)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class NodeKind(StrEnum):
    """The kinds of things the lineage graph connects."""

    DATASET_VERSION = "dataset_version"
    RUN = "run"
    MODEL_VERSION = "model_version"

    @property
    def prefix(self) -> str:
        """The prefix of this kind in a node's string form (``dataset``, ``run``, ``model``)."""
        return _PREFIX_BY_KIND[self]


_PREFIX_BY_KIND = {
    NodeKind.DATASET_VERSION: "dataset",
    NodeKind.RUN: "run",
    NodeKind.MODEL_VERSION: "model",
}
_KIND_BY_PREFIX = {prefix: kind for kind, prefix in _PREFIX_BY_KIND.items()}

# Names exclude "@" so that "name@version" splits in exactly one place, and whitespace so
# that a reference survives being pasted into a shell, a URL path or a log line.
_DATASET_ID = re.compile(r"(?P<name>[^\s@]+)@v(?P<number>[1-9][0-9]*)")
_MODEL_ID = re.compile(r"(?P<name>[^\s@]+)@(?P<version>[^\s@]+)")
_RUN_ID = re.compile(r"[^\s]+")
_REFERENCE_FORMS = "dataset:<name>@v<N>, run:<id> or model:<name>@<version>"


@dataclass(frozen=True, slots=True, repr=False)
class NodeRef:
    """A reference to one node of the lineage graph.

    The string form is ``dataset:<name>@v<N>``, ``run:<id>`` or ``model:<name>@<version>``;
    :meth:`parse` reads it back. References order naturally (``ds@v2`` before ``ds@v10``),
    which is the deterministic order every graph query returns nodes in.

    Attributes:
        kind: Dataset version, experiment run or model version.
        id: The part after the prefix: ``<name>@v<N>``, ``<id>`` or ``<name>@<version>``.
    """

    kind: NodeKind
    id: str
    _key: tuple[str, str, int, str] = field(init=False, repr=False, compare=False, hash=False)
    _hash: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        try:
            kind = NodeKind(self.kind)
        except ValueError:
            raise InvalidError(
                f"unknown lineage node kind {self.kind!r}; expected one of "
                f"{', '.join(k.value for k in NodeKind)}",
                field="kind",
            ) from None
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.id, str):
            raise InvalidError(f"a {kind.value} id must be a string", field="id")
        object.__setattr__(self, "_key", _sort_key(kind, self.id))
        # Graphs hash references constantly; the generated hash would re-hash the enum
        # (a Python-level call) every time.
        object.__setattr__(self, "_hash", hash((kind.value, self.id)))

    @classmethod
    def dataset_version(cls, name: str, number: int) -> NodeRef:
        """The reference of version ``number`` (1-based) of dataset ``name``."""
        return cls(NodeKind.DATASET_VERSION, f"{name}@v{number}")

    @classmethod
    def run(cls, run_id: str) -> NodeRef:
        """The reference of an experiment run."""
        return cls(NodeKind.RUN, run_id)

    @classmethod
    def model_version(cls, name: str, version: str) -> NodeRef:
        """The reference of version ``version`` of registered model ``name``."""
        return cls(NodeKind.MODEL_VERSION, f"{name}@{version}")

    @classmethod
    def parse(cls, text: str, *, field: str = "node") -> NodeRef:
        """Read a reference from its string form.

        Args:
            text: ``dataset:<name>@v<N>``, ``run:<id>`` or ``model:<name>@<version>``.
            field: The input field named in the error message.

        Returns:
            The reference.

        Raises:
            InvalidError: When ``text`` has none of the three forms.
        """
        prefix, sep, rest = text.partition(":") if isinstance(text, str) else ("", "", "")
        kind = _KIND_BY_PREFIX.get(prefix)
        if not sep or kind is None:
            raise InvalidError(
                f"{text!r} is not a lineage node reference; expected {_REFERENCE_FORMS}",
                field=field,
            )
        try:
            return cls(kind, rest)
        except InvalidError as exc:
            raise InvalidError(exc.detail, field=field) from None

    @property
    def name(self) -> str:
        """The dataset or model name, or the run id."""
        return self._key[1]

    @property
    def version(self) -> str | None:
        """``v<N>`` for a dataset version, the version of a model version, None for a run."""
        if self.kind is NodeKind.RUN:
            return None
        return self._key[3]

    @property
    def version_number(self) -> int | None:
        """The version number ``N`` of a dataset version; None for other kinds."""
        return self._key[2] if self.kind is NodeKind.DATASET_VERSION else None

    @property
    def sort_key(self) -> tuple[str, str, int, str]:
        """The natural sort key: kind, name, version number, version."""
        return self._key

    def __str__(self) -> str:
        return f"{self.kind.prefix}:{self.id}"

    def __repr__(self) -> str:
        return f"NodeRef.parse({str(self)!r})"

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeRef):
            return NotImplemented
        return self.id == other.id and self.kind is other.kind

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, NodeRef):
            return NotImplemented
        return self._key < other._key


def _sort_key(kind: NodeKind, node_id: str) -> tuple[str, str, int, str]:
    """Validate ``node_id`` for ``kind`` and build the natural sort key of the reference."""
    if kind is NodeKind.DATASET_VERSION:
        match = _DATASET_ID.fullmatch(node_id)
        if match is not None:
            number = int(match["number"])
            return (kind.value, match["name"], number, f"v{number}")
    elif kind is NodeKind.MODEL_VERSION:
        match = _MODEL_ID.fullmatch(node_id)
        if match is not None:
            return (kind.value, match["name"], 0, match["version"])
    elif _RUN_ID.fullmatch(node_id):
        return (kind.value, node_id, 0, "")
    raise InvalidError(
        f"{kind.prefix}:{node_id!r} is not a valid lineage node reference; "
        f"expected {_REFERENCE_FORMS} (names without '@' or whitespace, N >= 1)",
        field="id",
    )


class CodeHashBasis(StrEnum):
    """What a code identity's hash was computed from."""

    SOURCE = "source"
    """The function's source text: the normal, portable case."""
    BYTECODE = "bytecode"
    """The compiled code object, when no source is retrievable (REPL, ``exec``)."""
    NAME = "name"
    """Only the qualified name, for builtins that have neither source nor bytecode."""


_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CodeIdentity:
    """Which code ran: enough to tell whether a replay runs the same function.

    Attributes:
        qualified_name: ``module.qualname`` of the callable.
        source_hash: BLAKE3 hex digest of the source (line endings normalised to LF),
            or of the fallback named by ``basis``.
        library_versions: Installed versions of the packages the code depends on (and
            ``python``), sorted by name.
        basis: What ``source_hash`` was computed from.
        note: Why a fallback basis was used, for people reading the record.
    """

    qualified_name: str
    source_hash: str
    library_versions: Mapping[str, str] = field(default_factory=dict)
    basis: CodeHashBasis = CodeHashBasis.SOURCE
    note: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.qualified_name, str) or not self.qualified_name:
            raise InvalidError("code qualified_name must not be empty", field="qualified_name")
        if not isinstance(self.source_hash, str) or not _HEX_DIGEST.fullmatch(self.source_hash):
            raise InvalidError(
                "code source_hash must be a 64-character lowercase hex BLAKE3 digest. "
                f"Got {self.source_hash!r} instead.",
                field="source_hash",
            )
        versions = self.library_versions
        if not isinstance(versions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
        ):
            raise InvalidError(
                "library_versions must map package names to version strings",
                field="library_versions",
            )
        object.__setattr__(
            self, "library_versions", MappingProxyType(dict(sorted(versions.items())))
        )
        try:
            object.__setattr__(self, "basis", CodeHashBasis(self.basis))
        except ValueError:
            raise InvalidError(f"unknown code hash basis {self.basis!r}", field="basis") from None

    def __hash__(self) -> int:
        return hash((self.qualified_name, self.source_hash, self.basis))

    def same_code(self, other: CodeIdentity) -> bool:
        """Whether ``other`` names the same code, whatever library versions it ran with."""
        return (self.qualified_name, self.source_hash, self.basis) == (
            other.qualified_name,
            other.source_hash,
            other.basis,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "qualified_name": self.qualified_name,
            "source_hash": self.source_hash,
            "library_versions": dict(self.library_versions),
            "basis": self.basis.value,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeIdentity:
        """Inverse of :meth:`to_dict`.

        Raises:
            InvalidError: When a field is missing or malformed.
        """
        require_mapping(data, "code")
        note = data.get("note")
        if note is not None and not isinstance(note, str):
            raise InvalidError("code note must be a string or null", field="note")
        return cls(
            qualified_name=require_field(data, "qualified_name", str),
            source_hash=require_field(data, "source_hash", str),
            library_versions=require_field(data, "library_versions", Mapping),
            basis=CodeHashBasis(require_choice(data, "basis", CodeHashBasis)),
            note=note,
        )

    def to_json(self) -> str:
        """Canonical JSON form."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, document: str | bytes) -> CodeIdentity:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(load_object(document, "code"))


_INPUT_KINDS = frozenset({NodeKind.DATASET_VERSION, NodeKind.MODEL_VERSION})


@dataclass(frozen=True, slots=True, kw_only=True)
class Transformation:
    """One recorded transformation: the edge from its input versions to its outputs.

    Outputs are always dataset versions. Inputs are dataset versions or model versions (a
    model that labels or scores data); experiment runs join the graph through plain edges
    (see :class:`~synapsenet.services.dataversion.graph.LineageDAG`). Inputs keep their
    order, since it matters to a join. ``parameters`` is deep-frozen: mappings become
    read-only and lists become tuples. Equal transformations hash by ``id``.

    Attributes:
        id: Unique id of this execution.
        type: What kind of operation it is.
        name: Name of the (registered) transformation, e.g. ``clean_orders``.
        inputs: Versions read; empty for an ingest from outside the system.
        outputs: Dataset versions written; at least one.
        started_at: Aware UTC start time.
        finished_at: Aware UTC end time; None only while ``status`` is RUNNING.
        parameters: JSON parameters the callable ran with.
        code: Identity of the code that ran, None when unknown (e.g. an external tool).
        status: Running, completed or failed.
        version: Version of the registered transformation, None for an ad-hoc one.
    """

    id: str
    type: TransformationType
    name: str
    inputs: tuple[NodeRef, ...]
    outputs: tuple[NodeRef, ...]
    started_at: datetime
    finished_at: datetime | None
    parameters: Mapping[str, JSONValue] = field(default_factory=dict)
    code: CodeIdentity | None = None
    status: TransformationStatus = TransformationStatus.COMPLETED
    version: str | None = None

    def __post_init__(self) -> None:
        require_text(self.id, "id")
        require_text(self.name, "name")
        if self.version is not None:
            require_text(self.version, "version")
        set_ = object.__setattr__
        try:
            set_(self, "type", TransformationType(self.type))
        except ValueError:
            raise InvalidError(
                f"unknown transformation type {self.type!r}; expected one of "
                f"{', '.join(t.value for t in TransformationType)}",
                field="type",
            ) from None
        try:
            set_(self, "status", TransformationStatus(self.status))
        except ValueError:
            raise InvalidError(
                f"unknown transformation status {self.status!r}", field="status"
            ) from None
        set_(self, "inputs", _node_tuple(self.inputs, "inputs", _INPUT_KINDS))
        set_(self, "outputs", _node_tuple(self.outputs, "outputs", {NodeKind.DATASET_VERSION}))
        if not self.outputs:
            raise InvalidError("a transformation must have at least one output", field="outputs")
        if not isinstance(self.parameters, Mapping):
            raise InvalidError("parameters must be a JSON object", field="parameters")
        set_(self, "parameters", freeze_json(self.parameters, field="parameters"))
        if self.code is not None and not isinstance(self.code, CodeIdentity):
            raise InvalidError("code must be a CodeIdentity or None", field="code")
        set_(self, "started_at", require_utc(self.started_at, "started_at"))
        if self.finished_at is None:
            if self.status is not TransformationStatus.RUNNING:
                raise InvalidError(
                    f"a {self.status.value} transformation needs finished_at",
                    field="finished_at",
                )
        else:
            finished = require_utc(self.finished_at, "finished_at")
            if finished < self.started_at:
                raise InvalidError(
                    f"finished_at ({finished.isoformat()}) is before started_at "
                    f"({self.started_at.isoformat()})",
                    field="finished_at",
                )
            set_(self, "finished_at", finished)

    def __hash__(self) -> int:
        return hash(self.id)

    def plain_parameters(self) -> dict[str, Any]:
        """The parameters as plain dicts and lists, as the callable first received them.

        Use this, not ``dict(parameters)``, to re-run a transformation: the frozen form
        holds tuples where the original held lists, and a callable may treat them
        differently (pandas does: ``df[["a", "b"]]`` is not ``df[("a", "b")]``).
        """
        plain: dict[str, Any] = thaw_json(self.parameters)
        return plain

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: nodes as their string forms, times as ISO 8601 UTC."""
        return {
            "id": self.id,
            "type": self.type.value,
            "name": self.name,
            "version": self.version,
            "inputs": [str(node) for node in self.inputs],
            "outputs": [str(node) for node in self.outputs],
            "parameters": thaw_json(self.parameters),
            "code": None if self.code is None else self.code.to_dict(),
            "started_at": format_utc(self.started_at),
            "finished_at": None if self.finished_at is None else format_utc(self.finished_at),
            "status": self.status.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transformation:
        """Inverse of :meth:`to_dict`.

        Raises:
            InvalidError: When a field is missing or malformed; the message names it.
        """
        require_mapping(data, "transformation")
        code = data.get("code")
        finished = data.get("finished_at")
        if finished is not None and not isinstance(finished, str):
            raise InvalidError("finished_at must be an ISO 8601 string", field="finished_at")
        version = data.get("version")
        if version is not None and not isinstance(version, str):
            raise InvalidError("version must be a string or null", field="version")
        return cls(
            id=require_field(data, "id", str),
            type=TransformationType(require_choice(data, "type", TransformationType)),
            name=require_field(data, "name", str),
            version=version,
            inputs=_parse_nodes(data, "inputs"),
            outputs=_parse_nodes(data, "outputs"),
            parameters=require_field(data, "parameters", Mapping),
            code=None if code is None else CodeIdentity.from_dict(code),
            started_at=parse_utc(require_field(data, "started_at", str), "started_at"),
            finished_at=None if finished is None else parse_utc(finished, "finished_at"),
            status=TransformationStatus(require_choice(data, "status", TransformationStatus)),
        )

    def to_json(self) -> str:
        """Canonical JSON form."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, document: str | bytes) -> Transformation:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(load_object(document, "transformation"))


def _node_tuple(
    nodes: object, field: str, kinds: set[NodeKind] | frozenset[NodeKind]
) -> tuple[NodeRef, ...]:
    if isinstance(nodes, str | bytes) or not isinstance(nodes, Sequence):
        raise InvalidError(f"{field} must be a sequence of NodeRef", field=field)
    result = tuple(nodes)
    for node in result:
        if not isinstance(node, NodeRef):
            raise InvalidError(
                f"{field} must hold NodeRef values. Got {node!r} instead.", field=field
            )
        if node.kind not in kinds:
            allowed = " or ".join(sorted(kind.value for kind in kinds))
            raise InvalidError(
                f"{field}: {node} is a {node.kind.value}, not a {allowed}", field=field
            )
    if len(set(result)) != len(result):
        raise InvalidError(f"{field} lists a node more than once", field=field)
    return result


def _parse_nodes(data: Mapping[str, Any], key: str) -> tuple[NodeRef, ...]:
    items = require_field(data, key, list)
    if not all(isinstance(item, str) for item in items):
        raise InvalidError(f"field {key!r} must list node references as strings", field=key)
    return tuple(NodeRef.parse(item, field=key) for item in items)
