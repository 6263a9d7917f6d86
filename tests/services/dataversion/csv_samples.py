"""Generated CSV files for the tests of row-aligned cutting and per-chunk statistics.

A sample is built line by line, so it knows where each of its rows ends without any CSV
parser; :func:`csv_records` reads it back with Python's ``csv`` module, which the tests
compare with the fields the sample was built from.
"""

from __future__ import annotations

import csv
import datetime
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

COLUMNS = ("id", "amount", "count", "name", "flag", "day", "at")
"""The columns of :meth:`CsvRows.row`: int, float, int with nulls, string, bool, date, timestamp."""

_WORDS = ("alpha", "beta", "Zürich", "東京", "naïve café", "x", "rows and rows", "Ωmega")
_DAY_ZERO = datetime.date(2000, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a CSV file.

    Attributes:
        fields: The values as the ``csv`` module reads them back, or None for an empty line.
        text: The encoded line with its line end (``\\n`` or ``\\r\\n``).
    """

    fields: tuple[str, ...] | None
    text: bytes


@dataclass(frozen=True, slots=True)
class CsvSample:
    """A CSV file made of :class:`Line` objects.

    Attributes:
        lines: The header, rows and empty lines in order.
        trailing_newline: Whether the last line keeps its line end.
    """

    lines: tuple[Line, ...]
    trailing_newline: bool = True

    @property
    def data(self) -> bytes:
        """The file's bytes."""
        data = b"".join(line.text for line in self.lines)
        if not self.trailing_newline and data:
            last = self.lines[-1].text
            data = data[: -(2 if last.endswith(b"\r\n") else 1)]
        return data

    @property
    def row_ends(self) -> list[int]:
        """Offsets just past every line end outside quotes (rows and empty lines alike)."""
        ends = list(accumulate(len(line.text) for line in self.lines))
        return ends if self.trailing_newline else ends[:-1]

    @property
    def records(self) -> list[list[str]]:
        """The non-empty lines' fields, as the ``csv`` module should read the file."""
        return [list(line.fields) for line in self.lines if line.fields is not None]


class CsvRows:
    """Random CSV lines: RFC 4180 quoting, embedded commas, quotes and line ends, CRLF.

    Args:
        seed: Seed of the generator.
        crlf: Probability that a line ends in ``\\r\\n`` rather than ``\\n``.
        quoted_newlines: Whether string values may hold line ends.
        long_strings: Probability that a string value is 257 to 600 characters long.
        quote: The quote character.
    """

    def __init__(
        self,
        seed: int,
        *,
        crlf: float = 0.2,
        quoted_newlines: bool = True,
        long_strings: float = 0.01,
        quote: str = '"',
    ) -> None:
        self.rng = random.Random(seed)
        self.crlf = crlf
        self.quoted_newlines = quoted_newlines
        self.long_strings = long_strings
        self.quote = quote

    def line(self, fields: Sequence[str | None]) -> Line:
        """A line of these values (None: an unquoted empty field, read as a null)."""
        text = ",".join(self._encoded(value) for value in fields)
        end = "\r\n" if self.rng.random() < self.crlf else "\n"
        return Line(tuple(value or "" for value in fields), (text + end).encode())

    def empty_line(self) -> Line:
        """An empty line, which CSV readers skip."""
        return Line(None, b"\r\n" if self.rng.random() < self.crlf else b"\n")

    def header(self) -> Line:
        """The header of :data:`COLUMNS`."""
        return self.line(COLUMNS)

    def row(self, number: int, *, count: str | None = None) -> Line:
        """Row ``number`` with random values (``count`` overrides that column's value)."""
        rng = self.rng
        amount = None if rng.random() < 0.05 else f"{rng.uniform(-1000, 1000):.2f}"
        if count is None and rng.random() >= 0.1:
            count = str(rng.randint(0, 10**6))
        day = datetime.date.fromordinal(_DAY_ZERO + rng.randint(0, 9000))
        at = datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 10**8))
        values = [
            str(number),
            amount,
            count,
            self.text(),
            rng.choice(("true", "false")),
            day.isoformat(),
            at.isoformat(sep=" "),
        ]
        return self.line(values)

    def text(self) -> str | None:
        """A string value: words, commas, doubled quotes, line ends, empty or null."""
        rng = self.rng
        kind = rng.random()
        if kind < 0.05:
            return None
        if kind < 0.08:
            return ""
        if kind < 0.08 + self.long_strings:
            return "".join(rng.choice("abcdé, ") for _ in range(rng.randint(257, 600)))
        words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 4))]
        separators = [" ", ", ", f" {self.quote}", f"{self.quote} "]
        if self.quoted_newlines:
            separators += ["\n", "\r\n"]
        text = words[0]
        for word in words[1:]:
            text += rng.choice(separators) + word
        return text

    def _encoded(self, value: str | None) -> str:
        if value is None:
            return ""
        q = self.quote
        if value == "" or any(c in value for c in (",", q, "\n", "\r")) or self.rng.random() < 0.1:
            return q + value.replace(q, q + q) + q
        return value

    def sample(
        self, rows: int, *, empty_lines: float = 0.02, trailing_newline: bool = True
    ) -> CsvSample:
        """A header and ``rows`` rows, with empty lines between rows now and then."""
        lines = [self.header()]
        for number in range(rows):
            if number > 0 and self.rng.random() < empty_lines:
                lines.append(self.empty_line())
            lines.append(self.row(number))
        return CsvSample(tuple(lines), trailing_newline)


def csv_records(data: bytes, *, quote: str = '"') -> list[list[str]]:
    """The records Python's ``csv`` module reads from ``data`` (empty lines skipped)."""
    reader = csv.reader(io.StringIO(data.decode(), newline=""), quotechar=quote, strict=True)
    return [record for record in reader if record]


def true_row_ends(data: bytes, *, quote: bytes = b'"') -> set[int]:
    """Offsets just past every newline outside quotes: where a CSV reader's records end."""
    ends: set[int] = set()
    quoted = False
    for offset, byte in enumerate(data):
        if byte == quote[0]:
            quoted = not quoted
        elif byte == ord("\n") and not quoted:
            ends.add(offset + 1)
    return ends


def grown(rows: CsvRows, sample: CsvSample, *, appended: int, edited: int) -> CsvSample:
    """The next version of ``sample``: ``edited`` random rows rewritten, ``appended`` added."""
    lines = list(sample.lines)
    numbered = [i for i, line in enumerate(lines) if i > 0 and line.fields is not None]
    for index in rows.rng.sample(numbered, min(edited, len(numbered))):
        fields = lines[index].fields
        assert fields is not None
        lines[index] = rows.row(int(fields[0]))
    first = len(numbered)
    lines += [rows.row(first + i) for i in range(appended)]
    return CsvSample(tuple(lines), sample.trailing_newline)


def id_value_csv(rows: int, seed: int) -> bytes:
    """A two-column CSV (``id,value``) of ``rows`` rows with random hex values."""
    rng = random.Random(seed)
    body = b"".join(
        b"%d,%s\n" % (n, rng.randbytes(rng.randrange(1, 30)).hex().encode()) for n in range(rows)
    )
    return b"id,value\n" + body
