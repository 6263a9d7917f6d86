"""numpy views of Arrow arrays and back, checked against pyarrow's own conversions."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.services.dataversion._arrow_numpy import (
    array_of,
    null_mask,
    numpy_dtype,
    values_of,
)

TYPES = [
    pa.bool_(),
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint32(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
]


def _random_values(
    t: pa.DataType, data: st.DataObject
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    n = data.draw(st.integers(0, 70))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dtype = numpy_dtype(t)
    if dtype == np.bool_:
        raw: np.ndarray[Any, Any] = rng.integers(0, 2, n).astype(bool)
    elif dtype.kind == "f":
        raw = rng.normal(size=n).astype(dtype)
    else:
        info = np.iinfo(dtype)
        raw = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    mask = rng.random(n) < data.draw(st.sampled_from([0.0, 0.3, 1.0]))
    return raw, mask


def _random_array(t: pa.DataType, data: st.DataObject) -> pa.Array[Any]:
    raw, mask = _random_values(t, data)
    return pa.array(raw, type=t, mask=mask)


@settings(max_examples=200, deadline=None)
@given(t=st.sampled_from(TYPES), data=st.data())
def test_values_and_nulls_of_any_slice_equal_pyarrows_conversion(
    t: pa.DataType, data: st.DataObject
) -> None:
    array = _random_array(t, data)
    start = data.draw(st.integers(0, len(array)))
    piece = array.slice(start, data.draw(st.integers(0, len(array) - start)))
    nulls = null_mask(piece)
    np.testing.assert_array_equal(nulls, piece.is_null().to_numpy(zero_copy_only=False))
    values = values_of(piece)
    assert values.dtype == numpy_dtype(t)
    assert len(values) == len(piece)
    present = [value for value in piece.to_pylist() if value is not None]
    assert values[~nulls].tolist() == present


@settings(max_examples=200, deadline=None)
@given(t=st.sampled_from(TYPES), data=st.data())
def test_array_of_equals_pa_array(t: pa.DataType, data: st.DataObject) -> None:
    values, mask = _random_values(t, data)
    reference = pa.array(values, type=t, mask=mask)
    made = array_of(values, t, mask=mask)
    made.validate(full=True)
    assert made.equals(reference)
    assert made.null_count == reference.null_count
    assert array_of(values, t).null_count == 0


def test_null_arrays_and_unsupported_types() -> None:
    np.testing.assert_array_equal(null_mask(pa.nulls(3)), [True, True, True])
    for t in (pa.string(), pa.date32(), pa.null()):
        with pytest.raises(TypeError, match=re.escape(f"no numpy view of Arrow type {t}")):
            numpy_dtype(t)
    with pytest.raises(TypeError, match="string"):
        values_of(pa.array(["a"]))
