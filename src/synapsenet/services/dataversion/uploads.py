"""Receiving uploads: spool a request body to disk while hashing it, and unpack tar archives.

An upload is written to a temporary file in blocks of at most :data:`SPOOL_BLOCK` bytes, so
memory stays bounded whatever its size, and hashed on the way (BLAKE3 always, SHA-256 when
the client sent one to compare with). Only a body that arrived whole and matches the
digests the client declared is committed; anything else is refused before the engine sees
a byte, so a corrupt or truncated upload leaves nothing behind.

A multi-file commit arrives as a tar archive. Its members are checked before anything is
written: only regular files and directories, every path safe by
:func:`~synapsenet.services.dataversion.chunks.validate_path` (no ``..``, no absolute
paths), no duplicates; links and devices are refused rather than skipped, so what is
committed is exactly what was sent.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import blake3
from starlette.concurrency import run_in_threadpool

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunks import validate_path

__all__ = [
    "BLAKE3_HEADER",
    "SHA256_HEADER",
    "SPOOL_BLOCK",
    "ExpectedDigests",
    "SpooledUpload",
    "UploadIntegrityError",
    "extract_tar",
    "spool",
]

BLAKE3_HEADER = "X-Content-BLAKE3"
"""Request header with the hex BLAKE3 of the body the client meant to send."""
SHA256_HEADER = "X-Content-SHA256"
"""Request header with the hex SHA-256 of the body the client meant to send."""
SPOOL_BLOCK = 1 << 20
"""Bytes of the body held in memory at most before they are written out."""

_HEX256 = re.compile(r"^[0-9a-f]{64}$")


class UploadIntegrityError(InvalidError):
    """The body that arrived is not the one the client declared (HTTP 422).

    Attributes:
        algorithm: ``blake3``, ``sha256`` or ``length``.
        expected: What the client declared.
        actual: What arrived.
    """

    code = "upload-corrupt"
    title = "Corrupt or truncated upload"

    def __init__(self, algorithm: str, header: str, expected: str, actual: str, size: int) -> None:
        what = "length" if algorithm == "length" else f"{algorithm.upper()} digest"
        super().__init__(
            f"The upload is corrupt or truncated: {header} declares {what} {expected}, but "
            f"the {size} bytes received have {actual}. Nothing was committed; send it again.",
            field=header,
            expected=expected,
            actual=actual,
            received_bytes=size,
        )
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class ExpectedDigests:
    """What the client says it sent; each is optional.

    Attributes:
        blake3: Lowercase hex BLAKE3 of the body.
        sha256: Lowercase hex SHA-256 of the body.
        length: ``Content-Length`` of the body.
    """

    blake3: str | None = None
    sha256: str | None = None
    length: int | None = None

    @classmethod
    def from_headers(
        cls, *, blake3: str | None, sha256: str | None, length: str | None
    ) -> ExpectedDigests:
        """Read and check the declared digests.

        A ``Content-Length`` that is not a plain number is ignored (the server answers
        such a request before it gets here).

        Raises:
            InvalidError: A digest is not 64 hex digits.
        """
        return cls(
            blake3=_digest(blake3, BLAKE3_HEADER),
            sha256=_digest(sha256, SHA256_HEADER),
            length=int(length) if length is not None and length.isdigit() else None,
        )


def _digest(value: str | None, header: str) -> str | None:
    if value is None:
        return None
    digest = value.strip().lower()
    if not _HEX256.match(digest):
        raise InvalidError(
            f"{header} must be 64 hexadecimal digits. Got {value[:80]!r} instead.", field=header
        )
    return digest


@dataclass(slots=True)
class SpooledUpload:
    """A body written to disk, with its size and digests.

    Attributes:
        path: The file holding it.
        size: Bytes received.
        blake3: Hex BLAKE3 of the bytes received.
        sha256: Hex SHA-256, when it was asked for.
    """

    path: Path
    size: int = 0
    blake3: str = ""
    sha256: str | None = None


async def spool(
    body: AsyncIterator[bytes], target: Path, expected: ExpectedDigests
) -> SpooledUpload:
    """Write ``body`` to ``target`` in bounded blocks, hashing it, then check the digests.

    Args:
        body: The request body, as it arrives.
        target: The file to write (its directory must exist).
        expected: What the client declared.

    Returns:
        The spooled upload.

    Raises:
        UploadIntegrityError: The size or a digest differs from the declared one.
    """
    b3 = blake3.blake3(max_threads=blake3.blake3.AUTO)
    sha = hashlib.sha256() if expected.sha256 is not None else None
    size = 0
    with open(target, "wb") as handle:
        pending = bytearray()
        async for block in body:
            pending += block
            if len(pending) >= SPOOL_BLOCK:
                await run_in_threadpool(_write, handle, bytes(pending), b3, sha)
                size += len(pending)
                pending.clear()
        if pending:
            await run_in_threadpool(_write, handle, bytes(pending), b3, sha)
            size += len(pending)
    spooled = SpooledUpload(target, size, b3.hexdigest(), sha.hexdigest() if sha else None)
    _check(spooled, expected)
    return spooled


def _write(handle: BinaryIO, data: bytes, b3: Any, sha: Any) -> None:
    handle.write(data)
    b3.update(data)
    if sha is not None:
        sha.update(data)


def _check(upload: SpooledUpload, expected: ExpectedDigests) -> None:
    if expected.length is not None and upload.size != expected.length:
        raise UploadIntegrityError(
            "length",
            "Content-Length",
            f"{expected.length} bytes",
            f"{upload.size} bytes",
            upload.size,
        )
    if expected.blake3 is not None and upload.blake3 != expected.blake3:
        raise UploadIntegrityError(
            "blake3", BLAKE3_HEADER, expected.blake3, upload.blake3, upload.size
        )
    if expected.sha256 is not None and upload.sha256 != expected.sha256:
        raise UploadIntegrityError(
            "sha256", SHA256_HEADER, expected.sha256, str(upload.sha256), upload.size
        )


def extract_tar(archive: Path, destination: Path) -> list[str]:
    """Unpack a tar archive of regular files safely under ``destination``.

    Args:
        archive: The tar file (uncompressed, or gzip/bzip2/xz compressed).
        destination: An empty directory to unpack into.

    Returns:
        The paths of the files unpacked, in archive order.

    Raises:
        InvalidError: Not a tar archive; a member that is a link, device or FIFO; an
            unsafe or duplicate path; or no file at all (``field="archive"``, or
            ``"path"`` for an unsafe path).
    """
    written: list[str] = []
    seen: set[str] = set()
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                name = _member_path(member)
                if name is None:
                    continue
                if member.isdir():
                    continue
                if not member.isreg():
                    raise InvalidError(
                        f"Archive member {member.name!r} is a {_kind(member)}; only regular "
                        "files and directories can be committed.",
                        field="archive",
                    )
                if name in seen:
                    raise InvalidError(
                        f"Archive member {name!r} appears more than once.", field="archive"
                    )
                seen.add(name)
                _unpack(tar, member, destination / name, name)
                written.append(name)
    except tarfile.TarError as exc:
        raise InvalidError(
            f"The upload is not a readable tar archive: {exc}.", field="archive"
        ) from exc
    if not written:
        raise InvalidError("The tar archive holds no file to commit.", field="archive")
    return written


def _member_path(member: tarfile.TarInfo) -> str | None:
    """The member's path in the version, checked; None for the archive's root entry."""
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    if member.isdir():
        name = name.rstrip("/")
    if name in ("", "."):
        return None
    return validate_path(name)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"hard link (to {member.linkname!r})"
    if member.isdev():
        return "device"
    if member.isfifo():
        return "FIFO"
    return "special file"


def _unpack(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, name: str) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has contents
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source, open(target, "xb") as out:
            shutil.copyfileobj(source, out, SPOOL_BLOCK)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise InvalidError(
            f"Archive member {name!r} collides with another member used as a directory.",
            field="archive",
        ) from None
