"""Fixtures for the model registry: a registry on each database, and small fitted models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.registry import ModelRegistry

FEATURES = ("age", "income", "tenure")


def training_data(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Three numeric features and a binary label that depends on two of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return pd.DataFrame(x, columns=list(FEATURES)), y


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    """A local object store in a temporary directory."""
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def registry(db: Database, store: LocalObjectStore) -> ModelRegistry:
    """A registry on the parametrized database (SQLite and PostgreSQL)."""
    return ModelRegistry(db, store)


def logistic_regression() -> object:
    """A fitted scikit-learn classifier that kept its feature names."""
    from sklearn.linear_model import LogisticRegression

    x, y = training_data()
    return LogisticRegression().fit(x, y)


def xgb_classifier() -> object:
    """A small fitted XGBoost scikit-learn wrapper."""
    import xgboost

    x, y = training_data()
    return xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)


def lgbm_regressor() -> object:
    """A small fitted LightGBM regressor."""
    import lightgbm

    x, y = training_data()
    model = lightgbm.LGBMRegressor(n_estimators=5, num_leaves=4, min_child_samples=5, verbose=-1)
    return model.fit(x, y.astype(float))
