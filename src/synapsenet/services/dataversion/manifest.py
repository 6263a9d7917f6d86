"""Manifests: the files of one version, their canonical JSON and the Merkle root naming it.

A :class:`Manifest` lists :class:`~.chunks.FileEntry` objects sorted by path, plus string
metadata. Its Merkle root is the version id, and its canonical document is stored at
``manifests/<root>.json`` by :class:`ManifestStore`.

Canonical document (``to_json``): UTF-8 JSON with keys sorted, no whitespace, non-ASCII
characters unescaped, integers only (no floats), shaped as::

    {"files": [{"chunks": [{"address": <hex str>, "size": <int>}, ...],
                "content_hash": <hex str>, "path": <str>, "size": <int>}, ...],
     "format": "synapsenet.manifest", "metadata": {<str>: <str>, ...}, "version": 1}

Merkle root (``merkle_root``), with ``H`` = BLAKE3 (32-byte digest) and ``||`` =
concatenation::

    leaf(file)     = H(0x00 || canonical JSON of the file's object, as in "files" above)
    metadata_leaf  = H(0x02 || canonical JSON of the metadata object)
    root           = H(0x01 || metadata_leaf || leaf(file_1) || ... || leaf(file_n))

with files in path order (Unicode code point order, which is also UTF-8 byte order). The
one-byte prefixes keep leaves, the metadata and the root in separate domains, and every
node input is a fixed number of 32-byte digests, so no two different manifests share a
root. The root is written in lowercase hex.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final, NoReturn

import blake3

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion._gc_pause import collector_paused
from synapsenet.services.dataversion.chunking import is_digest, validate_digest
from synapsenet.services.dataversion.chunks import (
    ChunkRef,
    CorruptDataError,
    FileEntry,
    validate_path,
)

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_KEY_PREFIX",
    "MANIFEST_VERSION",
    "ChunkRef",
    "FileEntry",
    "Manifest",
    "ManifestStore",
    "manifest_key",
    "validate_path",
]

MANIFEST_FORMAT: Final = "synapsenet.manifest"
MANIFEST_VERSION: Final = 1
MANIFEST_KEY_PREFIX: Final = "manifests/"

_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"
_METADATA: Final = b"\x02"


def _canonical(document: object) -> bytes:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


_PIECE_CHUNKS: Final = 2048


def _entry_pieces(entry: FileEntry) -> Iterator[bytes]:
    """The canonical JSON of one file entry, in pieces, without building a document.

    The same bytes as :func:`_canonical` of ``{"chunks": [{"address", "size"}, ...],
    "content_hash", "path", "size"}``, which for a file of a hundred thousand chunks would
    take tens of MB of dicts and text at once. Addresses are hex digits and sizes ints, so
    only the path needs escaping.
    """
    yield b'{"chunks":['
    refs = entry.chunks
    for start in range(0, len(refs), _PIECE_CHUNKS):
        piece = ",".join(
            f'{{"address":"{ref.address}","size":{ref.size}}}'
            for ref in refs[start : start + _PIECE_CHUNKS]
        )
        yield (piece if start == 0 else "," + piece).encode("ascii")
    tail = f'],"content_hash":"{entry.content_hash}","path":{_canonical(entry.path).decode()}'
    yield f'{tail},"size":{entry.size}}}'.encode()


def _check_metadata(metadata: object) -> dict[str, str]:
    if not isinstance(metadata, Mapping):
        raise InvalidError(
            f"The 'metadata' of a Manifest must be a mapping of str to str. Got {metadata!r}.",
            field="metadata",
        )
    for key, value in metadata.items():
        for what, text in (("key", key), ("value", value)):
            if not isinstance(text, str):
                raise InvalidError(
                    f"Manifest metadata {what}s must be str. Got {text!r} (for key {key!r}).",
                    field="metadata",
                )
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidError(
                    f"Manifest metadata {what} {text!r} is not valid Unicode.", field="metadata"
                ) from exc
    return dict(sorted(metadata.items()))


def _check_files(files: Iterable[FileEntry]) -> tuple[FileEntry, ...]:
    given = tuple(files)
    wrong = next((entry for entry in given if not isinstance(entry, FileEntry)), None)
    if wrong is not None:
        raise InvalidError(
            f"The 'files' of a Manifest must be FileEntry objects. Got {wrong!r}.", field="files"
        )
    entries = tuple(sorted(given, key=lambda entry: entry.path))
    directories: set[str] = set()
    for previous, entry in zip((None, *entries), entries, strict=False):
        if previous is not None and previous.path == entry.path:
            raise InvalidError(f"The path {entry.path!r} appears twice.", field="files")
        parts = entry.path.split("/")
        directories.update("/".join(parts[:end]) for end in range(1, len(parts)))
    # A path that is also another path's directory could not be checked out.
    clash = next((entry.path for entry in entries if entry.path in directories), None)
    if clash is not None:
        raise InvalidError(
            f"The path {clash!r} is both a file and a directory of other files.", field="files"
        )
    return entries


@dataclass(frozen=True, eq=True)
class Manifest:
    """The files of one version and its metadata; immutable and hashable.

    ``files`` may be given in any order: they are stored sorted by path, so the same set
    of files always gives the same manifest and root.

    Attributes:
        files: The file entries, sorted by path; paths are unique and none is a directory
            of another.
        metadata: String metadata (read-only, sorted by key).

    Raises:
        InvalidError: On a duplicate path, a path that is also a directory of another, or
            metadata that is not str to str.
    """

    files: tuple[FileEntry, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", _check_files(self.files))
        metadata = MappingProxyType(_check_metadata(self.metadata))
        object.__setattr__(self, "metadata", metadata)

    def __hash__(self) -> int:
        return hash((self.files, tuple(self.metadata.items())))

    @cached_property
    def merkle_root(self) -> str:
        """The version id: the hex Merkle root of the files and metadata (see the module)."""
        root = blake3.blake3(_NODE)
        root.update(blake3.blake3(_METADATA + _canonical(dict(self.metadata))).digest())
        for entry in self.files:
            leaf = blake3.blake3(_LEAF)
            for piece in _entry_pieces(entry):
                leaf.update(piece)
            root.update(leaf.digest())
        return root.hexdigest()

    @property
    def total_size(self) -> int:
        """Bytes in all files together."""
        return sum(entry.size for entry in self.files)

    @property
    def addresses(self) -> frozenset[str]:
        """The distinct chunk addresses the files reference (what a sweep must keep)."""
        return frozenset(ref.address for entry in self.files for ref in entry.chunks)

    def find(self, path: str) -> FileEntry | None:
        """The entry of the file at ``path``, or None if the version has no such file."""
        index = bisect.bisect_left(self.files, path, key=lambda entry: entry.path)
        if index < len(self.files) and self.files[index].path == path:
            return self.files[index]
        return None

    def to_json(self) -> bytes:
        """The canonical document (see the module): same manifest, same bytes."""
        return b"".join(self.iter_json())

    def iter_json(self) -> Iterator[bytes]:
        """:meth:`to_json` in pieces, for streaming a large manifest into storage."""
        yield b'{"files":['
        for index, entry in enumerate(self.files):
            if index:
                yield b","
            yield from _entry_pieces(entry)
        metadata = _canonical(dict(self.metadata))
        yield b'],"format":' + _canonical(MANIFEST_FORMAT) + b',"metadata":' + metadata
        yield b',"version":' + _canonical(MANIFEST_VERSION) + b"}"

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview) -> Manifest:
        """Parse and check a manifest document.

        Any valid JSON spelling of a valid manifest is accepted (whitespace, key order);
        duplicate keys, floats, missing or extra fields and wrong types are not.

        Args:
            data: The document, UTF-8 JSON.

        Returns:
            The manifest.

        Raises:
            InvalidError: Saying where the document is wrong (``field="manifest"``).
        """
        return _parse_manifest(data)


# --- parsing ----------------------------------------------------------------------------


def _refuse(where: str, problem: str) -> NoReturn:
    located = f" at {where}" if where else ""
    raise InvalidError(f"Invalid manifest document{located}: {problem}.", field="manifest")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            _refuse("", f"the key {key!r} appears twice in one object")
        document[key] = value
    return document


def _no_constant(name: str) -> NoReturn:
    _refuse("", f"{name} is not a valid number here")


def _no_float(text: str) -> NoReturn:
    _refuse("", f"{text} is not an integer; sizes are integers")


def _object(value: object, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _refuse(where, f"expected an object, got {type(value).__name__}")
    if set(value) != keys:
        missing, extra = sorted(keys - set(value)), sorted(set(value) - keys)
        details = [f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else ""]
        _refuse(where, "; ".join(part for part in details if part))
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        _refuse(where, f"expected an array, got {type(value).__name__}")
    return value


_CHUNK_KEYS: Final = {"address", "size"}


def _parse_entry(value: object, where: str) -> FileEntry:
    document = _object(value, where, {"chunks", "content_hash", "path", "size"})
    refs = []
    for index, item in enumerate(_list(document["chunks"], f"{where}.chunks")):
        ref = _object(item, f"{where}.chunks[{index}]", _CHUNK_KEYS)
        address, size = ref["address"], ref["size"]
        if is_digest(address) and type(size) is int and size >= 1:
            refs.append(ChunkRef.trusted(address, size))  # what ChunkRef() would check
            continue
        try:
            refs.append(ChunkRef(address, size))
        except InvalidError as exc:
            _refuse(f"{where}.chunks[{index}]", exc.detail.rstrip("."))
    try:
        return FileEntry(document["path"], document["size"], document["content_hash"], tuple(refs))
    except InvalidError as exc:
        _refuse(where, exc.detail.rstrip("."))


def _parse_manifest(data: bytes | bytearray | memoryview) -> Manifest:
    if not isinstance(data, bytes | bytearray | memoryview):
        _refuse("", f"expected bytes, got {type(data).__name__}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse("", f"it is not UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_no_float,
        )
    except json.JSONDecodeError as exc:
        _refuse("", f"it is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
    top = _object(document, "", {"files", "format", "metadata", "version"})
    if top["format"] != MANIFEST_FORMAT:
        _refuse("format", f"expected {MANIFEST_FORMAT!r}, got {top['format']!r}")
    if top["version"] != MANIFEST_VERSION or isinstance(top["version"], bool):
        _refuse("version", f"expected {MANIFEST_VERSION}, got {top['version']!r}")
    files = [
        _parse_entry(item, f"files[{index}]")
        for index, item in enumerate(_list(top["files"], "files"))
    ]
    if not isinstance(top["metadata"], dict):
        _refuse("metadata", f"expected an object, got {type(top['metadata']).__name__}")
    try:
        return Manifest(tuple(files), top["metadata"])
    except InvalidError as exc:
        _refuse("", exc.detail.rstrip("."))


# --- storage ----------------------------------------------------------------------------


def manifest_key(root: str) -> str:
    """The object key of the manifest with Merkle root ``root``: ``manifests/<root>.json``.

    Raises:
        InvalidError: If ``root`` is not a hex BLAKE3 digest.
    """
    return f"{MANIFEST_KEY_PREFIX}{validate_digest(root, field='root')}.json"


class ManifestStore:
    """Manifests in an object store, addressed by their Merkle root.

    The last few manifests saved or loaded stay in memory for :meth:`load_recent`: a
    manifest never changes under its root, and a commit reads its parent's, which is
    usually the one the previous commit saved.

    Args:
        store: The object store holding the manifest documents.
        keep: How many recent manifests to keep in memory (0 keeps none).
    """

    def __init__(self, store: ObjectStore, *, keep: int = 2) -> None:
        self.store = store
        self.keep = keep
        self._recent: OrderedDict[str, Manifest] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ManifestStore({self.store!r})"

    def save(self, manifest: Manifest) -> str:
        """Store a manifest's canonical document under its root (idempotent).

        Returns:
            The manifest's Merkle root.

        Raises:
            UnavailableError: If the object store cannot be written.
        """
        root = manifest.merkle_root
        # Rewriting the same bytes is harmless and repairs a damaged copy.
        self.store.put(manifest_key(root), manifest.iter_json())
        self._remember(root, manifest)
        return root

    def load_recent(self, root: str) -> Manifest:
        """:meth:`load`, or the manifest of ``root`` kept from a recent save or load.

        For readers that need a version's content, such as a commit looking up its parent's
        chunks, rather than a check of the stored document (:meth:`load` reads it always).

        Raises:
            What :meth:`load` raises, when ``root`` is not one of the recent manifests.
        """
        with self._lock:
            manifest = self._recent.get(root)
            if manifest is not None:
                self._recent.move_to_end(root)
                return manifest
        manifest = self.load(root)
        self._remember(root, manifest)
        return manifest

    def _remember(self, root: str, manifest: Manifest) -> None:
        with self._lock:
            self._recent[root] = manifest
            self._recent.move_to_end(root)
            while len(self._recent) > self.keep:
                self._recent.popitem(last=False)

    def load(self, root: str) -> Manifest:
        """Read a manifest and check that it is the one ``root`` names.

        Raises:
            InvalidError: If ``root`` is not a hex BLAKE3 digest.
            NotFoundError: If no manifest is stored under ``root``.
            CorruptDataError: Naming the root and key, if the document is invalid or its
                Merkle root differs from ``root``.
        """
        key = manifest_key(root)
        try:
            data = self.store.get(key)
        except NotFoundError as exc:
            raise NotFoundError(f"No manifest with root {root} is stored.", root=root) from exc
        try:
            with collector_paused():  # an object per chunk, none of them cyclic
                manifest = Manifest.from_json(data)
        except InvalidError as exc:
            raise CorruptDataError(
                f"Manifest {root}", f"its object {key!r} holds {exc.detail}", root=root, key=key
            ) from exc
        if manifest.merkle_root != root:
            raise CorruptDataError(
                f"Manifest {root}",
                f"its object {key!r} describes the version {manifest.merkle_root}",
                root=root,
                key=key,
            )
        return manifest

    def exists(self, root: str) -> bool:
        """Whether a manifest is stored under ``root`` (without reading it)."""
        return self.store.exists(manifest_key(root))

    def delete(self, root: str) -> bool:
        """Delete a manifest; its chunks stay until a sweep finds them unreferenced.

        Returns:
            Whether the manifest existed.
        """
        return self.store.delete(manifest_key(root))

    def iter_roots(self) -> Iterator[str]:
        """Iterate, in sorted order, over the roots of the stored manifests."""
        for key in self.store.list(MANIFEST_KEY_PREFIX):
            name = key[len(MANIFEST_KEY_PREFIX) :]
            root = name.removesuffix(".json")
            if name.endswith(".json") and is_digest(root):
                yield root
