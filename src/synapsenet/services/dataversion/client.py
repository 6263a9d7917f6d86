"""DataVersionClient: the data versioning API over HTTP, typed (used by the CLI and the SDK).

Uploads and downloads stream in blocks of a MiB, so memory stays flat whatever the file
size. An upload carries the BLAKE3 of what is sent, and the server refuses a body that
arrived different; a download is hashed as it is written and kept only when it matches the
manifest::

    with DataVersionClient("http://127.0.0.1:8000", api_key=token) as client:
        client.create_dataset("orders", format="csv")
        v1 = client.upload_file("orders", Path("orders.csv"), message="first export")
        client.checkout("orders", "v1", Path("restore/"))

Errors come back as the :mod:`synapsenet.errors` class the server raised (404
``NotFoundError``, 409 ``ConflictError``, 422 ``InvalidError`` with its ``field``; a
schema-incompatible commit's ``extra["changes"]`` lists every change).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import blake3
import httpx

from synapsenet.core.client import ServiceClient
from synapsenet.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    UnavailableError,
)
from synapsenet.services.dataversion._transfer import (
    BLOCK,
    Progress,
    file_blake3,
    read_blocks,
    write_tar,
)
from synapsenet.services.dataversion.chunks import CorruptDataError, validate_path
from synapsenet.services.dataversion.lineage_model import Transformation
from synapsenet.services.dataversion.schemas import (
    CommitPublic,
    DatasetPublic,
    DeprecationPublic,
    DiffPublic,
    Direction,
    FilePublic,
    GcPublic,
    ImpactPublic,
    LineagePublic,
    LinkPublic,
    StatsPublic,
    TransformationSummary,
    VerifyPublic,
    VersionPublic,
)
from synapsenet.services.dataversion.uploads import BLAKE3_HEADER

__all__ = [
    "API_PREFIX",
    "DataVersionClient",
    "Progress",
    "file_blake3",
    "split_ref",
    "write_tar",
]

API_PREFIX = "/v1/datasets"


def split_ref(ref: str, *, default: str = "head") -> tuple[str, str]:
    """Split ``name@v3`` into ``("name", "v3")``; a bare name means ``default``.

    The lineage form ``dataset:name@v3`` is accepted too.

    Raises:
        InvalidError: The reference is empty on either side of the ``@``.
    """
    name, sep, at = ref.removeprefix("dataset:").partition("@")
    if not name or (sep and not at):
        raise InvalidError(
            f"{ref!r} is not a version reference; use name, name@v3 or name@<tag>", field="ref"
        )
    return name, at or default


class DataVersionClient(ServiceClient):
    """Typed client of ``/v1/datasets``.

    Takes the arguments of :class:`~synapsenet.core.client.ServiceClient`: the server's base
    URL, an API key (viewer for reads, operator for changes) and optionally an
    :class:`~synapsenet.core.asgi_transport.InProcessTransport`. Versions are named by a
    dataset and a ref: ``v3`` or ``3``, a tag, ``head``, or a Merkle root.
    """

    @staticmethod
    def _path(dataset: str, *parts: str) -> str:
        path = f"{API_PREFIX}/{quote(dataset, safe='')}"
        return "/".join([path, *parts])

    @classmethod
    def _version_path(cls, dataset: str, ref: str, *parts: str) -> str:
        return cls._path(dataset, "versions", quote(ref, safe=""), *parts)

    # ------------------------------------------------------------------ datasets

    def create_dataset(
        self,
        name: str,
        *,
        format: str,
        compatibility: str = "backward",
        description: str = "",
    ) -> DatasetPublic:
        """Create an empty dataset (``format``: csv, parquet, json, jsonl, arrow, ...)."""
        body = {
            "name": name,
            "format": format,
            "compatibility": compatibility,
            "description": description,
        }
        return DatasetPublic.model_validate(self.post_json(API_PREFIX, body))

    def list_datasets(self) -> list[DatasetPublic]:
        """Every dataset, by name."""
        return [DatasetPublic.model_validate(d) for d in self.get_json(API_PREFIX)]

    def get_dataset(self, name: str) -> DatasetPublic:
        """One dataset."""
        return DatasetPublic.model_validate(self.get_json(self._path(name)))

    # ------------------------------------------------------------------ uploads

    def upload(
        self,
        dataset: str,
        content: bytes | Iterable[bytes],
        *,
        size: int | None = None,
        path: str | None = None,
        archive: bool = False,
        blake3_digest: str | None = None,
        message: str = "",
        author: str | None = None,
        parent: int | str = "head",
        tags: Sequence[str] = (),
    ) -> CommitPublic:
        """Commit the bytes of one file (or of a tar archive of files) as a new version.

        Args:
            dataset: The dataset.
            content: The body, whole or as blocks.
            size: Its length (sent as ``Content-Length``; else the body is chunked).
            path: The file's path in the version (single files).
            archive: ``content`` is a tar archive whose members become the files.
            blake3_digest: Hex BLAKE3 of ``content``; the server refuses a body that
                arrives different.
            message: What changed.
            author: Who commits; default the API key's name.
            parent: ``"head"`` or the version number this builds on (conflict otherwise).
            tags: Tags for the new version.

        Returns:
            The new version (``created``), or the unchanged head if the content is the same.
        """
        params: dict[str, Any] = {"message": message, "parent": str(parent)}
        if path is not None:
            params["path"] = path
        if author is not None:
            params["author"] = author
        if tags:
            params["tag"] = list(tags)
        headers = {"Content-Type": "application/x-tar" if archive else "application/octet-stream"}
        if blake3_digest is not None:
            headers[BLAKE3_HEADER] = blake3_digest
        if size is not None:
            headers["Content-Length"] = str(size)
        # A commit can take long after the last byte (chunking, schema checks): no read
        # timeout. Not retried: a body stream cannot be replayed.
        timeout = self._http.timeout
        with self.stream(
            "POST",
            self._path(dataset, "versions"),
            content=content,
            params=params,
            headers=headers,
            timeout=httpx.Timeout(
                timeout.connect, read=None, write=timeout.write, pool=timeout.pool
            ),
        ) as response:
            response.read()
            return CommitPublic.model_validate(response.json())

    def upload_file(
        self,
        dataset: str,
        file: Path,
        *,
        path: str | None = None,
        blake3_digest: str | None = None,
        progress: Progress | None = None,
        message: str = "",
        author: str | None = None,
        parent: int | str = "head",
        tags: Sequence[str] = (),
    ) -> CommitPublic:
        """Stream a file to the server and commit it.

        Args:
            dataset: The dataset.
            file: The local file.
            path: Its path in the version; default the file's name.
            blake3_digest: Its BLAKE3, if known; else computed first (one extra read).
            progress: Called with the bytes sent.
            message: What changed.
            author: Who commits; default the API key's name.
            parent: ``"head"`` or the version number this builds on.
            tags: Tags for the new version.
        """
        digest = blake3_digest or file_blake3(file)
        return self.upload(
            dataset,
            read_blocks(file, progress),
            size=file.stat().st_size,
            path=path or file.name,
            blake3_digest=digest,
            message=message,
            author=author,
            parent=parent,
            tags=tags,
        )

    def upload_directory(
        self,
        dataset: str,
        directory: Path,
        *,
        progress: Progress | None = None,
        on_packed: Callable[[int], None] | None = None,
        message: str = "",
        author: str | None = None,
        parent: int | str = "head",
        tags: Sequence[str] = (),
    ) -> CommitPublic:
        """Commit every file under ``directory`` (sent as one tar archive).

        Args:
            dataset: The dataset.
            directory: The local directory; paths in the version are relative to it.
            progress: Called with the bytes sent.
            on_packed: Called with the archive's size once it is packed (before sending).
            message: What changed.
            author: Who commits; default the API key's name.
            parent: ``"head"`` or the version number this builds on.
            tags: Tags for the new version.
        """
        with tempfile.TemporaryDirectory(prefix="synapsenet-commit-") as tmp:
            archive = Path(tmp) / "commit.tar"
            write_tar(directory, archive)
            size = archive.stat().st_size
            if on_packed is not None:
                on_packed(size)
            return self.upload(
                dataset,
                read_blocks(archive, progress),
                size=size,
                archive=True,
                blake3_digest=file_blake3(archive),
                message=message,
                author=author,
                parent=parent,
                tags=tags,
            )

    # ------------------------------------------------------------------ versions

    def log(self, dataset: str, *, limit: int | None = None) -> list[VersionPublic]:
        """The dataset's versions, newest first."""
        params = {"limit": limit} if limit is not None else None
        data = self.get_json(self._path(dataset, "versions"), params=params)
        return [VersionPublic.model_validate(v) for v in data]

    def get_version(self, dataset: str, ref: str = "head") -> VersionPublic:
        """One version."""
        return VersionPublic.model_validate(self.get_json(self._version_path(dataset, ref)))

    def files(self, dataset: str, ref: str = "head") -> list[FilePublic]:
        """The version's files: path, size, BLAKE3."""
        data = self.get_json(self._version_path(dataset, ref, "files"))
        return [FilePublic.model_validate(f) for f in data]

    def stats(self, dataset: str, ref: str = "head") -> StatsPublic:
        """Rows, bytes and per-column statistics of a tabular version."""
        return StatsPublic.model_validate(self.get_json(self._version_path(dataset, ref, "stats")))

    def diff(self, dataset: str, old: str, new: str = "head") -> DiffPublic:
        """Files, schema and rows changed from ``old`` to ``new``."""
        data = self.get_json(self._path(dataset, "diff"), params={"from": old, "to": new})
        return DiffPublic.model_validate(data)

    def tag(self, dataset: str, ref: str, tag: str) -> VersionPublic:
        """Point ``tag`` at a version."""
        data = self.post_json(self._version_path(dataset, ref, "tags"), {"tag": tag})
        return VersionPublic.model_validate(data)

    def untag(self, dataset: str, tag: str) -> None:
        """Remove a tag."""
        self.delete(self._path(dataset, "tags", quote(tag, safe="")))

    def verify(self, dataset: str, ref: str = "head") -> VerifyPublic:
        """Check every byte of a version against its hashes on the server."""
        return VerifyPublic.model_validate(
            self.post_json(self._version_path(dataset, ref, "verify"))
        )

    def deprecate(self, dataset: str, ref: str, *, reason: str) -> DeprecationPublic:
        """Deprecate a version; the answer lists what it affects downstream."""
        data = self.post_json(self._version_path(dataset, ref, "deprecate"), {"reason": reason})
        return DeprecationPublic.model_validate(data)

    def as_of(self, dataset: str, timestamp: datetime) -> VersionPublic:
        """The version that was current at ``timestamp`` (which must be timezone-aware).

        Raises:
            InvalidError: ``timestamp`` is naive.
        """
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise InvalidError(
                f"timestamp {timestamp.isoformat()} has no time zone; give an aware time",
                field="timestamp",
            )
        data = self.get_json(
            self._path(dataset, "as-of"), params={"timestamp": timestamp.isoformat()}
        )
        return VersionPublic.model_validate(data)

    # ------------------------------------------------------------------ downloads

    def download(
        self,
        dataset: str,
        ref: str,
        path: str,
        out: BinaryIO,
        *,
        progress: Progress | None = None,
    ) -> str:
        """Write one file's bytes to ``out`` and check them against the announced BLAKE3.

        Returns:
            The hex BLAKE3 of the bytes written.

        Raises:
            CorruptDataError: The bytes received do not hash to what the server announced.
        """
        url = self._version_path(dataset, ref, "files", quote(path, safe="/"))
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        received = 0
        with self.stream("GET", url) as response:
            announced = response.headers.get(BLAKE3_HEADER)
            try:
                for block in response.iter_bytes(BLOCK):
                    out.write(block)
                    hasher.update(block)
                    received += len(block)
                    if progress is not None:
                        progress(len(block))
            except httpx.TransportError as exc:
                raise UnavailableError(
                    f"download of {dataset}@{ref}:{path} was cut off after {received} bytes: "
                    f"{type(exc).__name__}: {exc or 'no details'}"
                ) from exc
        actual = str(hasher.hexdigest())
        if announced is not None and actual != announced:
            raise CorruptDataError(
                f"Download of {dataset}@{ref}:{path}",
                f"the bytes received hash to {actual}, not the announced {announced}",
            )
        return actual

    def checkout(
        self,
        dataset: str,
        ref: str,
        destination: Path,
        *,
        paths: Sequence[str] | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        on_plan: Callable[[list[FilePublic]], None] | None = None,
    ) -> list[Path]:
        """Download a version's files under ``destination``, each verified by BLAKE3.

        Each file is written to a temporary name and renamed into place only once its hash
        matched the manifest, so an interrupted checkout leaves no damaged file behind.

        Args:
            dataset: The dataset.
            ref: The version.
            destination: Directory to write into (created if missing).
            paths: Only these files; all by default.
            overwrite: Replace files that exist already.
            progress: Called with the bytes received.
            on_plan: Called with the files about to be downloaded (e.g. to size a progress
                bar).

        Returns:
            The files written.

        Raises:
            NotFoundError: A requested path is not in the version.
            ConflictError: A file exists already and ``overwrite`` is False.
            CorruptDataError: A file's bytes do not match the manifest's BLAKE3.
        """
        listing = self.files(dataset, ref)
        if paths is not None:
            missing = sorted(set(paths) - {f.path for f in listing})
            if missing:
                raise NotFoundError(f"{dataset}@{ref} has no file(s) {', '.join(missing)}")
            listing = [f for f in listing if f.path in set(paths)]
        targets = [(f, destination / validate_path(f.path)) for f in listing]
        if not overwrite:
            existing = [str(t) for _, t in targets if t.exists()]
            if existing:
                raise ConflictError(
                    f"{len(existing)} file(s) exist already, e.g. {existing[0]}; "
                    "pass overwrite to replace them"
                )
        if on_plan is not None:
            on_plan(listing)
        written = []
        for entry, target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with os.fdopen(fd, "wb") as handle:
                    actual = self.download(dataset, ref, entry.path, handle, progress=progress)
                if actual != entry.blake3:
                    raise CorruptDataError(
                        f"File {entry.path!r}",
                        f"the downloaded bytes hash to {actual}, but the manifest says "
                        f"{entry.blake3}",
                    )
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            written.append(target)
        return written

    # ------------------------------------------------------------------ lineage

    def lineage(
        self,
        dataset: str,
        ref: str = "head",
        *,
        direction: Direction = "up",
        depth: int | None = None,
    ) -> LineagePublic:
        """A version's ancestors (``up``) or descendants (``down``) and the edges between."""
        params: dict[str, Any] = {"direction": direction}
        if depth is not None:
            params["depth"] = depth
        data = self.get_json(self._version_path(dataset, ref, "lineage"), params=params)
        return LineagePublic.model_validate(data)

    def impact(self, dataset: str, ref: str = "head") -> ImpactPublic:
        """Every dataset version, run and model version downstream of a version."""
        return ImpactPublic.model_validate(
            self.get_json(self._version_path(dataset, ref, "impact"))
        )

    def lineage_graph(
        self, dataset: str, ref: str = "head", *, format: str = "dot", depth: int | None = None
    ) -> str:
        """The lineage neighbourhood as Graphviz DOT (``dot``) or Mermaid (``mermaid``)."""
        suffix = {"dot": "lineage.dot", "mermaid": "lineage.mmd"}.get(format)
        if suffix is None:
            raise InvalidError(f"format must be dot or mermaid, not {format!r}", field="format")
        params = {"depth": depth} if depth is not None else None
        return self.request("GET", self._version_path(dataset, ref, suffix), params=params).text

    def openlineage(self, node: str | None = None) -> list[dict[str, Any]]:
        """OpenLineage RunEvents of every transformation (upstream of ``node`` if given)."""
        params = {"node": node} if node is not None else None
        data: list[dict[str, Any]] = self.get_json(
            f"{API_PREFIX}/lineage/openlineage", params=params
        )
        return data

    def link(self, source: str, target: str) -> LinkPublic:
        """Record that a run read a dataset version or produced a model version.

        Args:
            source: ``dataset:<name>@v<N>``, ``run:<id>`` or ``model:<name>@<version>``.
            target: Likewise.
        """
        data = self.post_json(f"{API_PREFIX}/lineage/links", {"source": source, "target": target})
        return LinkPublic.model_validate(data)

    def record_transformation(
        self, transformation: Transformation | Mapping[str, Any]
    ) -> TransformationSummary:
        """Record a transformation that ran outside the platform (idempotent by its id).

        Args:
            transformation: The transformation, or its document (``Transformation.to_dict``).
        """
        body = (
            transformation.to_dict()
            if isinstance(transformation, Transformation)
            else dict(transformation)
        )
        data = self.post_json(
            f"{API_PREFIX}/lineage/transformations", body, idempotency_key=str(body.get("id"))
        )
        return TransformationSummary.model_validate(data)

    def gc(self, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> GcPublic:
        """Delete chunks no version references, condemned the grace period ago or more."""
        body = {"grace_seconds": grace_seconds, "dry_run": dry_run}
        return GcPublic.model_validate(self.post_json(f"{API_PREFIX}/gc", body))
