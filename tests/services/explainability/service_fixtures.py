"""A small LightGBM model and its rows, shared by the explanation service, API and CLI tests."""

from __future__ import annotations

from functools import cache

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

FEATURES = ("age", "income", "tenure", "noise")
"""Feature names of the test model; ``age`` matters most, ``noise`` not at all."""


@cache
def training_rows() -> npt.NDArray[np.float64]:
    """200 seeded rows of the four features."""
    return np.random.default_rng(7).normal(size=(200, len(FEATURES)))


@cache
def regressor() -> lgb.LGBMRegressor:
    """A LightGBM regressor of ``3 * age + income + 0.3 * tenure`` (noise unused)."""
    rows = training_rows()
    target = 3.0 * rows[:, 0] + rows[:, 1] + 0.3 * rows[:, 2]
    model = lgb.LGBMRegressor(n_estimators=30, num_leaves=8, verbose=-1, random_state=0)
    return model.fit(rows, target)
