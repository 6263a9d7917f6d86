"""Types of the compiled CSV scanner (``_csvscan.c``); used through :mod:`.csv_scan`."""

from typing import Any, TypeAlias

import numpy as np

Buffer: TypeAlias = bytes | bytearray | memoryview | np.ndarray[Any, Any]

def scan(
    data: Buffer,
    ends: Buffer,
    kinds: bytes,
    nulls: Buffer,
    text: Buffer,
    low: Buffer,
    high: Buffer,
    flow: Buffer,
    fhigh: Buffer,
    rows: Buffer,
    /,
) -> tuple[tuple[bytes, bytes, bytes, bytes], ...] | str:
    """Per-segment statistics of headerless, row-aligned CSV bytes, or why not.

    Returns the string columns' bounds (per string column: min data, min int32 offsets,
    max data, max int32 offsets) once the numeric outputs are written; or the reason the
    bytes are not read here.
    """
