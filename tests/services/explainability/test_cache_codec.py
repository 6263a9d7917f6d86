"""The cache codec on non-finite floats, deterministically (the property tests may miss them)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapsenet.services.explainability._cache_codec import (
    CorruptValueError,
    decode_explanation,
    encode_explanation,
)
from synapsenet.services.explainability.cache import cache_key
from synapsenet.services.explainability.models import Explanation, ExplanationType


def explanation(**parameters: object) -> Explanation:
    return Explanation(
        type=ExplanationType.SHAP_KERNEL,
        values=np.zeros((1, 2, 1)),
        base_values=np.zeros((1, 1)),
        predictions=np.zeros((1, 1)),
        feature_names=("a", "b"),
        parameters=dict(parameters),
    )


def test_non_finite_parameters_round_trip() -> None:
    original = explanation(tol=math.inf, floor=-math.inf, missing=math.nan, width=0.5)
    decoded = decode_explanation(encode_explanation(original))
    assert decoded.parameters["tol"] == math.inf
    assert decoded.parameters["floor"] == -math.inf
    assert math.isnan(decoded.parameters["missing"])
    assert decoded.parameters["width"] == 0.5


def test_an_unknown_float_tag_is_corrupt() -> None:
    encoded = encode_explanation(explanation(tol=math.inf))
    marker = b'{"$float":"inf"}'
    assert marker in encoded
    tampered = encoded.replace(marker, b'{"$float":"big"}')
    # The header length is unchanged (same number of bytes), so only the tag is wrong.
    assert len(tampered) == len(encoded)
    with pytest.raises(CorruptValueError, match=r"\$float tag holds 'big'"):
        decode_explanation(tampered)


def test_cache_keys_tell_infinities_and_nan_apart() -> None:
    inputs = np.zeros((1, 2))

    def key(value: float) -> str:
        return cache_key("m", "1", ExplanationType.SHAP_KERNEL, {"tol": value}, inputs)

    keys = {key(math.inf), key(-math.inf), key(math.nan), key(1.0)}
    assert len(keys) == 4
    assert key(math.inf) == key(math.inf)
    assert key(math.nan) == key(float("nan"))
