"""Artifacts uploaded ahead of their version: streamed to the store under their address.

Over HTTP a version is registered in two steps: the artifact's bytes are uploaded (streamed
to disk, hashed, then to the object store under their BLAKE3 address), and the version's
metadata names that address. The registry reads the bytes back, verified, before it
registers anything, so a version can only point at an artifact that exists and is intact.
"""

from __future__ import annotations

import re
from typing import BinaryIO

import blake3

from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.registry.artifacts import artifact_key, verify
from synapsenet.services.registry.registry import ModelRegistry

__all__ = ["read_uploaded", "upload_artifact"]

_BLOCK = 1 << 20
_HEX256 = re.compile(r"^[0-9a-f]{64}$")


def upload_artifact(registry: ModelRegistry, name: str, source: BinaryIO) -> tuple[str, int]:
    """Store an artifact for a later version of ``name``; returns its digest and size.

    Args:
        registry: The registry (its object store receives the bytes).
        name: The model the artifact is for (it must exist).
        source: A seekable binary file, read twice in blocks: once to hash, once to store.

    Raises:
        NotFoundError: No such model.
        InvalidError: The artifact is empty.
    """
    registry.get_model(name)
    hasher = blake3.blake3()
    size = 0
    start = source.tell()
    while block := source.read(_BLOCK):
        hasher.update(block)
        size += len(block)
    if size == 0:
        raise InvalidError("the artifact is empty", field="artifact")
    digest = hasher.hexdigest()
    key = artifact_key(digest)
    if not registry.store.exists(key):
        source.seek(start)
        registry.store.put(key, source)
    return digest, size


def read_uploaded(registry: ModelRegistry, digest: str) -> bytes:
    """The bytes of an uploaded artifact, checked against their address.

    Raises:
        InvalidError: Naming ``artifact_hash`` when it is malformed or nothing was uploaded
            under it.
        CorruptArtifactError: The stored bytes hash differently.
    """
    digest = digest.strip().lower()
    if not _HEX256.match(digest):
        raise InvalidError(
            f"artifact_hash must be 64 hexadecimal digits. Got {digest[:80]!r} instead.",
            field="artifact_hash",
        )
    try:
        data = registry.store.get(artifact_key(digest))
    except NotFoundError:
        raise InvalidError(
            f"no artifact was uploaded with BLAKE3 {digest}; upload it first",
            field="artifact_hash",
        ) from None
    return verify(data, digest, f"uploaded artifact {digest}")
