"""Several model sources behind one loader: the first that knows the model serves it."""

from __future__ import annotations

from collections.abc import Sequence

from synapsenet.errors import NotFoundError
from synapsenet.services.explainability.loader import LoadedModel, ModelLoader


class ChainedModelLoader:
    """Asks each loader in turn; a :class:`NotFoundError` passes the request to the next.

    The platform serves registered models first and model files under the data directory
    second, so models dropped there keep working next to the registry.

    Args:
        loaders: The loaders, in the order they are asked (at least one).
    """

    def __init__(self, loaders: Sequence[ModelLoader]) -> None:
        if not loaders:
            raise ValueError("ChainedModelLoader needs at least one loader")
        self.loaders = tuple(loaders)

    def load(self, name: str, version: str) -> LoadedModel:
        """The model from the first loader that has it.

        Raises:
            NotFoundError: No loader has it (the last loader's message).
        """
        for loader in self.loaders[:-1]:
            try:
                return loader.load(name, version)
            except NotFoundError:
                continue
        return self.loaders[-1].load(name, version)
