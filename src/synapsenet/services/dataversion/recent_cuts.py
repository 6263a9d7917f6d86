"""How the last commits of a process cut their files, to guide the next commits' cutting.

:meth:`~.stream_cutter.StreamCutter.cut_guided` finds the chunks of a new version of a file
faster by following how its previous version was cut, but it needs each chunk's first byte,
which manifests do not hold. An engine keeps them here for the versions it committed last;
a commit on any other parent reads them from the object store (:mod:`.stored_cuts`), where
every commit also puts them. A guide is handed out only for the chunk sizes and row mode it
was cut with.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

from synapsenet.services.dataversion.chunking import ChunkingParams
from synapsenet.services.dataversion.chunks import WrittenFile
from synapsenet.services.dataversion.stream_cutter import CutGuide

__all__ = ["RecentCuts"]


class _Cut(NamedTuple):
    params: ChunkingParams
    rows: bool
    guides: dict[str, CutGuide]


class RecentCuts:
    """The cuts of the files of the last ``keep`` versions remembered, by manifest root.

    Safe to share between threads. Memory: a byte per chunk, plus the lists of the chunks'
    addresses and sizes.

    Args:
        keep: How many versions to remember.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._cuts: OrderedDict[str, _Cut] = OrderedDict()
        self._lock = threading.Lock()

    def remember(
        self, root: str, params: ChunkingParams, rows: bool, written: Sequence[WrittenFile]
    ) -> None:
        """Keep how the files of the version ``root`` were cut, forgetting the oldest."""
        cut = _Cut(params, rows, {file.entry.path: file.guide() for file in written})
        with self._lock:
            self._cuts[root] = cut
            self._cuts.move_to_end(root)
            while len(self._cuts) > self.keep:
                self._cuts.popitem(last=False)

    def guides(self, root: str | None, params: ChunkingParams, rows: bool) -> dict[str, CutGuide]:
        """The guides of the files of version ``root``, by path, if it was cut the same way.

        Returns:
            Empty if ``root`` is None, not remembered, or was cut with other chunk sizes or
            row mode.
        """
        with self._lock:
            cut = self._cuts.get(root) if root is not None else None
        if cut is None or cut.params != params or cut.rows != rows:
            return {}
        return cut.guides
