"""The demo's data: generated loan applications, a cleaning step and a feature step.

Nothing is downloaded. :func:`loan_applications` draws applicants from a fixed generative
model (the probability of default rises with the debt ratio and the credit utilisation and
falls with income, age and tenure), so the same seed always gives the same bytes, and the
"ground truth" of every simulated request is known.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pandas as pd

RAW_COLUMNS = ("applicant_id", "income", "debt_ratio", "age", "tenure_months", "utilization")
"""Columns of the raw applications (plus ``defaulted``, the label)."""

FEATURES = ("log_income", "debt_ratio", "age", "tenure_months", "utilization", "credit_load")
"""The model's input features, in order."""

LABEL = "defaulted"


def loan_applications(n: int, *, seed: int, start_id: int = 0) -> pd.DataFrame:
    """``n`` applicants with their default label; about 2% of incomes are missing."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=10.8, sigma=0.5, size=n).round(0)
    debt_ratio = rng.beta(2.0, 5.0, size=n).round(4)
    age = rng.integers(21, 76, size=n)
    tenure = rng.integers(0, 240, size=n)
    utilization = rng.beta(2.0, 3.0, size=n).round(4)
    logit = (
        -5.0
        + 9.0 * debt_ratio
        + 6.0 * utilization
        - 2.5 * (np.log(income) - 10.8)
        - 0.05 * (age - 45)
        - 0.01 * tenure
    )
    defaulted = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(
        {
            "applicant_id": np.arange(start_id, start_id + n),
            "income": income,
            "debt_ratio": debt_ratio,
            "age": age,
            "tenure_months": tenure,
            "utilization": utilization,
            LABEL: defaulted,
        }
    )
    missing = rng.random(n) < 0.02
    frame.loc[missing, "income"] = np.nan
    return frame


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """Drop applications with a missing value (the cleaning step of the pipeline)."""
    return raw.dropna().reset_index(drop=True)


def engineer(cleaned: pd.DataFrame, *, income_in_thousands: bool = False) -> pd.DataFrame:
    """The model's features and label from clean applications.

    Args:
        cleaned: Output of :func:`clean`.
        income_in_thousands: Reproduce a feature-step bug: ``log_income`` computed from the
            income in thousands. A model trained and evaluated on such data looks fine
            offline, but the serving path computes the feature from the income itself
            (training-serving skew), so online its inputs are off by ``log(1000)``.
    """
    income = cleaned["income"] / 1000.0 if income_in_thousands else cleaned["income"]
    features = pd.DataFrame(
        {
            "applicant_id": cleaned["applicant_id"],
            "log_income": np.log(income).round(6),
            "debt_ratio": cleaned["debt_ratio"],
            "age": cleaned["age"],
            "tenure_months": cleaned["tenure_months"],
            "utilization": cleaned["utilization"],
            "credit_load": (cleaned["debt_ratio"] * cleaned["utilization"]).round(6),
        }
    )
    features[LABEL] = cleaned[LABEL].to_numpy()
    return features


def to_csv(frame: pd.DataFrame) -> bytes:
    """The frame as CSV bytes (deterministic: fixed float format, no index)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue().encode()


def matrix(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The model's input matrix of a feature frame."""
    return frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float64)
