"""The registry as inference sees it: production versions cached for a short time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.errors import NotFoundError
from synapsenet.services.inference.registry_models import RegistryServedModels
from synapsenet.services.registry.loader import RegistryModelLoader
from synapsenet.services.registry.registry import ModelRegistry


def test_production_is_read_at_most_once_per_ttl(db: Database, tmp_path: Path) -> None:
    registry = ModelRegistry(db, LocalObjectStore(tmp_path))
    x = np.arange(10.0).reshape(-1, 1)
    for slope in (1.0, 2.0):
        model = LinearRegression().fit(x, slope * x[:, 0])
        registry.log_model("price", model, feature_names=["x"])
    registry.promote("price", "1", reason="first")
    cached = RegistryServedModels(registry, RegistryModelLoader(registry), ttl=3600)
    fresh = RegistryServedModels(registry, RegistryModelLoader(registry), ttl=0)
    assert cached.production_version("price") == fresh.production_version("price") == "1"
    registry.promote("price", "2", reason="better")
    assert cached.production_version("price") == "1"  # within its ttl
    assert fresh.production_version("price") == "2"
    loaded = fresh.load("price", "2")
    assert loaded.version == "2"
    with pytest.raises(NotFoundError):
        fresh.production_version("unknown")
