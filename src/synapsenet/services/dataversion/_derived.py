"""Deleting objects derived from versions once no recorded version owns them.

Per-chunk statistics (:mod:`.chunk_stats`) and stored cuts (:mod:`.stored_cuts`) are
written by a commit before it records its version and serve only later commits; each names
what owns it (a file hash, a manifest root) in its key.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from synapsenet.core.storage import ObjectStore
from synapsenet.errors import NotFoundError

__all__ = ["sweep_derived"]


def sweep_derived(
    store: ObjectStore,
    prefix: str,
    owner: Callable[[str], str | None],
    live: Collection[str],
    *,
    older_than: datetime,
    dry_run: bool = False,
) -> int:
    """Delete the objects under ``prefix`` whose owner is not live, written before a cutoff.

    Objects written at or after ``older_than`` are kept: they may belong to a commit in
    flight.

    Args:
        store: The object store.
        prefix: Where the objects are.
        owner: What owns the object with a given key (None: nothing).
        live: The owners of recorded versions.
        older_than: The cutoff (aware).
        dry_run: Count, delete nothing.

    Returns:
        How many objects were deleted (or would have been).
    """
    deleted = 0
    for key in list(store.list(prefix)):
        if owner(key) in live:
            continue
        try:
            if store.stat(key).modified >= older_than:
                continue
        except NotFoundError:
            continue
        if not dry_run:
            store.delete(key)
        deleted += 1
    return deleted
