"""Cutting a stream into chunk views without copying them, optionally at row ends.

:class:`StreamCutter` reads a stream in windows of a few MiB and cuts each window with
FastCDC (the same cut points as :func:`.chunking.iter_chunks`), handing out ``memoryview``
slices of the window instead of copies: the window lives as long as a view of it does.

With ``rows=True`` (CSV files) every cut is moved forward to the end of the row it falls in,
so each chunk holds whole rows and can be parsed on its own: this is what lets a commit
reuse the statistics of the chunks an earlier version already had (see :mod:`.chunk_stats`).
A row ends at a newline outside quotes. The cutter takes the line the cut falls in to start
a row, and cuts after the first newline past the cut with an even number of quote
characters since that line's start: a line end, unless a quoted value spans lines. The
rule reads only bytes near the cut, so cuts stay local functions of the content, as
FastCDC's are. Whether each chunk does end outside quotes is checked where it matters:
:mod:`.chunk_stats` parses a chunk on its own only where every line is a row (as the parse
confirms) or its quotes pair up and follow RFC 4180 (a field is quoted from its first
character to just before a delimiter or line end, with quotes inside doubled), so by
induction from the stream's start every chunk it parses or reuses starts at a row; a file
with a chunk that fails is read in one pass instead.

:meth:`StreamCutter.cut_guided` gives the same chunks with less searching when an earlier
cut of the stream (a :class:`CutGuide`: its chunks' addresses, sizes and first bytes) is at
hand: where the bytes are unchanged it checks the guide's chunks instead of running FastCDC.
"""

from __future__ import annotations

import io
from array import array
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import BinaryIO, Final, NamedTuple, Protocol

from synapsenet.errors import InvalidError
from synapsenet.services.dataversion._cuts import cuts, follow
from synapsenet.services.dataversion._parallel import SerialFeed
from synapsenet.services.dataversion.chunking import (
    ChunkingParams,
    MiB,
    chunk_address,
    fastcdc_args,
)

__all__ = ["CutGuide", "Hasher", "StreamCutter"]


class CutGuide(NamedTuple):
    """How an earlier version of a stream was cut, for :meth:`StreamCutter.cut_guided`.

    Attributes:
        addresses: Its chunks' addresses, in order.
        sizes: Their sizes.
        firsts: Each chunk's first byte.
    """

    addresses: Sequence[str]
    sizes: Sequence[int]
    firsts: bytes


class Hasher(Protocol):
    """What :meth:`StreamCutter.cut` feeds the bytes it reads to (a ``blake3.blake3``)."""

    def update(self, data: memoryview, /) -> object:
        """Take the next bytes of the stream."""


WINDOW_BYTES: Final = 1 * MiB
"""Bytes read from the stream at a time (plus the carried-over tail of the last window)."""
_SPARE_WINDOWS: Final = 4
"""Earlier windows kept to be refilled once no view of them is left."""


class StreamCutter:
    """Cuts one stream into content-defined chunks, as views of the bytes read.

    Use one cutter per stream: it records what it found in that stream.

    Args:
        params: FastCDC sizes.
        rows: Move each cut to the end of its row (CSV). A row longer than
            ``params.max_size`` past the cut ends the search: that chunk is cut where FastCDC
            put it and :attr:`rows_aligned` becomes False.
        quote: The quote character (rows only).
        window: Bytes per read, at least ``2 * params.max_size``; by default
            :data:`WINDOW_BYTES`, or ``2 * params.max_size`` if that is more.

    Attributes:
        rows_aligned: After the stream was cut with ``rows=True``: every chunk ends after
            a newline taken to end a row (see the module) or at the end of the stream, and
            the first line ends in the first chunk. Always False with ``rows=False``.
    """

    def __init__(
        self,
        params: ChunkingParams,
        *,
        rows: bool = False,
        quote: bytes = b'"',
        window: int | None = None,
    ) -> None:
        if len(quote) != 1 or quote in b"\r\n":
            raise InvalidError(
                f"The quote of a StreamCutter must be one byte other than a line end. Got "
                f"{quote!r} instead.",
                field="quote",
            )
        if window is None:
            window = max(WINDOW_BYTES, 2 * params.max_size)
        if window < 2 * params.max_size:
            raise InvalidError(
                f"A StreamCutter window must be at least 2 * max_size "
                f"({2 * params.max_size} bytes). Got {window} instead.",
                field="window",
            )
        self.params = params
        self.rows = rows
        # Bytes past a chunk's start that decide where it ends: FastCDC looks up to
        # max_size ahead, and the row end search as far again.
        self._reach = (2 if rows else 1) * params.max_size + 1
        self.quote = quote
        self.window = window
        self.rows_aligned = rows
        self._fastcdc = fastcdc_args(params)
        self._quote = quote[0] if rows else -1

    def cut(
        self, stream: BinaryIO, *, digest: Hasher | None = None
    ) -> Generator[memoryview, None, None]:
        """Read ``stream`` to its end and yield its chunks in order, as read-only views.

        Memory stays at about two windows plus whatever views the caller keeps.

        Args:
            stream: A binary stream.
            digest: Updated with the stream's bytes as they are read, a window at a time
                (cheaper than chunk by chunk: a whole-file BLAKE3 over 1 MiB pieces runs
                at about twice the speed of one over 20 KiB pieces), on a thread of its
                own; it holds every byte once the iteration has ended.

        Raises:
            InvalidError: If ``stream`` is a text stream.
        """
        _require_binary(stream)
        with _hashing(digest) as feed:
            window = _Window(stream, self.window, feed)
            first = True
            while window.fill(self._reach):
                start = window.pos
                ends = self._ends(window, -1, first)
                first = False
                for end in ends:
                    yield window.view[start:end].toreadonly()
                    start = end
                window.pos = start

    def cut_guided(
        self, stream: BinaryIO, guide: CutGuide, *, digest: Hasher | None = None
    ) -> Generator[tuple[memoryview, str], None, None]:
        """The chunks of :meth:`cut` with their addresses, found faster where a guide has them.

        ``guide`` is an earlier cut, with the same parameters and ``rows``, of an earlier
        version of the stream. Where the stream holds a stretch of it, its chunks are
        checked instead of searched for: a guide chunk is taken where the bytes hash to its
        address and the byte after them is the one that followed it in the guide. FastCDC
        runs only around changes; the chunks are exactly those of :meth:`cut`. Addresses
        are BLAKE3 hex digests (:func:`~.chunking.chunk_address`), one hash per chunk.

        Why a checked chunk is the one :meth:`cut` gives: both start at a cut, and with at
        least ``(2 if rows else 1) * max_size + 1`` bytes left in the stream (no guess is
        made nearer its end) FastCDC's cut is a function of the chunk's bytes and the byte
        after it (the byte that completes the rolling hash at a cut point is the next
        chunk's first), as it was when the guide was cut, unless the guide's chunk ended its
        stream (its last chunk, never guessed). With ``rows``, the cut then moves to the
        first line end after it with an even number of quotes since its line's start, a
        search within the chunk, unless it finds none and the cut stays; so a guess is made
        only for a chunk that ends with a line end after an even number of quotes on its
        last line, which the search ends at whatever follows.

        Args:
            stream: A binary stream.
            guide: The earlier cut.
            digest: See :meth:`cut`.

        Raises:
            InvalidError: If ``stream`` is a text stream.
        """
        _require_binary(stream)
        with _hashing(digest) as feed:
            yield from self._cut_guided(_Window(stream, self.window, feed), guide)

    def _cut_guided(self, window: _Window, guide: CutGuide) -> Iterator[tuple[memoryview, str]]:
        addresses, sizes = guide.addresses, guide.sizes
        # The guide as follow() reads it: as many chunks as all three fields describe.
        count = min(len(addresses), len(sizes), len(guide.firsts))
        packed_sizes = array("q", sizes[:count])
        digests = b"".join(map(bytes.fromhex, addresses[:count]))
        firsts = guide.firsts[:count]
        where: dict[str, int] = {}
        for number in range(count - 1):  # the last chunk ended with its stream
            where.setdefault(addresses[number], number)
        # Guide chunk numbers, -1 for none: the one expected next, and the one to try after
        # the next new chunk (an edit usually changes one chunk, and the next is the guide's).
        expect = after = -1
        first = True
        while window.fill(self._reach):
            start = window.pos
            hashed: tuple[int, str] | None = None  # (size, address) of the bytes at start
            if expect >= 0:
                # The guide's chunks, checked (see cut_guided) and hashed in compiled code,
                # with the GIL released, for as long as they match and the window has bytes.
                stop, number, other = follow(
                    window.data,
                    start,
                    expect,
                    packed_sizes,
                    firsts,
                    digests,
                    self.params.min_size,
                    self._reach,
                    self._quote,
                )
                for matched in range(expect, number):
                    end = start + sizes[matched]
                    yield window.view[start:end].toreadonly(), addresses[matched]
                    start = end
                window.pos, expect = stop, number
                if other is None and not window.eof and len(window.data) - stop < self._reach:
                    continue  # the window ran out, not the guide: read on
                if other is not None:
                    hashed = (sizes[number], other)
                after, expect = expect + 1, -1
            (end,) = self._ends(window, 1, first)
            window.pos = end
            first = False
            chunk = window.view[start:end].toreadonly()
            if hashed is not None and hashed[0] == end - start:
                address = hashed[1]  # the same bytes, hashed as a guess
            else:
                address = chunk_address(chunk)
            found = where.get(address)
            expect, after = (after, -1) if found is None else (found + 1, -1)
            yield chunk, address

    def _ends(self, window: _Window, most: int, first: bool) -> list[int]:
        """Where the next ``most`` chunks (-1: all the window holds) end, from its position.

        FastCDC's cut, moved with ``rows`` to the first row end at or after it: after the
        first newline past the cut with an even number of quotes since the start of the
        line the cut falls in, at most ``max_size`` past the cut, or at the stream's end;
        where there is none, the cut stays and :attr:`rows_aligned` becomes False. Cut in
        compiled code, with the GIL released.
        """
        ends, aligned = cuts(
            window.data, window.pos, self._reach, window.eof, most, *self._fastcdc, self._quote
        )
        if not aligned:
            self.rows_aligned = False
        header_cut = first and self.rows and ends[0] < len(window.data)
        if header_cut and window.data.find(b"\n", 0, ends[0]) == -1:
            self.rows_aligned = False  # the header row does not end in the first chunk
        return ends


def _require_binary(stream: BinaryIO) -> None:
    if isinstance(stream, io.TextIOBase):
        raise InvalidError(
            "Chunking needs a binary stream, got a text stream; open the file in 'rb' mode.",
            field="stream",
        )


def _hashing(digest: Hasher | None) -> AbstractContextManager[SerialFeed[memoryview] | None]:
    """Where a window's new bytes go to be hashed: ``digest``, updated on a thread of its own.

    The whole-file hash then runs beside the cutting instead of before it (BLAKE3 releases
    the GIL); the digest is complete once the ``with`` block is left normally.
    """
    if digest is None:
        return nullcontext()
    return SerialFeed(digest.update, name="file-hash")


class _Window:
    """The bytes of the stream being cut: a bytearray per window.

    A window's bytes never change while a view of them is out. Once none is left (every
    chunk cut from it was handed on and dropped), its bytearray holds a later window:
    a fresh 1 MiB bytearray costs the first touch of its pages, which was most of the
    time the calling thread spent reading.
    """

    def __init__(
        self, stream: BinaryIO, size: int, digest: SerialFeed[memoryview] | None = None
    ) -> None:
        self.stream = stream
        self.size = size
        self.digest = digest
        self.data = bytearray()
        self.view = memoryview(self.data)
        self.pos = 0
        self.eof = False
        self._spares: deque[bytearray] = deque()  # earlier windows, oldest first

    def fill(self, reach: int) -> bool:
        """Have ``reach`` bytes past ``pos`` at hand if the stream has them; False at its end."""
        while not self.eof and len(self.data) - self.pos < reach:
            self._refill()
        return self.pos < len(self.data)

    def _refill(self) -> None:
        tail = self.view[self.pos :]
        data = self._buffer(len(tail) + self.size)
        view = memoryview(data)
        # Through a view: a bytearray slice assigned a memoryview copies it twice.
        view[: len(tail)] = tail
        filled = len(tail)
        while filled < len(data):
            read = _read_into(self.stream, view[filled:])
            if not read:
                self.eof = True
                break
            filled += read
        view.release()
        if filled < len(data):
            del data[filled:]  # before any view of the bytes is handed out
        view = memoryview(data)
        if self.digest is not None:
            self.digest.put(view[len(tail) :])
        if self.data:
            self._spares.append(self.data)
            if len(self._spares) > _SPARE_WINDOWS:
                self._spares.popleft()
        self.data, self.view, self.pos = data, view, 0

    def _buffer(self, size: int) -> bytearray:
        """A bytearray of ``size`` bytes: an earlier window no view is left of, or a new one."""
        for _ in range(len(self._spares)):
            spare = self._spares.popleft()
            if _unviewed(spare):
                if len(spare) > size:
                    del spare[size:]
                else:
                    spare.extend(bytes(size - len(spare)))
                return spare
            self._spares.append(spare)  # still viewed: ask again at the next read
        return bytearray(size)


def _unviewed(data: bytearray) -> bool:
    """Whether no view of ``data`` is left: a bytearray with one cannot be resized."""
    try:
        data.append(0)
    except BufferError:
        return False
    del data[-1]
    return True


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(view) or 0)
    data = stream.read(len(view))
    view[: len(data)] = data
    return len(data)
