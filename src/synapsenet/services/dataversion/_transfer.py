"""Client-side transfer helpers: hashing files, packing directories, mapping errors."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion.chunks import validate_path

BLOCK = 1 << 20
"""Bytes read, sent or written at a time."""

Progress = Callable[[int], None]
"""Called with the number of bytes just sent or received (for progress bars)."""


def file_blake3(path: Path, *, progress: Progress | None = None) -> str:
    """The hex BLAKE3 of a file, read in blocks."""
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            hasher.update(block)
            if progress is not None:
                progress(len(block))
    return str(hasher.hexdigest())


def write_tar(directory: Path, target: Path) -> list[str]:
    """Pack the regular files under ``directory`` into an uncompressed tar at ``target``.

    Returns:
        The files' paths relative to ``directory``, as they will appear in the version.

    Raises:
        InvalidError: A symbolic link (commit what it points to instead), a special file,
            an unsafe name, or no file at all.
    """
    names: list[str] = []
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for root, subdirs, files in os.walk(directory, followlinks=False):
            subdirs.sort()
            for entry in [*subdirs, *files]:
                local = Path(root) / entry
                if local.is_symlink():
                    raise InvalidError(
                        f"{local} is a symbolic link; commit the file it points to instead",
                        field="source",
                    )
            for entry in sorted(files):
                local = Path(root) / entry
                if not local.is_file():
                    raise InvalidError(f"{local} is not a regular file", field="source")
                name = validate_path(local.relative_to(directory).as_posix())
                info = tar.gettarinfo(str(local), arcname=name)
                # Owners and modes are not versioned; keep the archive reproducible.
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(local, "rb") as handle:
                    tar.addfile(info, handle)
                names.append(name)
    if not names:
        raise InvalidError(f"directory {directory} has no files to commit", field="source")
    return names


def read_blocks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            yield block
            if progress is not None:
                progress(len(block))
