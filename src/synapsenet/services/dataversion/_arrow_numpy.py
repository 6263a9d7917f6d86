"""numpy views of Arrow arrays, and Arrow arrays over numpy data, through their buffers.

pyarrow's own conversions (``pa.array`` of a numpy array, ``Array.to_numpy``) import pandas
on their first use, to check whether they were handed pandas objects: about 40 MB resident
in a process that commits CSV files and never needs pandas. The per-chunk statistics use
these instead, for the fixed-width types they convert (integers, floats, booleans).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def numpy_dtype(t: pa.DataType) -> np.dtype[Any]:
    """The numpy dtype holding values of the fixed-width Arrow type ``t``.

    Raises:
        TypeError: If ``t`` is not an integer, floating point or boolean type.
    """
    if pa.types.is_boolean(t):
        return np.dtype(np.bool_)
    if pa.types.is_signed_integer(t):
        return np.dtype(f"<i{t.bit_width // 8}")
    if pa.types.is_unsigned_integer(t):
        return np.dtype(f"<u{t.bit_width // 8}")
    if pa.types.is_floating(t):
        return np.dtype(f"<f{t.bit_width // 8}")
    raise TypeError(f"no numpy view of Arrow type {t}")


def _bits(
    buffer: pa.Buffer | None, offset: int, length: int
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    assert buffer is not None  # arrays with nulls, and boolean arrays, have their bitmap
    packed = np.frombuffer(memoryview(buffer), dtype=np.uint8)
    return np.unpackbits(packed, bitorder="little", count=offset + length)[offset:].astype(bool)


def null_mask(array: pa.Array[Any]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where ``array`` is null, as a boolean numpy array."""
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    if pa.types.is_null(array.type):
        return np.ones(len(array), dtype=bool)
    return ~_bits(array.buffers()[0], array.offset, len(array))


def values_of(array: pa.Array[Any]) -> np.ndarray[Any, Any]:
    """The values of a fixed-width array (a view where possible); nulls' slots are arbitrary.

    Raises:
        TypeError: If the array's type is not an integer, floating point or boolean type.
    """
    dtype = numpy_dtype(array.type)
    data = array.buffers()[1]
    assert data is not None  # fixed-width arrays always have their data buffer
    if dtype == np.bool_:
        return _bits(data, array.offset, len(array))
    view: np.ndarray[Any, Any] = np.frombuffer(
        memoryview(data), dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize
    )
    return view


def array_of(
    values: np.ndarray[Any, Any],
    t: pa.DataType,
    mask: np.ndarray[Any, np.dtype[np.bool_]] | None = None,
) -> pa.Array[Any]:
    """An Arrow array of type ``t`` over ``values`` (converted to its dtype), null where ``mask``.

    Raises:
        TypeError: If ``t`` is not an integer, floating point or boolean type.
    """
    dtype = numpy_dtype(t)
    if dtype == np.bool_:
        data = pa.py_buffer(np.packbits(np.asarray(values, dtype=bool), bitorder="little").data)
    else:
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=dtype).data)
    validity, nulls = validity_of(mask)
    return pa.Array.from_buffers(t, len(values), [validity, data], null_count=nulls)


def validity_of(
    mask: np.ndarray[Any, np.dtype[np.bool_]] | None,
) -> tuple[pa.Buffer | None, int]:
    """An Arrow validity bitmap that is null where ``mask``, and the null count.

    The bitmap is None when nothing is null (no mask, or no True in it).
    """
    if mask is None or not mask.any():
        return None, 0
    return pa.py_buffer(np.packbits(~mask, bitorder="little").data), int(mask.sum())
