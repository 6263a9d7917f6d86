"""Content addressing and verification of stored artifacts."""

from __future__ import annotations

import blake3
import pytest

from synapsenet.errors import ERRORS_BY_CODE, SynapseNetError
from synapsenet.services.registry.artifacts import (
    CorruptArtifactError,
    artifact_key,
    background_key,
    content_hash,
    verify,
)


def test_content_hash_is_blake3_hex() -> None:
    assert content_hash(b"model bytes") == blake3.blake3(b"model bytes").hexdigest()


def test_keys_are_content_addressed_and_fanned_out() -> None:
    digest = content_hash(b"x")
    assert artifact_key(digest) == f"registry/artifacts/{digest[:2]}/{digest}.bin"
    assert background_key(digest) == f"registry/backgrounds/{digest[:2]}/{digest}.npy"


@pytest.mark.parametrize("bad", ["", "ABC", "../" + "0" * 61, "g" * 64, "0" * 63])
def test_a_key_is_never_built_from_something_that_is_not_a_digest(bad: str) -> None:
    with pytest.raises(ValueError, match="not a BLAKE3 hex digest"):
        artifact_key(bad)


def test_verify_returns_matching_bytes() -> None:
    assert verify(b"abc", content_hash(b"abc"), "artifact of m@1") == b"abc"


def test_verify_refuses_bytes_that_hash_differently() -> None:
    expected = content_hash(b"original")
    with pytest.raises(CorruptArtifactError) as caught:
        verify(b"tampered", expected, "artifact of churn@3")
    error = caught.value
    assert isinstance(error, SynapseNetError)
    assert (error.status, error.code) == (500, "corrupt-artifact")
    assert ERRORS_BY_CODE["corrupt-artifact"] is CorruptArtifactError
    assert "artifact of churn@3 is corrupt" in error.detail
    assert (error.expected, error.actual) == (expected, content_hash(b"tampered"))
    assert error.to_problem()["expected"] == expected
