"""The demo's models: a depth-2 baseline tree and a boosted candidate, trained from CSV bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass

import blake3
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from synapsenet.demo.data import LABEL, matrix


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model and what its run logs.

    Attributes:
        model: The fitted classifier.
        params: Its hyper-parameters.
        data_blake3: BLAKE3 of the CSV bytes it was trained on.
        train_rows: Rows it was trained on.
        holdout_error: Share of wrong labels on the demo's holdout applicants.
        holdout_auc: ROC AUC on the holdout.
        background: 50 training rows, for explanations.
    """

    model: DecisionTreeClassifier | GradientBoostingClassifier
    params: dict[str, int | float | str]
    data_blake3: str
    train_rows: int
    holdout_error: float
    holdout_auc: float
    background: npt.NDArray[np.float64]


def train(kind: str, csv: bytes, holdout: pd.DataFrame, *, seed: int = 0) -> TrainedModel:
    """Fit ``kind`` (``baseline`` or ``candidate``) on the features CSV ``csv``."""
    frame = pd.read_csv(io.BytesIO(csv))
    x, y = matrix(frame), frame[LABEL].to_numpy()
    model: DecisionTreeClassifier | GradientBoostingClassifier
    params: dict[str, int | float | str]
    if kind == "baseline":
        params = {"algorithm": "decision_tree", "max_depth": 2}
        model = DecisionTreeClassifier(max_depth=2, random_state=seed)
    else:
        params = {
            "algorithm": "gradient_boosting",
            "n_estimators": 100,
            "max_depth": 3,
            "learning_rate": 0.1,
        }
        model = GradientBoostingClassifier(
            n_estimators=100, max_depth=3, learning_rate=0.1, random_state=seed
        )
    model.fit(x, y)
    xh, yh = matrix(holdout), holdout[LABEL].to_numpy()
    error = float(np.mean(model.predict(xh) != yh))
    auc = float(roc_auc_score(yh, model.predict_proba(xh)[:, 1]))
    background = x[np.random.default_rng(seed).choice(len(x), size=50, replace=False)]
    return TrainedModel(
        model=model,
        params=params,
        data_blake3=blake3.blake3(csv).hexdigest(),
        train_rows=len(frame),
        holdout_error=error,
        holdout_auc=auc,
        background=background,
    )
