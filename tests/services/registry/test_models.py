"""Validation of signatures and metadata: a clear error naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from synapsenet.errors import InvalidError
from synapsenet.services.registry.models import (
    FeatureType,
    ModelSignature,
    OutputKind,
    check_dataset_refs,
)


@pytest.mark.parametrize(
    ("names", "types", "kind", "field", "message"),
    [
        ((), (), "regression", "signature.feature_names", "non-empty list"),
        (("a", ""), ("numeric",) * 2, "regression", "signature.feature_names", "non-empty"),
        (("a", "a"), ("numeric",) * 2, "regression", "signature.feature_names", "repeats"),
        (("a",), ("numeric",) * 2, "regression", "signature.feature_types", "2 entries"),
        (("a",), ("text",), "regression", "signature", "'text'"),
        (("a",), ("numeric",), "ranking", "signature", "'ranking'"),
    ],
)
def test_bad_signatures_name_the_field(
    names: tuple[str, ...], types: tuple[str, ...], kind: str, field: str, message: str
) -> None:
    with pytest.raises(InvalidError, match=message) as caught:
        ModelSignature(names, types, kind)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_signatures_round_trip_through_dicts() -> None:
    signature = ModelSignature(
        ("a", "b"), (FeatureType.NUMERIC, FeatureType.CATEGORICAL), OutputKind.LABEL, ("x", "y")
    )
    assert ModelSignature.from_dict(signature.to_dict()) == signature
    numeric = ModelSignature.from_dict({"feature_names": ["a"], "output_kind": "regression"})
    assert numeric.feature_types == (FeatureType.NUMERIC,)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"feature_names": "a", "output_kind": "regression"}, "signature.feature_names"),
        (
            {"feature_names": ["a"], "feature_types": "numeric", "output_kind": "regression"},
            "signature.feature_types",
        ),
        (
            {"feature_names": ["a"], "output_kind": "regression", "output_names": "x"},
            "signature.output_names",
        ),
        ({"feature_names": ["a"]}, "signature"),
    ],
)
def test_malformed_signature_documents_name_the_member(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidError) as caught:
        ModelSignature.from_dict(data)
    assert caught.value.field == field


def test_dataset_refs_accept_name_at_version() -> None:
    assert check_dataset_refs(["orders@v3", "users.v2@v10"]) == ("orders@v3", "users.v2@v10")
    assert check_dataset_refs("orders@v1") == ("orders@v1",)
    with pytest.raises(InvalidError):
        check_dataset_refs([3])  # type: ignore[list-item]
