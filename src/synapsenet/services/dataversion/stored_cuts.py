"""How each version's files were cut, stored beside its manifest to guide later commits.

:meth:`~.stream_cutter.StreamCutter.cut_guided` finds the chunks of a new version of a file
faster by following how its previous version was cut, but needs each chunk's first byte,
which manifests do not hold. An engine keeps them in memory for the versions it committed
last (:mod:`.recent_cuts`); this module also stores them, one object per version, so that
a commit is guided after a restart, or when another engine committed the parent. Without
the object (a version committed before they existed, or one collected, damaged or cut with
other sizes) the commit cuts unguided: the same chunks, more slowly.

The object is ``cuts/<manifest root>``, all integers big-endian::

    magic    b"SNCUTS00"                  8 bytes
    version  u32 = 1, count u32 (the chunks of every file)
    min_size u32, avg_size u32, max_size u32, rows u8 (the cutting)
    count bytes: each chunk's first byte, file after file in path order
    BLAKE3 digest of every byte above      32 bytes

A file of one chunk is never followed (its only chunk is its last), but its byte is kept
so that the object lines up with the manifest.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Final

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import NotFoundError
from synapsenet.services.dataversion._derived import sweep_derived
from synapsenet.services.dataversion._documents import DIGEST_SIZE, seal, unseal
from synapsenet.services.dataversion.chunk_codec import CorruptDataError
from synapsenet.services.dataversion.chunking import ChunkingParams
from synapsenet.services.dataversion.chunks import WrittenFile, file_guide
from synapsenet.services.dataversion.entries import FileEntry
from synapsenet.services.dataversion.stream_cutter import CutGuide

__all__ = ["CUTS_PREFIX", "cuts_key", "load_guides", "save_cuts", "sweep_cuts"]

log = logging.getLogger(__name__)

CUTS_PREFIX: Final = "cuts/"
"""Every stored cut's key starts with this."""
_MAGIC: Final = b"SNCUTS00"
_VERSION: Final = 1
_HEADER = struct.Struct(">8sIIIIIB")
_FIRST = struct.Struct(">B")


def cuts_key(root: str) -> str:
    """The key of the stored cuts of the version with manifest ``root``."""
    return f"{CUTS_PREFIX}{root}"


def save_cuts(
    store: ObjectStore,
    root: str,
    params: ChunkingParams,
    rows: bool,
    written: Sequence[WrittenFile],
) -> None:
    """Store how the files of version ``root`` were cut (with ``params`` and ``rows``).

    Raises:
        UnavailableError: If the object store cannot be written.
    """
    files = sorted(written, key=lambda file: file.entry.path)
    firsts = b"".join(file.firsts for file in files)
    fields = (_MAGIC, _VERSION, len(firsts), params.min_size, params.avg_size, params.max_size)
    store.put(cuts_key(root), seal(_HEADER, (*fields, int(rows)), [firsts]))


def load_guides(
    store: ObjectStore,
    root: str,
    files: Sequence[FileEntry],
    params: ChunkingParams,
    rows: bool,
) -> dict[str, CutGuide]:
    """The guides of the files of version ``root``, by path, from its stored cuts.

    Args:
        store: The object store.
        root: The version's manifest root.
        files: Its files, as its manifest lists them.
        params: The sizes the next commit cuts with.
        rows: Whether it cuts at row ends.

    Returns:
        Empty if no cuts are stored for ``root``, if they were cut another way, or if the
        object is damaged or does not match the files (logged as a warning): the commit
        then cuts unguided.
    """
    key = cuts_key(root)
    try:
        document = store.get(key)
    except NotFoundError:
        return {}

    def corrupt(problem: str) -> CorruptDataError:
        return CorruptDataError(f"Stored cuts {key!r}", problem, key=key)

    count = sum(len(entry.chunks) for entry in files)
    try:
        (min_size, avg_size, max_size, cut_rows), _ = unseal(
            document, _HEADER, _FIRST, _MAGIC, _VERSION, corrupt
        )
        cut_with = (min_size, avg_size, max_size, bool(cut_rows))
        if cut_with != (params.min_size, params.avg_size, params.max_size, rows):
            return {}
        firsts = document[_HEADER.size : -DIGEST_SIZE]
        if len(firsts) != count:
            raise corrupt(f"it holds {len(firsts)} chunks, the version's files {count}")
    except CorruptDataError as exc:
        log.warning("ignoring damaged stored cuts: %s", exc)
        return {}
    guides: dict[str, CutGuide] = {}
    start = 0
    for entry in sorted(files, key=lambda entry: entry.path):
        end = start + len(entry.chunks)
        guides[entry.path] = file_guide(entry, firsts[start:end])
        start = end
    return guides


def sweep_cuts(
    store: ObjectStore, live_roots: Collection[str], *, older_than: datetime, dry_run: bool = False
) -> int:
    """Delete the stored cuts of versions not recorded, written before a cutoff.

    A commit stores its cuts before it records its version, so objects written at or after
    ``older_than`` are kept: they may belong to a commit in flight.

    Returns:
        How many objects were deleted (or would have been).
    """
    return sweep_derived(
        store, CUTS_PREFIX, _root_of, live_roots, older_than=older_than, dry_run=dry_run
    )


def _root_of(key: str) -> str:
    return key[len(CUTS_PREFIX) :]
