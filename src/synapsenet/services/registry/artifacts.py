"""Content addressing of model artifacts and background rows, and their verification.

An artifact is stored under a key derived from its BLAKE3 digest, so two versions with the
same bytes share one object and a stored object can always be checked against its address.
Every read goes through :func:`verify`: bytes that hash to anything else than recorded raise
:class:`CorruptArtifactError` and are never deserialised.
"""

from __future__ import annotations

import io
import re
from typing import Any

import blake3
import numpy as np

from synapsenet.errors import InvalidError, SynapseNetError

__all__ = [
    "ARTIFACT_PREFIX",
    "BACKGROUND_PREFIX",
    "CorruptArtifactError",
    "artifact_key",
    "background_key",
    "background_npy",
    "content_hash",
    "verify",
]

ARTIFACT_PREFIX = "registry/artifacts"
BACKGROUND_PREFIX = "registry/backgrounds"
_HEX256 = re.compile(r"^[0-9a-f]{64}$")


class CorruptArtifactError(SynapseNetError):
    """A stored artifact does not hash to its recorded digest (HTTP 500).

    Attributes:
        subject: What is corrupt, e.g. ``"artifact of churn@3"``.
        expected: The recorded BLAKE3 digest.
        actual: The digest of the bytes read back.
    """

    status = 500
    code = "corrupt-artifact"
    title = "Corrupt model artifact"

    def __init__(self, subject: str, expected: str, actual: str, **extra: Any) -> None:
        super().__init__(
            f"The {subject} is corrupt: its BLAKE3 digest is {actual}, but {expected} was "
            "recorded when it was registered. It was not loaded.",
            expected=expected,
            actual=actual,
            **extra,
        )
        self.subject = subject
        self.expected = expected
        self.actual = actual


def content_hash(data: bytes) -> str:
    """The BLAKE3 hex digest of ``data``."""
    return blake3.blake3(data).hexdigest()


def _key(prefix: str, digest: str, suffix: str) -> str:
    if not _HEX256.match(digest):
        raise ValueError(f"not a BLAKE3 hex digest: {digest!r}")
    return f"{prefix}/{digest[:2]}/{digest}{suffix}"


def artifact_key(digest: str) -> str:
    """Object-store key of the artifact whose BLAKE3 digest is ``digest``."""
    return _key(ARTIFACT_PREFIX, digest, ".bin")


def background_key(digest: str) -> str:
    """Object-store key of the background rows (``.npy``) whose digest is ``digest``."""
    return _key(BACKGROUND_PREFIX, digest, ".npy")


def verify(data: bytes, expected: str, subject: str) -> bytes:
    """Return ``data`` if it hashes to ``expected``.

    Args:
        data: Bytes read back from the object store.
        expected: The digest recorded at registration.
        subject: What the bytes are, for the error message.

    Raises:
        CorruptArtifactError: The digest differs.
    """
    actual = content_hash(data)
    if actual != expected:
        raise CorruptArtifactError(subject, expected, actual)
    return data


def background_npy(background: Any, n_features: int) -> bytes | None:
    """Background rows as ``.npy`` bytes (float64, no pickle), or None without rows.

    Raises:
        InvalidError: Naming ``background`` unless it is a non-empty ``(n, n_features)``
            numeric array.
    """
    if background is None:
        return None
    try:
        array = np.asarray(background, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidError("background must be a numeric array", field="background") from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != n_features:
        raise InvalidError(
            f"background must be a non-empty (n, {n_features}) array. Got shape "
            f"{array.shape} instead.",
            field="background",
        )
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()
