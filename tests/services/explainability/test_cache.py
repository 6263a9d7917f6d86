"""ExplanationCache: content keys, the pickle-free codec, both backends, single-flight, outages.

Redis tests run against the real local server; every key lives under the test's
``redis_key_prefix`` and is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import math
import multiprocessing
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from prometheus_client import CollectorRegistry

from synapsenet.core.circuit import CircuitBreaker
from synapsenet.errors import InvalidError, UnavailableError
from synapsenet.services.explainability._cache_codec import MAGIC
from synapsenet.services.explainability.cache import (
    CacheBackend,
    CacheBackendError,
    CacheKey,
    CacheStats,
    CorruptValueError,
    ExplanationCache,
    InProcessLRUBackend,
    RedisBackend,
    UnencodableValueError,
    cache_key,
    decode_explanation,
    encode_explanation,
)
from synapsenet.services.explainability.models import Explanation, ExplanationType
from tests.fixtures.redis import wait_until

FloatArray = npt.NDArray[np.float64]
X = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
PARAMS: dict[str, Any] = {"n_samples": 100, "link": "identity", "l1": None, "tol": 0.01}


def _key(**changes: Any) -> str:
    parts: dict[str, Any] = {
        "model_name": "churn",
        "model_version": "3",
        "explainer_type": ExplanationType.SHAP_KERNEL,
        "parameters": PARAMS,
        "inputs": X,
    }
    parts.update(changes)
    return cache_key(**parts)


def _explanation(seed: int = 0, n: int = 3, **fields: Any) -> Explanation:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 4, 1))
    base = np.full((n, 1), 0.5)
    defaults: dict[str, Any] = {
        "type": ExplanationType.SHAP_KERNEL,
        "values": values,
        "base_values": base,
        "predictions": values.sum(axis=1) + base,
        "feature_names": ("a", "b", "c", "d"),
        "parameters": {"n_samples": 100},
        "seed": seed,
        "runtime_seconds": 0.25,
        "standard_errors": np.abs(values) / 10,
        "local_accuracy_error": 1e-12,
    }
    defaults.update(fields)
    return Explanation(**defaults)


def _same(a: object, b: object) -> bool:
    """Deep equality that also checks types, dtypes, shapes, NaNs and signed zeros."""
    if isinstance(a, np.ndarray):
        if not (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape):
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, np.generic):
        return type(a) is type(b) and _same(np.asarray(a), np.asarray(b))
    if isinstance(a, float):
        if type(b) is not float:
            return False
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _same_explanation(a: Explanation, b: Explanation) -> bool:
    names = [
        "type", "values", "base_values", "predictions", "feature_names", "output_names",
        "parameters", "seed", "runtime_seconds", "standard_errors", "local_accuracy_error",
        "extras",
    ]  # fmt: skip
    return all(_same(getattr(a, name), getattr(b, name)) for name in names)


# --- keys ---------------------------------------------------------------------------------


class Link(enum.Enum):
    """A plain (not str) enum, as a parameter value."""

    LOGIT = "logit"
    IDENTITY = 1


def test_cache_key_is_a_blake3_hex_digest() -> None:
    key = _key()
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")
    assert key == _key()


@settings(max_examples=60, deadline=None)
@given(array=hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=1, max_dims=3)))
def test_memory_layout_does_not_change_the_key(array: npt.NDArray[Any]) -> None:
    assume(array.dtype.kind in "biufcmM")
    assume(array.dtype.kind != "c")  # complex inputs have no canonical form (no model takes them)
    fortran = np.asfortranarray(array)
    swapped = array.astype(array.dtype.newbyteorder(">" if array.dtype.byteorder != ">" else "<"))
    strided = np.repeat(array, 2, axis=0)[::2]
    key = _key(inputs=array)
    assert _key(inputs=fortran) == key
    assert _key(inputs=swapped) == key
    assert _key(inputs=strided) == key


def test_nan_payloads_and_lists_hash_like_their_array() -> None:
    quiet = np.array([1.0, math.nan])
    other_nan = np.array([1.0, 0.0])
    other_nan.view(np.uint64)[1] = 0x7FF8_0000_0000_0BAD
    assert math.isnan(other_nan[1])
    assert _key(inputs=quiet) == _key(inputs=other_nan)
    assert _key(inputs=X.tolist()) == _key(inputs=X)


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="$ab", max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(params=st.dictionaries(st.text(max_size=4), json_values, max_size=5), data=st.data())
def test_dict_order_does_not_change_the_key(params: dict[str, Any], data: st.DataObject) -> None:
    order = data.draw(st.permutations(list(params)))
    reordered = {name: params[name] for name in order}
    assert _key(parameters=reordered) == _key(parameters=params)


@settings(max_examples=80, deadline=None)
@given(
    array=hnp.arrays(np.float64, hnp.array_shapes(max_dims=2), elements=st.floats(-1e6, 1e6)),
    data=st.data(),
)
def test_changing_any_input_value_changes_the_key(array: FloatArray, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, array.size - 1))
    new_value = data.draw(st.floats(allow_nan=True, allow_infinity=True))
    changed = array.copy()
    changed.flat[index] = new_value
    assume(not _same(float(changed.flat[index]), float(array.flat[index])))
    assert _key(inputs=changed) != _key(inputs=array)


@settings(max_examples=80, deadline=None)
@given(
    params=st.dictionaries(st.text(max_size=4), json_values, min_size=1, max_size=4), data=st.data()
)
def test_changing_any_parameter_changes_the_key(
    params: dict[str, Any], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(params)))
    new_value = data.draw(json_values)
    # Lists and tuples are the same sequence; everything else that differs must hash apart.
    assume(not _same(new_value, params[name]))
    assert _key(parameters={**params, name: new_value}) != _key(parameters=params)


@pytest.mark.parametrize(
    "change",
    [
        {"model_name": "churn2"},
        {"model_version": "4"},
        {"explainer_type": ExplanationType.SHAP_TREE},
        {"parameters": {**PARAMS, "n_samples": 101}},
        {"parameters": {**PARAMS, "n_samples": 100.0}},
        {"parameters": {**PARAMS, "tol": -0.01}},
        {"parameters": {**PARAMS, "extra": None}},
        {"parameters": {**PARAMS, "link": ["identity"]}},
        {"inputs": X.astype(np.float32)},
        {"inputs": X.reshape(4, 3)},
        {"inputs": X[:2]},
        {"inputs": -X},
        {"inputs": "a text"},
        {"inputs": pd.DataFrame(X)},
    ],
)
def test_any_change_gives_another_key(change: dict[str, Any]) -> None:
    assert _key(**change) != _key()


def test_field_boundaries_are_unambiguous() -> None:
    assert _key(model_name="ab", model_version="c") != _key(model_name="a", model_version="bc")
    assert _key(parameters={"a": "b", "c": "d"}) != _key(parameters={"a": 'b","c":"d'})
    assert _key(parameters={"x": math.nan}) != _key(parameters={"x": "NaN"})
    assert _key(parameters={"x": 0.0}) != _key(parameters={"x": -0.0})
    assert _key(parameters={"x": True}) != _key(parameters={"x": 1})
    assert _key(inputs="12") != _key(inputs=["12"])


def test_equivalent_spellings_share_a_key() -> None:
    assert _key(explainer_type="shap_kernel") == _key()
    assert _key(model_version=3) == _key()
    assert _key(parameters=None) == _key(parameters={})
    seq = {"classes": (0, 1)}
    assert _key(parameters=seq) == _key(parameters={"classes": [0, 1]})
    numpy_scalars = {"n": np.int64(100), "tol": np.float64(0.01), "flag": np.bool_(True)}
    assert _key(parameters=numpy_scalars) == _key(parameters={"n": 100, "tol": 0.01, "flag": True})
    assert _key(parameters={"t": ExplanationType.SHAP_TREE}) == _key(parameters={"t": "shap_tree"})
    assert _key(parameters={"link": Link.LOGIT}) == _key(parameters={"link": "logit"})
    assert _key(parameters={"link": Link.IDENTITY}) == _key(parameters={"link": 1})


def test_array_parameters_hash_by_content() -> None:
    background = np.arange(6.0).reshape(2, 3)
    key = _key(parameters={"background": background})
    assert key == _key(parameters={"background": np.asfortranarray(background)})
    assert key != _key(parameters={"background": background + 1})
    assert key != _key(parameters={"background": background.tolist()})


def test_text_inputs_hash_by_content() -> None:
    assert _key(inputs=["good", "bad"]) == _key(inputs=np.array(["good", "bad"]))
    assert _key(inputs=np.array(["good", "bad"], dtype=object)) == _key(inputs=["good", "bad"])
    assert _key(inputs=np.array(["a", "bb"])[:1]) == _key(inputs=np.array(["a"]))
    assert _key(inputs="good") != _key(inputs="bad")


def test_frames_hash_by_columns_and_values() -> None:
    frame = pd.DataFrame({"age": [30, 40, 50], "income": [1.5, 2.5, math.nan], "city": list("xyz")})
    key = _key(inputs=frame)
    rebuilt = pd.DataFrame({"age": [30, 40, 50]}).assign(
        income=[1.5, 2.5, math.nan], city=list("xyz")
    )
    assert _key(inputs=rebuilt) == key
    assert _key(inputs=frame.copy()) == key
    assert _key(inputs=pl.from_pandas(frame)) == key
    assert _key(inputs=frame.rename(columns={"age": "years"})) != key
    assert _key(inputs=frame[["income", "age", "city"]]) != key
    assert _key(inputs=frame.set_index(pd.Index([7, 8, 9]))) == key  # row labels don't matter


def test_values_without_a_canonical_form_are_rejected() -> None:
    with pytest.raises(InvalidError, match=r"parameters\.s holds a set"):
        _key(parameters={"s": {1, 2}})
    with pytest.raises(InvalidError, match="keys must be str"):
        _key(parameters={"nested": {1: "a"}})
    with pytest.raises(InvalidError, match="no canonical byte form"):
        _key(inputs=np.array([1, "a"], dtype=object))
    with pytest.raises(InvalidError, match="no canonical byte form"):
        _key(inputs=np.array([b"raw"]))
    with pytest.raises(InvalidError, match="'model_name'"):
        _key(model_name="")
    with pytest.raises(InvalidError, match="'model_version'"):
        _key(model_version=None)


# --- value codec --------------------------------------------------------------------------

codec_keys = st.text(alphabet="$ab_", max_size=4) | st.text(max_size=4)
CODEC_DTYPES = [
    np.dtype(name) for name in ("f8", "f4", "f2", "i8", "i4", "i1", "u2", "?", "c16", "<U3")
]
small_arrays: st.SearchStrategy[npt.NDArray[Any]] = hnp.arrays(
    st.sampled_from(CODEC_DTYPES),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
codec_leaves = (
    json_leaves
    | small_arrays
    | st.sampled_from([np.float32(1.5), np.int64(-3), np.bool_(False), np.uint8(7)])
)
codec_values = st.recursive(
    codec_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(codec_keys, inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def explanations(draw: st.DrawFn) -> Explanation:
    n, m, k = draw(st.integers(0, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    floats = st.floats(allow_nan=True, allow_infinity=True)
    values = draw(hnp.arrays(np.float64, (n, m, k), elements=floats))
    return Explanation(
        type=draw(st.sampled_from(list(ExplanationType))),
        values=values,
        base_values=draw(hnp.arrays(np.float64, (n, k), elements=floats)),
        predictions=draw(hnp.arrays(np.float64, (n, k), elements=floats)),
        feature_names=tuple(draw(st.lists(st.text(max_size=5), min_size=m, max_size=m))),
        output_names=tuple(draw(st.lists(st.text(max_size=5), min_size=k, max_size=k))),
        parameters=draw(st.dictionaries(codec_keys, codec_values, max_size=4)),
        seed=draw(st.none() | st.integers(0, 2**63)),
        runtime_seconds=draw(floats),
        standard_errors=draw(st.none() | hnp.arrays(np.float64, (n, m, k), elements=floats)),
        local_accuracy_error=draw(st.none() | floats),
        extras=draw(st.dictionaries(codec_keys, codec_values, max_size=4)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(explanation=explanations())
def test_encoding_round_trips_exactly(explanation: Explanation) -> None:
    encoded = encode_explanation(explanation)
    assert encoded.startswith(MAGIC)
    decoded = decode_explanation(encoded)
    assert _same_explanation(decoded, explanation)
    assert encode_explanation(decoded) == encoded
    assert decoded.values.flags.writeable


def test_big_endian_arrays_come_back_little_endian_and_equal() -> None:
    explanation = _explanation(extras={"mask": np.arange(4, dtype=">i4")})
    explanation = _explanation(values=explanation.values.astype(">f8"), extras=explanation.extras)
    decoded = decode_explanation(encode_explanation(explanation))
    assert decoded.values.dtype == np.dtype("<f8")
    assert np.array_equal(decoded.values, explanation.values)
    assert decoded.extras["mask"].dtype == np.dtype("<i4")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_decode_into_anything_but_a_miss(data: bytes) -> None:
    with pytest.raises(CorruptValueError):
        decode_explanation(data)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 10_000), byte=st.integers(0, 255), cut=st.booleans())
def test_damaged_encodings_decode_or_raise_corrupt_value(
    position: int, byte: int, cut: bool
) -> None:
    encoded = bytearray(encode_explanation(_explanation(extras={"m": np.ones(2)})))
    position %= len(encoded)
    damaged = bytes(encoded[:position]) if cut else None
    if damaged is None:
        encoded[position] = byte
        damaged = bytes(encoded)
    with contextlib.suppress(CorruptValueError):
        decode_explanation(damaged)


def _forge(header: dict[str, Any], payload: bytes = b"", *, raw: bytes | None = None) -> bytes:
    body = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<4sBI", MAGIC, 1, len(body)) + body + payload


def _valid_header() -> tuple[dict[str, Any], bytes]:
    encoded = encode_explanation(_explanation(standard_errors=None))
    (length,) = struct.unpack_from("<I", encoded, 5)
    return json.loads(encoded[9 : 9 + length]), encoded[9 + length :]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("extras"), "expected fields"),
        (lambda h: h.update(arrays={}), "not a list"),
        (lambda h: h["arrays"].__setitem__(0, ["|O8", [3, 4, 1]]), "not allowed"),
        (lambda h: h["arrays"].__setitem__(0, ["<f8"]), r"\[dtype, shape\]"),
        (lambda h: h["arrays"].__setitem__(0, ["<f8", 3]), "short list"),
        (lambda h: h["arrays"].__setitem__(0, ["<f8", [3, -4, 1]]), "list of sizes"),
        (lambda h: h["arrays"].__setitem__(0, ["<f8", [3, 4, 10]]), "past the end"),
        (lambda h: h["arrays"].__setitem__(0, ["<f8", [3, 4]]), "dimensions"),
        (lambda h: h["arrays"].__setitem__(0, ["<f8", [3, 2, 1]]), "trailing bytes"),
        (lambda h: h.update(values=7), "out of range"),
        (lambda h: h.update(values="0"), "not an int"),
        (lambda h: h.update(parameters=[]), "must be objects"),
        (lambda h: h.update(parameters={"$exec": 1}), "unknown tag"),
        (lambda h: h.update(parameters={"$float": "NaN"}), "holds 'NaN'"),
        (lambda h: h.update(parameters={"$tuple": 1}), "does not hold a list"),
        (lambda h: h.update(parameters={"s": {"$scalar": 0}}), "dimensions"),
        (lambda h: h.update(runtime_seconds="fast"), "not a float"),
        (lambda h: h.update(seed=True), "not an int"),
        (lambda h: h.update(feature_names=[1]), "names are not"),
        (lambda h: h.update(type="pickle"), "ValueError"),
    ],
)
def test_malformed_headers_are_corrupt(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    header, payload = _valid_header()
    mutate(header)
    with pytest.raises(CorruptValueError, match=message):
        decode_explanation(_forge(header, payload))


def test_foreign_formats_are_corrupt() -> None:
    header, payload = _valid_header()
    pickled = pickle.dumps(_explanation())
    for data, message in [
        (pickled, "known version"),
        (b"SNXE", "too short"),
        (struct.pack("<4sBI", MAGIC, 2, 0), "known version"),
        (struct.pack("<4sBI", MAGIC, 1, 10**6) + b"{}", "past the end"),
        (_forge({}, raw=b'{"a": NaN}'), "unexpected JSON constant"),
        (_forge({}, raw=b"\xff"), "UnicodeDecodeError"),
        (_forge({}, raw=b"[" * 100_000), "RecursionError"),
        (_forge(header, payload + b"x"), "trailing bytes"),
    ]:
        with pytest.raises(CorruptValueError, match=message):
            decode_explanation(data)


@pytest.mark.parametrize(
    "extras",
    [
        {"s": {1, 2}},
        {"objects": np.array([1, "a"], dtype=object)},
        {"nested": {1: "a"}},
        {"raw": np.array([b"x"])},
    ],
)
def test_values_the_format_cannot_hold_are_refused(extras: dict[str, Any]) -> None:
    with pytest.raises(UnencodableValueError, match="cannot serialise"):
        encode_explanation(_explanation(extras=extras))


# --- backends (one contract for both) -----------------------------------------------------


@pytest.fixture
def redis_backend(redis_url: str, redis_key_prefix: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(redis_url, prefix=redis_key_prefix)
    yield backend
    backend.close()


@pytest.fixture(params=["lru", "redis"])
def backend(request: pytest.FixtureRequest) -> CacheBackend:
    if request.param == "lru":
        return InProcessLRUBackend()
    backend: RedisBackend = request.getfixturevalue("redis_backend")
    return backend


def test_backend_stores_under_the_current_generation(backend: CacheBackend) -> None:
    assert backend.read("ns", "k") == (0, None)
    backend.write("ns", 0, "k", b"v0", 60)
    assert backend.read("ns", "k") == (0, b"v0")
    assert backend.read("other", "k") == (0, None)
    assert backend.bump_generation("ns") == 1
    assert backend.generation("ns") == 1
    assert backend.read("ns", "k") == (1, None)
    backend.write("ns", 1, "k", b"v1", 60)
    assert backend.read("ns", "k") == (1, b"v1")
    backend.write("ns", 1, "k", b"v1b", 60)
    assert backend.read("ns", "k") == (1, b"v1b")


def test_backend_entries_expire(backend: CacheBackend) -> None:
    backend.write("ns", 0, "k", b"v", 0.5)
    assert backend.read("ns", "k") == (0, b"v")
    wait_until(lambda: backend.read("ns", "k") == (0, None), timeout=5, message="expiry")


def test_lru_evicts_least_recently_used_entries_by_count_and_bytes() -> None:
    lru = InProcessLRUBackend(max_entries=2, max_bytes=10)
    lru.write("ns", 0, "a", b"1234", 60)
    lru.write("ns", 0, "b", b"1234", 60)
    assert lru.read("ns", "a")[1] == b"1234"  # "a" is now the most recently used
    lru.write("ns", 0, "c", b"1234", 60)
    assert lru.read("ns", "b")[1] is None
    assert lru.size == (2, 8)
    lru.write("ns", 0, "d", b"1234567", 60)  # a, c, d: 3 entries and 15 bytes
    assert lru.size == (1, 7)  # both a and c had to go
    lru.write("ns", 0, "huge", b"x" * 11, 60)  # larger than the whole cache: not stored
    assert lru.read("ns", "huge")[1] is None
    assert lru.acquire_lock("ns", 0, "d", 1.0) is not None
    lru.release_lock("ns", 0, "d", "in-process")
    lru.close()
    assert lru.size == (0, 0)


def test_lru_ttl_follows_its_clock() -> None:
    now = [100.0]
    lru = InProcessLRUBackend(clock=lambda: now[0])
    lru.write("ns", 0, "k", b"v", 10)
    now[0] = 109.9
    assert lru.read("ns", "k")[1] == b"v"
    now[0] = 110.0
    assert lru.read("ns", "k")[1] is None
    assert lru.size == (0, 0)


def test_lru_rejects_bad_bounds() -> None:
    with pytest.raises(InvalidError, match="'max_entries' parameter of InProcessLRUBackend"):
        InProcessLRUBackend(max_entries=0)
    with pytest.raises(InvalidError, match="'max_bytes'"):
        InProcessLRUBackend(max_bytes=True)


def test_redis_keys_are_namespaced_with_ttls_and_locks_are_exclusive(
    redis_backend: RedisBackend, redis_client: redis.Redis, redis_key_prefix: str
) -> None:
    client = redis_client
    redis_backend.write("ns", 0, "k", b"v", 60)
    redis_backend.bump_generation("ns")
    entry = redis_backend.entry_key("ns", 0, "k")
    assert entry == f"{redis_key_prefix}{{ns}}:0:k"
    assert 0 < client.pttl(entry) <= 60_000
    assert client.pttl(redis_backend.generation_key("ns")) == -1  # counters never expire
    token = redis_backend.acquire_lock("ns", 1, "k", 5.0)
    assert token is not None
    assert redis_backend.acquire_lock("ns", 1, "k", 5.0) is None
    redis_backend.release_lock("ns", 1, "k", "not-the-holder")
    assert client.exists(redis_backend.lock_key("ns", 1, "k"))
    redis_backend.release_lock("ns", 1, "k", token)
    assert not client.exists(redis_backend.lock_key("ns", 1, "k"))
    assert redis_backend.acquire_lock("ns", 1, "k", 5.0) is not None


def test_redis_backend_needs_a_bytes_client(redis_url: str, redis_key_prefix: str) -> None:
    text_client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(InvalidError, match="decode_responses=False"):
        RedisBackend(text_client)
    text_client.close()
    client = redis.Redis.from_url(redis_url)
    backend = RedisBackend(client, prefix=redis_key_prefix)
    backend.write("ns", 0, "k", b"v", 60)
    backend.close()  # not ours to close
    assert client.get(backend.entry_key("ns", 0, "k")) == b"v"
    client.close()


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_every_redis_operation_reports_an_unreachable_server(closed_port_url: str) -> None:
    backend = RedisBackend(closed_port_url)
    operations: list[Callable[[], object]] = [
        lambda: backend.read("ns", "k"),
        lambda: backend.generation("ns"),
        lambda: backend.write("ns", 0, "k", b"v", 1),
        lambda: backend.bump_generation("ns"),
        lambda: backend.acquire_lock("ns", 0, "k", 1),
        lambda: backend.release_lock("ns", 0, "k", "t"),
    ]
    for operation in operations:
        with pytest.raises(CacheBackendError, match="Redis cache unavailable"):
            operation()
    backend.close()


# --- the cache ----------------------------------------------------------------------------


@pytest.fixture
def cache(backend: CacheBackend) -> ExplanationCache:
    return ExplanationCache(backend, poll_interval_seconds=0.005)


class Recorder:
    """A compute function that counts its calls, optionally slowly."""

    def __init__(self, explanation: Explanation | None = None, delay: float = 0.0) -> None:
        self.explanation = explanation or _explanation()
        self.delay = delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Explanation:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.explanation


def test_miss_then_hit(cache: ExplanationCache) -> None:
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    compute = Recorder()
    first, hit = cache.get_or_compute(key, compute)
    assert (first, hit) == (compute.explanation, False)
    second, hit = cache.get_or_compute(key, compute)
    assert hit
    assert _same_explanation(second, compute.explanation)
    assert compute.calls == 1
    assert cache.stats == CacheStats(
        hits=1, misses=1, coalesced=0, errors=0, corrupt=0, degraded=False
    )
    assert cache.stats.hit_rate == 0.5


def test_get_and_put(cache: ExplanationCache) -> None:
    key = cache.key("churn", 3, ExplanationType.SHAP_KERNEL, PARAMS, X)
    assert cache.get(key) is None
    cache.put(key, _explanation(seed=4))
    cached = cache.get(key)
    assert cached is not None
    assert cached.seed == 4
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_concurrent_requests_compute_once(cache: ExplanationCache) -> None:
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    compute = Recorder(delay=0.3)
    barrier = threading.Barrier(8)
    results: list[tuple[Explanation, bool]] = []

    def request() -> None:
        barrier.wait()
        results.append(cache.get_or_compute(key, compute))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert compute.calls == 1
    assert sorted(hit for _, hit in results) == [False] + [True] * 7
    assert all(_same_explanation(e, compute.explanation) for e, _ in results)
    stats = cache.stats
    assert (stats.misses, stats.hits + stats.coalesced) == (1, 7)


def test_a_failed_computation_is_shared_and_not_cached() -> None:
    cache = ExplanationCache()
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    started = threading.Event()
    calls = []

    def failing() -> Explanation:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        raise RuntimeError("model crashed")

    errors: list[BaseException] = []

    def follower() -> None:
        started.wait()
        try:
            cache.get_or_compute(key, Recorder())
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=follower)
    thread.start()
    with pytest.raises(RuntimeError, match="model crashed"):
        cache.get_or_compute(key, failing)
    thread.join()
    assert len(calls) == 1
    assert [str(e) for e in errors] == ["model crashed"]
    assert cache.get_or_compute(key, Recorder())[1] is False


def test_invalidating_a_version_retires_its_entries_only(cache: ExplanationCache) -> None:
    v3 = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    v4 = cache.key("churn", "4", "shap_kernel", PARAMS, X)
    for key in (v3, v4):
        cache.get_or_compute(key, Recorder())
    assert cache.invalidate("churn", "3") == 1
    assert cache.invalidate("churn", 3) == 2
    assert cache.get_or_compute(v3, Recorder())[1] is False
    assert cache.get_or_compute(v3, Recorder())[1] is True
    assert cache.get_or_compute(v4, Recorder())[1] is True


def test_entries_expire_after_their_ttl(redis_backend: RedisBackend) -> None:
    cache = ExplanationCache(redis_backend, ttl_seconds=0.5)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    cache.get_or_compute(key, Recorder())
    assert cache.get(key) is not None
    wait_until(lambda: cache.get(key) is None, timeout=5, message="the entry to expire")


def test_a_corrupt_value_is_a_miss_and_is_replaced(
    cache: ExplanationCache, caplog: pytest.LogCaptureFixture
) -> None:
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    cache.backend.write(key.namespace, 0, key.digest, pickle.dumps(_explanation()), 60)
    with caplog.at_level(logging.WARNING):
        _, hit = cache.get_or_compute(key, Recorder())
    assert not hit
    assert "Corrupt explanation cache entry for churn version 3" in caplog.text
    assert (cache.stats.corrupt, cache.stats.errors, cache.stats.misses) == (1, 1, 1)
    assert cache.get_or_compute(key, Recorder())[1] is True


def test_an_unencodable_explanation_is_served_but_not_cached(
    cache: ExplanationCache, caplog: pytest.LogCaptureFixture
) -> None:
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    odd = _explanation(extras={"model": object()})
    with caplog.at_level(logging.WARNING):
        assert cache.get_or_compute(key, Recorder(odd)) == (odd, False)
    assert "Explanation not cached: extras.model holds a object" in caplog.text
    assert cache.stats.errors == 1
    assert cache.get_or_compute(key, Recorder(odd))[1] is False


def test_another_process_waits_for_the_lock_holders_value(
    redis_url: str, redis_key_prefix: str
) -> None:
    """Two caches on one Redis are two processes as far as single-flight is concerned."""
    first = ExplanationCache(RedisBackend(redis_url, prefix=redis_key_prefix))
    second = ExplanationCache(RedisBackend(redis_url, prefix=redis_key_prefix))
    key = first.key("churn", "3", "shap_kernel", PARAMS, X)
    slow, other = Recorder(delay=0.4), Recorder(_explanation(seed=9))
    thread = threading.Thread(target=first.get_or_compute, args=(key, slow))
    thread.start()
    lock = RedisBackend(redis_url, prefix=redis_key_prefix).lock_key(key.namespace, 0, key.digest)
    client = redis.Redis.from_url(redis_url)
    wait_until(lambda: bool(client.exists(lock)), timeout=5, message="the lock")
    explanation, hit = second.get_or_compute(key, other)
    thread.join()
    assert hit
    assert other.calls == 0
    assert explanation.seed == slow.explanation.seed
    assert not client.exists(lock)  # released by its holder
    client.close()
    first.close()
    second.close()


def test_a_dead_lock_holder_delays_the_computation_by_at_most_the_lock_ttl(
    redis_backend: RedisBackend, redis_url: str
) -> None:
    cache = ExplanationCache(redis_backend, wait_timeout_seconds=10)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    client = redis.Redis.from_url(redis_url)
    started = time.monotonic()
    client.set(redis_backend.lock_key(key.namespace, 0, key.digest), "dead", px=300)
    client.close()
    compute = Recorder()
    assert cache.get_or_compute(key, compute)[1] is False
    assert 0.29 <= time.monotonic() - started < 5
    assert compute.calls == 1


def test_waiting_is_bounded_even_if_the_lock_outlives_it(
    redis_backend: RedisBackend, redis_url: str
) -> None:
    cache = ExplanationCache(redis_backend, wait_timeout_seconds=0.2, lock_ttl_seconds=60)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    client = redis.Redis.from_url(redis_url)
    client.set(redis_backend.lock_key(key.namespace, 0, key.digest), "stuck", px=60_000)
    client.close()
    started = time.monotonic()
    assert cache.get_or_compute(key, Recorder())[1] is False
    assert 0.2 <= time.monotonic() - started < 3
    assert cache.get(key) is not None  # stored even without the lock


def test_a_waiter_follows_an_invalidation(redis_backend: RedisBackend, redis_url: str) -> None:
    cache = ExplanationCache(redis_backend, wait_timeout_seconds=10)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    client = redis.Redis.from_url(redis_url)
    client.set(redis_backend.lock_key(key.namespace, 0, key.digest), "busy", px=10_000)
    client.close()
    threading.Timer(0.1, cache.invalidate, args=("churn", "3")).start()
    compute = Recorder()
    started = time.monotonic()
    assert cache.get_or_compute(key, compute)[1] is False
    assert time.monotonic() - started < 5  # the generation-1 lock was free
    assert redis_backend.read(key.namespace, key.digest)[0] == 1


def _process_request(url: str, prefix: str, barrier: Any, counter: str) -> None:
    cache = ExplanationCache(RedisBackend(url, prefix=prefix))
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    client = redis.Redis.from_url(url)

    def compute() -> Explanation:
        client.incr(counter)
        time.sleep(0.5)
        return _explanation()

    barrier.wait(timeout=60)
    cache.get_or_compute(key, compute)
    client.close()
    cache.close()


@pytest.mark.slow
def test_processes_sharing_redis_compute_once(redis_url: str, redis_key_prefix: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    counter = f"{redis_key_prefix}computations"
    processes = [
        context.Process(
            target=_process_request, args=(redis_url, redis_key_prefix, barrier, counter)
        )
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    client = redis.Redis.from_url(redis_url)
    assert client.get(counter) == b"1"
    client.close()


def test_an_unreachable_redis_still_serves_explanations(
    closed_port_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    cache = ExplanationCache(RedisBackend(closed_port_url), registry=registry)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    compute = Recorder()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            assert cache.get_or_compute(key, compute) == (compute.explanation, False)
    assert time.monotonic() - started < 2
    assert compute.calls == 5
    assert "Explanation cache read failed, serving uncached" in caplog.text
    stats = cache.stats
    assert stats.degraded
    assert stats.misses == 5
    # The breaker opens after 3 failures; later calls skip the dead server entirely.
    assert stats.errors == 3
    sample = registry.get_sample_value
    assert sample("synapsenet_explanation_cache_errors_total", {"kind": "backend"}) == 3
    assert sample("synapsenet_explanation_cache_degraded") == 1
    assert cache.get(key) is None
    cache.put(key, compute.explanation)
    with pytest.raises(UnavailableError):
        cache.invalidate("churn", "3")
    cache.close()


class FlakyBackend(InProcessLRUBackend):
    """An LRU whose every operation fails while ``down`` is set."""

    down = False

    def read(self, namespace: str, key: str) -> tuple[int, bytes | None]:
        if self.down:
            raise CacheBackendError("down")
        return super().read(namespace, key)

    def write(
        self, namespace: str, generation: int, key: str, value: bytes, ttl_seconds: float
    ) -> None:
        if self.down:
            raise CacheBackendError("down")
        super().write(namespace, generation, key, value, ttl_seconds)


class SharedFlakyBackend(FlakyBackend):
    """Pretends to be shared, and fails on taking the lock."""

    shared = True

    def acquire_lock(
        self, namespace: str, generation: int, key: str, ttl_seconds: float
    ) -> str | None:
        raise CacheBackendError("lock service down")


def test_the_cache_recovers_when_its_store_comes_back() -> None:
    now = [0.0]
    backend = FlakyBackend()
    registry = CollectorRegistry()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=lambda: now[0])
    cache = ExplanationCache(backend, registry=registry, breaker=breaker)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    backend.down = True
    assert cache.get_or_compute(key, Recorder())[1] is False
    assert cache.degraded
    backend.down = False
    assert cache.get_or_compute(key, Recorder())[1] is False  # breaker still open: skipped
    now[0] = 5.0
    assert cache.get_or_compute(key, Recorder())[1] is False  # trial read succeeds: stored
    assert not cache.degraded
    assert cache.get_or_compute(key, Recorder())[1] is True
    assert registry.get_sample_value("synapsenet_explanation_cache_degraded") == 0
    assert registry.get_sample_value("synapsenet_explanation_cache_hits_total") == 1
    assert registry.get_sample_value("synapsenet_explanation_cache_misses_total") == 3


class StoreDiesWhileWaitingBackend(FlakyBackend):
    """Shared; the lock is always held by someone else, and the store dies once asked."""

    shared = True

    def acquire_lock(
        self, namespace: str, generation: int, key: str, ttl_seconds: float
    ) -> str | None:
        self.down = True
        return None


def test_a_store_failing_during_the_wait_means_compute_without_storing() -> None:
    cache = ExplanationCache(StoreDiesWhileWaitingBackend(), poll_interval_seconds=0.001)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    compute = Recorder()
    assert cache.get_or_compute(key, compute)[1] is False
    assert compute.calls == 1
    assert (cache.stats.errors, cache.stats.misses) == (1, 1)


def test_a_failing_lock_means_compute_without_storing() -> None:
    cache = ExplanationCache(SharedFlakyBackend())
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    compute = Recorder()
    assert cache.get_or_compute(key, compute)[1] is False
    assert cache.stats.errors == 1
    assert cache.degraded


def test_prometheus_counters_mirror_the_stats() -> None:
    registry = CollectorRegistry()
    cache = ExplanationCache(registry=registry)
    key = cache.key("churn", "3", "shap_kernel", PARAMS, X)
    cache.get_or_compute(key, Recorder())
    cache.get_or_compute(key, Recorder())
    cache.backend.write(key.namespace, 0, key.digest, b"junk", 60)
    cache.get_or_compute(key, Recorder())
    sample = registry.get_sample_value
    assert sample("synapsenet_explanation_cache_hits_total") == 1
    assert sample("synapsenet_explanation_cache_misses_total") == 2
    assert sample("synapsenet_explanation_cache_coalesced_total") == 0
    assert sample("synapsenet_explanation_cache_errors_total", {"kind": "corrupt"}) == 1
    assert sample("synapsenet_explanation_cache_errors_total", {"kind": "backend"}) == 0
    assert sample("synapsenet_explanation_cache_degraded") == 0


def test_cache_keys_are_built_once() -> None:
    key = CacheKey.build("churn", 3, "shap_kernel", PARAMS, X)
    assert key.digest == _key()
    assert key.model_version == "3"
    assert len(key.namespace) == 32
    assert key.namespace == CacheKey.build("churn", "3", "lime_tabular", {}, [1]).namespace
    assert key.namespace != CacheKey.build("churn", "4", "shap_kernel", PARAMS, X).namespace


@pytest.mark.parametrize(
    "name", ["ttl_seconds", "lock_ttl_seconds", "wait_timeout_seconds", "poll_interval_seconds"]
)
def test_bad_durations_are_named(name: str) -> None:
    with pytest.raises(InvalidError, match=f"The '{name}' parameter of ExplanationCache"):
        ExplanationCache(**{name: 0})  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match=f"'{name}'"):
        ExplanationCache(**{name: True})  # type: ignore[arg-type]


def test_empty_stats_have_a_zero_hit_rate() -> None:
    stats = ExplanationCache().stats
    assert (stats.requests, stats.hit_rate) == (0, 0.0)
