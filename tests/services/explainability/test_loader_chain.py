"""A chain of model loaders: the first that knows the model serves it."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LinearRegression

from synapsenet.errors import NotFoundError
from synapsenet.services.explainability.loader import InMemoryModelLoader
from synapsenet.services.explainability.loader_chain import ChainedModelLoader


def loader_with(name: str, version: str) -> InMemoryModelLoader:
    loader = InMemoryModelLoader()
    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    loader.register(name, version, model, feature_names=["x"])
    return loader


def test_the_first_loader_that_knows_the_model_serves_it() -> None:
    first, second = loader_with("a", "1"), loader_with("b", "1")
    both = loader_with("a", "1")
    chain = ChainedModelLoader([first, second, both])
    assert chain.load("a", "1") is first.load("a", "1")
    assert chain.load("b", "1") is second.load("b", "1")
    with pytest.raises(NotFoundError):
        chain.load("c", "1")


def test_a_chain_needs_a_loader() -> None:
    with pytest.raises(ValueError, match="at least one"):
        ChainedModelLoader([])
