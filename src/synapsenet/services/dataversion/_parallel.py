"""Ordered, bounded fan-out of work to threads (zstd, BLAKE3 and I/O release the GIL)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


def bounded_map(
    fn: Callable[[_T], _R], items: Iterable[_T], threads: int, *, ahead: int = 2
) -> Generator[_R, None, None]:
    """Apply ``fn`` to ``items`` on ``threads`` threads, yielding results in input order.

    At most ``ahead * threads`` items are in flight, so memory stays bounded whatever the
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
                if len(pending) >= ahead * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # On an error or an abandoned read, queued work is dropped, not waited for.
            for future in pending:
                future.cancel()


class SerialFeed(Generic[_T]):
    """Calls ``fn`` with each item put, in order, on a thread of its own.

    The caller goes on while ``fn`` runs (it should release the GIL: a BLAKE3 update);
    at most ``depth`` items wait, so a slow ``fn`` holds back :meth:`put` rather than
    letting items pile up. Leave the ``with`` block normally to wait for the last item
    (and see its error); leaving it by an exception drops the items still waiting.
    """

    def __init__(self, fn: Callable[[_T], object], *, depth: int = 4, name: str = "feed") -> None:
        self._fn = fn
        self._depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: deque[Future[object]] = deque()

    def put(self, item: _T) -> None:
        """Hand ``item`` to ``fn``; waits while ``depth`` items are waiting.

        Raises:
            Exception: What ``fn`` raised on an earlier item.
        """
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._fn, item))

    def __enter__(self) -> SerialFeed[_T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=kind is None, cancel_futures=True)
