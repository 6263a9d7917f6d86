"""What a version's files are made of: chunk references and file entries, and safe paths.

A :class:`FileEntry` is a file as stored: its path, size, whole-file BLAKE3 and ordered
:class:`ChunkRef` list. Both are checked when built, so a manifest or a chunk store never
holds a malformed one.
"""

from __future__ import annotations

from dataclasses import dataclass

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunking import validate_digest

__all__ = ["ChunkRef", "FileEntry", "validate_path"]


def _path_problem(path: str) -> str | None:
    if not isinstance(path, str):
        return f"it must be a str, not {type(path).__name__}"
    if not path:
        return "it is empty"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode (it contains a lone surrogate)"
    if path.startswith("/"):
        return "it is absolute; paths are relative, '/'-separated"
    if "\\" in path:
        return "it contains a backslash; separate directories with '/'"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in path):
        return "it contains a control character"
    for segment in path.split("/"):
        if not segment:
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
        if len(segment.encode("utf-8")) > 255:
            return "one of its segments is longer than 255 bytes"
    return None


def validate_path(path: str) -> str:
    """Check that ``path`` is a safe relative POSIX path for a file in a version.

    Such a path can be checked out under any directory without escaping it: it is
    relative, ``/``-separated, without ``.``, ``..`` or empty segments, backslashes or
    control characters, and each segment is at most 255 UTF-8 bytes.

    Args:
        path: The file's path inside the version.

    Returns:
        The path, unchanged.

    Raises:
        InvalidError: Naming the path and what is wrong with it (``field="path"``).
    """
    problem = _path_problem(path)
    if problem is not None:
        shown = repr(path) if len(repr(path)) <= 90 else repr(path)[:86] + "...'"
        raise InvalidError(f"Invalid file path {shown}: {problem}.", field="path")
    return path


def _check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidError(
            f"The {name!r} of {owner} must be an int >= {minimum}. Got {value!r} instead.",
            field=name,
        )


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a file: its address and its raw (uncompressed) size.

    Raises:
        InvalidError: If the address is not a hex BLAKE3 digest or the size is not >= 1.
    """

    address: str
    size: int

    def __post_init__(self) -> None:
        validate_digest(self.address)
        _check_int("ChunkRef", "size", self.size, 1)

    @classmethod
    def trusted(cls, address: str, size: int) -> ChunkRef:
        """A reference to values the caller has already checked or computed, unchecked.

        For the hot paths that make one per chunk (a write hashing its chunks, a manifest
        parser checking its fields): about a tenth of the cost of the checking constructor.
        """
        ref = object.__new__(cls)
        object.__setattr__(ref, "address", address)
        object.__setattr__(ref, "size", size)
        return ref


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file as stored: its path, size, whole-file BLAKE3 and ordered chunks.

    Attributes:
        path: Safe relative POSIX path (see :func:`validate_path`).
        size: Size in bytes; equals the sum of the chunk sizes.
        content_hash: Hex BLAKE3 of the whole file's bytes.
        chunks: The chunks, in file order; empty for an empty file.

    Raises:
        InvalidError: Naming the field, if any is malformed or the chunk sizes do not add
            up to ``size``.
    """

    path: str
    size: int
    content_hash: str
    chunks: tuple[ChunkRef, ...]

    def __post_init__(self) -> None:
        validate_path(self.path)
        _check_int("FileEntry", "size", self.size, 0)
        validate_digest(self.content_hash, field="content_hash")
        if not isinstance(self.chunks, tuple) or not all(
            isinstance(ref, ChunkRef) for ref in self.chunks
        ):
            raise InvalidError(
                f"The 'chunks' of FileEntry {self.path!r} must be a tuple of ChunkRef.",
                field="chunks",
            )
        total = sum(ref.size for ref in self.chunks)
        if total != self.size:
            raise InvalidError(
                f"The chunks of FileEntry {self.path!r} add up to {total} bytes, "
                f"but its 'size' is {self.size}.",
                field="size",
            )
