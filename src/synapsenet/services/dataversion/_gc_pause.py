"""Pausing Python's cyclic garbage collector for the length of a bulk write.

A commit allocates a few small tracked objects per chunk (views, tuples, references),
tens of thousands per version, and each few hundred allocations start a collection that
walks every tracked object of the process, the chunk catalog and the manifests in memory
included: about a tenth of an incremental commit's CPU went there. Nothing a commit builds
needs the collector (its objects are freed by reference counting), so the write pauses it,
as Mercurial does around its bulk operations. Pauses nest across threads: the collector
runs again once the last one ends, if it ran before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_paused = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while the ``with`` block runs."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()
