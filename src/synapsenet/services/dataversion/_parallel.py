"""Ordered, bounded fan-out of work to threads (zstd, BLAKE3 and I/O release the GIL)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


def bounded_map(
    fn: Callable[[_T], _R], items: Iterable[_T], threads: int
) -> Generator[_R, None, None]:
    """Apply ``fn`` to ``items`` on ``threads`` threads, yielding results in input order.

    At most ``2 * threads`` items are in flight, so memory stays bounded whatever the
    number of items; ``items`` is consumed lazily, on the calling thread. With no
    threads, ``fn`` runs on the calling thread.
    """
    if threads == 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="chunk-store") as pool:
        pending: deque[Future[_R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # On an error or an abandoned read, queued work is dropped, not waited for.
            for future in pending:
                future.cancel()
