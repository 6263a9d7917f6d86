"""RegistryModelLoader: registered versions, loaded once, kept in a least-recently-used cache.

It implements the explanation service's :class:`~synapsenet.services.explainability.loader.
ModelLoader` protocol (and serves inference the same way). A load reads the artifact,
checks its BLAKE3 digest, deserialises it by flavour (never unpickling an untrusted
artifact), and reads the background rows from ``.npy`` without pickle. Concurrent loads of
one version share a single read (single flight); a failed load is not cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import blake3
import numpy as np

from synapsenet.errors import InvalidError
from synapsenet.services.explainability.loader import LoadedModel
from synapsenet.services.registry.flavors import UntrustedArtifactError, deserialize
from synapsenet.services.registry.models import ModelFlavor, ModelVersion, parse_version
from synapsenet.services.registry.registry import ModelRegistry

__all__ = ["RegistryModelLoader", "loaded_content_hash"]


def loaded_content_hash(version: ModelVersion) -> str:
    """The content hash of a loaded version: artifact, background and metadata together.

    It changes whenever anything an explanation depends on changes, so it can key caches.
    """
    hasher = blake3.blake3()
    for part in (
        version.flavor.value,
        version.artifact_hash,
        version.background_hash or "",
        repr(sorted(version.signature.to_dict().items())),
    ):
        hasher.update(part.encode("utf-8"))
        hasher.update(b"\0")
    return hasher.hexdigest()


@dataclass
class _Flight:
    """One load in progress; later callers for the same key wait on it."""

    done: threading.Event = field(default_factory=threading.Event)
    result: LoadedModel | None = None
    error: BaseException | None = None


class RegistryModelLoader:
    """Loads registered model versions, keeping the ``capacity`` most recently used.

    Args:
        registry: Where versions and artifacts come from.
        capacity: Loaded models kept in memory (>= 1).
    """

    def __init__(self, registry: ModelRegistry, *, capacity: int = 16) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise InvalidError(
                "The 'capacity' parameter of RegistryModelLoader must be an int >= 1. "
                f"Got {capacity!r} instead.",
                field="capacity",
            )
        self.registry = registry
        self.capacity = capacity
        self.loads = 0
        """Artifacts read and deserialised so far (cache misses that completed)."""
        self._cache: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._flights: dict[tuple[str, int], _Flight] = {}
        self._lock = threading.Lock()

    def load(self, name: str, version: str) -> LoadedModel:
        """The model ``name`` at ``version`` (``"3"`` or ``"v3"``), loaded and verified.

        Raises:
            NotFoundError: No such model or version.
            CorruptArtifactError: The stored artifact or background does not match its hash.
            UntrustedArtifactError: A pickle not registered as trusted, or a skops archive
                naming types outside scikit-learn.
        """
        key = (name, parse_version(version))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            flight.result = self._read(name, str(key[1]))
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if flight.result is not None:
                    self.loads += 1
                    self._cache[key] = flight.result
                    while len(self._cache) > self.capacity:
                        self._cache.popitem(last=False)
            flight.done.set()
        return flight.result

    def load_production(self, name: str) -> LoadedModel:
        """The model's current production version, loaded.

        Raises:
            NotFoundError: No such model, or it has no production version.
        """
        return self.load(name, self.registry.production_version(name).version)

    def cached(self) -> list[tuple[str, str]]:
        """The ``(name, version)`` pairs held, least recently used first."""
        with self._lock:
            return [(name, str(number)) for name, number in self._cache]

    def _read(self, name: str, version: str) -> LoadedModel:
        found = self.registry.get_version(name, version)
        if found.flavor is ModelFlavor.PICKLE and not found.trusted:
            raise UntrustedArtifactError(
                f"{found.ref} is a pickle that was not registered as trusted; it is not loaded",
                field="trusted",
            )
        data = self.registry.load_artifact(name, version)
        model = deserialize(data, found.flavor)
        background = self.registry.load_background(found)
        signature = found.signature
        return LoadedModel(
            name=name,
            version=found.version,
            model=model,
            feature_names=signature.feature_names,
            feature_types=signature.feature_types,
            output_names=signature.output_names,
            background=None if background is None else np.asarray(background, np.float64),
            content_hash=loaded_content_hash(found),
        )
