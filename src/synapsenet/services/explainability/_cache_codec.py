"""Bytes for the explanation cache: canonical key material, and explanations without pickle.

Keys. :func:`feed_key` writes the canonical serialisation of everything an explanation
depends on into a BLAKE3 hasher. Every field is framed by its length, so no two different
inputs share a byte stream:

* text fields (model name, version, explainer type) as UTF-8;
* explainer parameters as canonical JSON (:func:`canonical_json`): keys sorted, no
  whitespace, ASCII only, floats as ``repr`` (shortest round-trip form) with every NaN
  written ``NaN`` and infinities ``Infinity`` / ``-Infinity``; lists and tuples are both
  arrays; an ndarray becomes ``ndarray(<digest>)`` with the digest of its canonical bytes.
  The tokens ``NaN`` and ``ndarray(...)`` are not JSON, so no JSON value collides with them;
* the input as canonical array bytes: dtype string (little-endian), shape, then the
  C-contiguous little-endian data, with every float NaN rewritten to the one quiet NaN.
  Strings (a text, or an array or list of texts) are framed UTF-8. A pandas or polars
  DataFrame is its column names then each column as an array, so equal tables hash equal
  whatever their memory layout or library.

Values. :func:`encode_explanation` writes an :class:`Explanation` as
``MAGIC | version | header length (u32 LE) | header JSON | raw array bytes``. The header
names every array's dtype and shape; parameters and extras are JSON with a few single-key
tags (``$array``, ``$scalar``, ``$tuple``, ``$float``) so arrays, numpy scalars, tuples and
non-finite floats round-trip exactly; a user key starting with ``$`` is escaped with one
more ``$``. :func:`decode_explanation` parses with the JSON parser and ``numpy.frombuffer``
only, accepts plain numeric, boolean and unicode dtypes, checks every length, and raises
:class:`CorruptValueError` on anything else: nothing in a value is ever executed.
"""

from __future__ import annotations

import enum
import json
import math
import re
import struct
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Final

import blake3
import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.models import Explanation, ExplanationType

KEY_FORMAT: Final = b"synapsenet.explanation-cache.key.v1"
MAGIC: Final = b"SNXE"
FORMAT_VERSION: Final = 1
_PREFIX = struct.Struct("<4sBI")
_LENGTH = struct.Struct("<Q")
_NUMERIC_KINDS: Final = frozenset("biufMm")
_TAGS: Final = frozenset({"$array", "$scalar", "$tuple", "$float"})
_SAFE_DTYPE: Final = re.compile(r"^(\|b1|\|[iu]1|<[iu][248]|<f[248]|<c(8|16)|<U[1-9][0-9]{0,5})$")
_MAX_NDIM: Final = 32
_NON_FINITE: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_HEADER_FIELDS: Final = frozenset(
    {
        "type",
        "feature_names",
        "output_names",
        "seed",
        "runtime_seconds",
        "local_accuracy_error",
        "parameters",
        "extras",
        "arrays",
        "values",
        "base_values",
        "predictions",
        "standard_errors",
    }
)


class CorruptValueError(ValueError):
    """Bytes that are not a well-formed encoded explanation (the cache treats them as a miss)."""


class UnencodableValueError(InvalidError):
    """An explanation holding something the cache format cannot represent without pickle."""

    def __init__(self, path: str, value: object) -> None:
        super().__init__(
            f"{path} holds a {type(value).__name__}, which the explanation cache cannot "
            "serialise (supported: None, bool, int, float, str, list, tuple, dict with str "
            "keys, numpy arrays and scalars of numeric, bool or unicode dtype).",
            field=path,
        )


# --- keys ---------------------------------------------------------------------------------


def frame(data: bytes) -> bytes:
    """``data`` preceded by its length (8 bytes, little-endian)."""
    return _LENGTH.pack(len(data)) + data


def canonical_json(value: object, path: str = "parameters") -> str:
    """The canonical text of a JSON-like value, for hashing (see the module docstring).

    Args:
        value: None, bool, int, float, str, an enum, a mapping with str keys, a list or
            tuple, an ndarray, or a numpy scalar; nested freely.
        path: Where ``value`` sits, for error messages.

    Returns:
        Canonical JSON text; equal values give equal text.

    Raises:
        InvalidError: Naming the path, for a value of another type or a non-str key.
    """
    if value is None or isinstance(value, bool | np.bool_):
        return "null" if value is None else ("true" if value else "false")
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return repr(number)
    if isinstance(value, str):
        return json.dumps(str(value), ensure_ascii=True)
    if isinstance(value, enum.Enum):
        return canonical_json(value.value, path)
    if isinstance(value, np.ndarray):
        hasher = blake3.blake3()
        for piece in array_pieces(value, path):
            hasher.update(piece)
        return f"ndarray({hasher.hexdigest()})"
    if isinstance(value, Mapping):
        items = []
        for key in value:
            if not isinstance(key, str):
                raise InvalidError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; keys must be str.",
                    field=path,
                )
            items.append((key, canonical_json(value[key], f"{path}.{key}")))
        items.sort()
        return "{" + ",".join(f"{json.dumps(k)}:{text}" for k, text in items) + "}"
    if isinstance(value, list | tuple):
        parts = (canonical_json(item, f"{path}[{i}]") for i, item in enumerate(value))
        return "[" + ",".join(parts) + "]"
    raise InvalidError(
        f"{path} holds a {type(value).__name__}, which has no canonical form for a cache key.",
        field=path,
    )


def array_pieces(value: object, path: str = "inputs") -> Iterator[bytes | memoryview]:
    """The canonical bytes of an array-like, as pieces to feed a hasher in order.

    Args:
        value: An ndarray or anything ``numpy.asarray`` turns into one (lists of numbers,
            lists of str).
        path: Where ``value`` sits, for error messages.

    Yields:
        A framed header (kind, dtype string, shape), then the data.

    Raises:
        InvalidError: For object arrays that are not all str, and other dtypes without a
            canonical byte form (bytes, structured, void).
    """
    array = np.asarray(value)
    shape = ",".join(str(size) for size in array.shape)
    kind = array.dtype.kind
    if kind in _NUMERIC_KINDS:
        little = array.dtype.newbyteorder("<")
        if kind == "f":
            # NaNs with different payloads are the same missing value to a model.
            array = np.where(np.isnan(array), array.dtype.type(math.nan), array)
        data = np.ascontiguousarray(array, dtype=little).reshape(-1).view(np.uint8)
        yield frame(f"array:{little.str}:{shape}".encode())
        yield _LENGTH.pack(data.nbytes)
        yield data.data
        return
    if kind == "U" or (kind == "O" and all(isinstance(item, str) for item in array.flat)):
        yield frame(f"strings:{shape}".encode())
        for item in array.flat:
            yield frame(str(item).encode("utf-8", "surrogatepass"))
        return
    raise InvalidError(
        f"{path} has dtype {array.dtype}, which has no canonical byte form for a cache key "
        "(use numbers, bools, datetimes or str).",
        field=path,
    )


def input_pieces(inputs: object) -> Iterator[bytes | memoryview]:
    """The canonical bytes of an explained input: an array, a text, or a DataFrame.

    Raises:
        InvalidError: For inputs without a canonical byte form.
    """
    if isinstance(inputs, str):
        yield frame(b"text")
        yield frame(inputs.encode("utf-8", "surrogatepass"))
        return
    columns = _frame_columns(inputs)
    if columns is None:
        yield frame(b"array")
        yield from array_pieces(inputs)
        return
    names, arrays = columns
    yield frame(b"frame")
    yield frame(canonical_json(names, "inputs.columns").encode())
    for name, column in zip(names, arrays, strict=True):
        yield from array_pieces(column, f"inputs[{name!r}]")


def _frame_columns(inputs: object) -> tuple[list[Any], list[npt.NDArray[Any]]] | None:
    """Column names and column arrays of a pandas or polars DataFrame, else None."""
    # A DataFrame can only exist if its library was imported; never import one here.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(inputs, pandas.DataFrame):
        names = list(inputs.columns)
        return names, [np.asarray(inputs.iloc[:, i]) for i in range(len(names))]
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(inputs, polars.DataFrame):
        names = list(inputs.columns)
        return names, [inputs.get_column(name).to_numpy() for name in names]
    return None


# --- values -------------------------------------------------------------------------------


class _Encoder:
    """Collects arrays while turning parameters and extras into tagged JSON."""

    def __init__(self) -> None:
        self.arrays: list[npt.NDArray[Any]] = []

    def add(self, array: npt.NDArray[Any], path: str) -> int:
        if array.dtype.kind not in "biufcU":
            raise UnencodableValueError(path, array)
        # astype(order="C") keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
        little = array.astype(array.dtype.newbyteorder("<"), order="C", copy=False)
        self.arrays.append(little)
        return len(self.arrays) - 1

    def tagged(self, value: object, path: str) -> object:
        if isinstance(value, np.ndarray):
            return {"$array": self.add(value, path)}
        if isinstance(value, np.generic):
            return {"$scalar": self.add(np.asarray(value), path)}
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if isinstance(value, list):
            return [self.tagged(item, f"{path}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.tagged(item, f"{path}[{i}]") for i, item in enumerate(value)]}
        if isinstance(value, dict):
            out: dict[str, object] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise UnencodableValueError(f"{path} key {key!r}", key)
                escaped = "$" + key if key.startswith("$") else key
                out[escaped] = self.tagged(item, f"{path}.{key}")
            return out
        raise UnencodableValueError(path, value)


def encode_explanation(explanation: Explanation) -> bytes:
    """Serialise an explanation to the cache's binary format (no pickle).

    Args:
        explanation: Any explanation whose parameters and extras hold only the supported
            types (see :class:`UnencodableValueError`).

    Returns:
        The encoded bytes; :func:`decode_explanation` restores an equal explanation.

    Raises:
        UnencodableValueError: Naming the field that holds an unsupported value.
    """
    encoder = _Encoder()
    header: dict[str, object] = {
        "type": explanation.type.value,
        "feature_names": list(explanation.feature_names),
        "output_names": list(explanation.output_names),
        "seed": explanation.seed,
        "runtime_seconds": encoder.tagged(float(explanation.runtime_seconds), "runtime"),
        "local_accuracy_error": encoder.tagged(explanation.local_accuracy_error, "accuracy"),
        "values": encoder.add(explanation.values, "values"),
        "base_values": encoder.add(explanation.base_values, "base_values"),
        "predictions": encoder.add(explanation.predictions, "predictions"),
        "standard_errors": (
            None
            if explanation.standard_errors is None
            else encoder.add(explanation.standard_errors, "standard_errors")
        ),
        "parameters": encoder.tagged(explanation.parameters, "parameters"),
        "extras": encoder.tagged(explanation.extras, "extras"),
    }
    header["arrays"] = [[array.dtype.str, list(array.shape)] for array in encoder.arrays]
    text = json.dumps(header, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    body = text.encode("ascii")
    return b"".join(
        [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(body)), body]
        + [array.reshape(-1).view(np.uint8).tobytes() for array in encoder.arrays]
    )


def _reject_constant(token: str) -> None:
    raise CorruptValueError(f"unexpected JSON constant {token}")


class _Decoder:
    """Rebuilds arrays and tagged JSON from a parsed header and the raw payload."""

    def __init__(self, specs: object, payload: memoryview) -> None:
        if not isinstance(specs, list):
            raise CorruptValueError("the array table is not a list")
        self.arrays: list[npt.NDArray[Any]] = []
        offset = 0
        for spec in specs:
            array, offset = _read_array(spec, payload, offset)
            self.arrays.append(array)
        if offset != len(payload):
            raise CorruptValueError(f"{len(payload) - offset} unexpected trailing bytes")

    def array(self, index: object, ndim: int | None = None) -> npt.NDArray[Any]:
        if not isinstance(index, int) or isinstance(index, bool):
            raise CorruptValueError("an array reference is not an int")
        if not 0 <= index < len(self.arrays):
            raise CorruptValueError(f"array reference {index} out of range")
        array = self.arrays[index]
        if ndim is not None and array.ndim != ndim:
            raise CorruptValueError(f"array {index} has {array.ndim} dimensions, not {ndim}")
        return array

    def untagged(self, value: object) -> object:
        if isinstance(value, list):
            return [self.untagged(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, content),) = value.items()
            if key in _TAGS:
                return self._tag(key, content)
        out: dict[str, object] = {}
        for key, item in value.items():
            if key.startswith("$$"):
                key = key[1:]
            elif key.startswith("$"):
                raise CorruptValueError(f"unknown tag {key!r}")
            out[key] = self.untagged(item)
        return out

    def _tag(self, tag: str, content: object) -> object:
        if tag == "$array":
            return self.array(content)
        if tag == "$scalar":
            return self.array(content, ndim=0)[()]
        if tag == "$tuple":
            if not isinstance(content, list):
                raise CorruptValueError("a $tuple tag does not hold a list")
            return tuple(self.untagged(item) for item in content)
        if content not in _NON_FINITE:
            raise CorruptValueError(f"a $float tag holds {content!r}")
        return _NON_FINITE[str(content)]


def _read_array(spec: object, payload: memoryview, offset: int) -> tuple[npt.NDArray[Any], int]:
    if not (isinstance(spec, list) and len(spec) == 2):
        raise CorruptValueError("an array spec is not [dtype, shape]")
    dtype_text, shape = spec
    if not isinstance(dtype_text, str) or not _SAFE_DTYPE.match(dtype_text):
        raise CorruptValueError(f"dtype {dtype_text!r} is not allowed")
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM:
        raise CorruptValueError("an array shape is not a short list")
    if not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise CorruptValueError(f"shape {shape!r} is not a list of sizes")
    dtype = np.dtype(dtype_text)
    count = math.prod(shape)
    end = offset + count * dtype.itemsize
    if end > len(payload):
        raise CorruptValueError("an array runs past the end of the value")
    array = np.frombuffer(payload[offset:end], dtype=dtype).reshape(shape).copy()
    return array, end


def decode_explanation(data: bytes) -> Explanation:
    """Rebuild an explanation from :func:`encode_explanation` bytes.

    Args:
        data: Bytes read from the cache.

    Returns:
        The explanation, with fresh writable arrays.

    Raises:
        CorruptValueError: If the bytes are not exactly a well-formed encoded explanation.
    """
    try:
        return _decode(memoryview(data))
    except CorruptValueError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise CorruptValueError(f"{type(exc).__name__}: {exc}") from exc


def _decode(data: memoryview) -> Explanation:
    if len(data) < _PREFIX.size:
        raise CorruptValueError("too short")
    magic, version, header_length = _PREFIX.unpack_from(data)
    if magic != MAGIC or version != FORMAT_VERSION:
        raise CorruptValueError("not an encoded explanation of a known version")
    body_end = _PREFIX.size + header_length
    if body_end > len(data):
        raise CorruptValueError("the header runs past the end of the value")
    header = json.loads(
        bytes(data[_PREFIX.size : body_end]).decode("ascii"), parse_constant=_reject_constant
    )
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS:
        raise CorruptValueError("the header does not have the expected fields")
    decoder = _Decoder(header["arrays"], data[body_end:])
    parameters = decoder.untagged(header["parameters"])
    extras = decoder.untagged(header["extras"])
    if not isinstance(parameters, dict) or not isinstance(extras, dict):
        raise CorruptValueError("parameters and extras must be objects")
    runtime = decoder.untagged(header["runtime_seconds"])
    accuracy = decoder.untagged(header["local_accuracy_error"])
    seed = header["seed"]
    if not isinstance(runtime, float) or not (accuracy is None or isinstance(accuracy, float)):
        raise CorruptValueError("runtime or local accuracy error is not a float")
    if not (seed is None or (isinstance(seed, int) and not isinstance(seed, bool))):
        raise CorruptValueError("the seed is not an int")
    errors = header["standard_errors"]
    return Explanation(
        type=ExplanationType(header["type"]),
        values=decoder.array(header["values"], ndim=3),
        base_values=decoder.array(header["base_values"], ndim=2),
        predictions=decoder.array(header["predictions"], ndim=2),
        feature_names=_names(header["feature_names"]),
        output_names=_names(header["output_names"]),
        parameters=parameters,
        seed=seed,
        runtime_seconds=runtime,
        standard_errors=None if errors is None else decoder.array(errors, ndim=3),
        local_accuracy_error=accuracy,
        extras=extras,
    )


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CorruptValueError("names are not a list of str")
    return tuple(value)
