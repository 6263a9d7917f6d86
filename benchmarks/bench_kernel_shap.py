"""KernelSHAP accuracy per second: SynapseNet against shap.KernelExplainer.

Run from the repository root:

    .venv/bin/python benchmarks/bench_kernel_shap.py

A LightGBM regressor (200 trees of 31 leaves) on 30 correlated synthetic features with
pairwise and three-way interactions; 100 background rows; 10 rows explained. The exact
interventional Shapley values come from ``shap.TreeExplainer(model, data=background,
feature_perturbation="interventional")``. Both contenders call the same model function
(LightGBM's ``predict`` on one thread, so the two shared cores do not make timings depend on
how many threads happen to be free), one call per contender and configuration, timed with
the clock on the wall.

Error is the relative RMSE over all (row, feature) values:
``sqrt(mean((phi - phi_exact)^2)) / sqrt(mean(phi_exact^2))``.

"At equal error" compares our time per row with the time shap needs for the same error:
shap's time (and model rows) at a given error is read off a power law fitted to its own
runs with ``l1_reg=False`` (shap's default ``l1_reg="num_features(10)"`` keeps 10 of 30
features and cannot reach small errors at any budget); values outside the measured errors
are extrapolations, and marked so.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np
import shap
from _common import print_machine, print_table

from synapsenet.services.explainability.kernel_shap import KernelSHAP

GOAL_ERROR = 0.01
GOAL_SPEEDUP = 10.0


@dataclass(frozen=True)
class Run:
    contender: str
    setting: str
    error: float
    seconds_per_row: float
    model_rows_per_row: float


def make_problem(seed: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Model function, background, rows to explain and their exact values."""
    rng = np.random.default_rng(seed)
    n_features, n = 30, 5000
    covariance = 0.3 * np.ones((n_features, n_features)) + 0.7 * np.eye(n_features)
    data = rng.multivariate_normal(np.zeros(n_features), covariance, size=n)
    target = (
        2 * data[:, 0]
        + np.sin(2 * data[:, 1])
        + data[:, 2] * data[:, 3]
        + (data[:, 4] > 0) * data[:, 5]
        + 0.5 * data[:, 6:12].sum(axis=1)
        + 0.3 * (data[:, 12:20] ** 2).sum(axis=1)
        + data[:, 20] * data[:, 21] * data[:, 22]
        + 0.3 * rng.normal(size=n)
    )
    model = lightgbm.LGBMRegressor(
        n_estimators=200, num_leaves=31, learning_rate=0.05, verbose=-1, random_state=seed
    ).fit(data, target)
    booster = model.booster_
    background, rows = data[:100], data[1000:1010]
    exact = shap.TreeExplainer(
        model, data=background, feature_perturbation="interventional"
    ).shap_values(rows)

    def f(x: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

    return f, background, rows, np.asarray(exact)


def relative_rmse(values: np.ndarray, exact: np.ndarray) -> float:
    return float(np.sqrt(np.mean((values - exact) ** 2)) / np.sqrt(np.mean(exact**2)))


class Counter:
    """Wraps the model to count the rows each contender evaluates."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.rows = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.rows += len(x)
        return self.f(x)


def run_shap(
    f: Any, background: np.ndarray, rows: np.ndarray, exact: np.ndarray, nsamples: int, l1: Any
) -> Run:
    counter = Counter(f)
    explainer = shap.KernelExplainer(counter, background)
    counter.rows = 0
    np.random.seed(0)  # shap samples coalitions from numpy's global generator
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs: dict[str, Any] = {"nsamples": nsamples, "silent": True}
        if l1 is not None:
            kwargs["l1_reg"] = l1
        values = explainer.shap_values(rows, **kwargs)
    elapsed = time.perf_counter() - started
    label = f"nsamples={nsamples}, l1_reg={'default' if l1 is None else repr(l1)}"
    return Run(
        "shap KernelExplainer",
        label,
        relative_rmse(np.asarray(values), exact),
        elapsed / len(rows),
        counter.rows / len(rows),
    )


def run_ours(
    f: Any, background: np.ndarray, rows: np.ndarray, exact: np.ndarray, **params: Any
) -> Run:
    counter = Counter(f)
    explainer = KernelSHAP(**params)
    started = time.perf_counter()
    explanation = explainer.explain(counter, rows, background)
    elapsed = time.perf_counter() - started
    label = ", ".join(f"{k}={v}" for k, v in params.items())
    if "tol" in params:
        used = np.mean(explanation.extras["n_coalitions"])
        label += f" (used {used:.0f})"
    return Run(
        "SynapseNet KernelSHAP",
        label,
        relative_rmse(explanation.values[:, :, 0], exact),
        elapsed / len(rows),
        counter.rows / len(rows),
    )


class PowerLaw:
    """A cost of shap's (seconds or model rows per row) as a power of its error.

    Fitted by least squares on a log-log scale over all of shap's ``l1_reg=False`` runs:
    a single run's error is noisy (shap samples its coalitions at random), so the fit is
    read everywhere instead of interpolating between neighbouring runs.
    """

    def __init__(self, runs: list[Run], cost: str) -> None:
        errors = np.log([r.error for r in runs])
        costs = np.log([getattr(r, cost) for r in runs])
        self.low, self.high = errors.min(), errors.max()
        self.slope, self.intercept = np.polyfit(errors, costs, 1)

    def cost_at(self, error: float) -> tuple[float, bool]:
        """Cost at ``error`` and whether that is outside the measured errors."""
        x = np.log(error)
        return float(np.exp(self.intercept + self.slope * x)), not self.low <= x <= self.high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print_machine(["numpy", "shap", "lightgbm", "scikit-learn"])
    f, background, rows, exact = make_problem(args.seed)
    print(
        f"30 features, {len(background)} background rows, {len(rows)} rows explained, "
        f"RMS of the exact values {np.sqrt(np.mean(exact**2)):.4f}"
    )

    shap_default = run_shap(f, background, rows, exact, 2 * 30 + 2048, None)
    shap_runs = [run_shap(f, background, rows, exact, n, False) for n in (1000, 2108, 4000, 6000)]
    ours = [run_ours(f, background, rows, exact, n_samples=n) for n in (25, 50, 100, 200, 400)]
    ours.append(run_ours(f, background, rows, exact, n_samples="auto"))
    ours.append(run_ours(f, background, rows, exact, n_samples=400, sampling="shared"))
    ours.append(run_ours(f, background, rows, exact, n_samples=2108, sampling="shared"))
    ours.append(run_ours(f, background, rows, exact, n_samples=2108, tol=0.003))

    seconds = PowerLaw(shap_runs, "seconds_per_row")
    model_rows = PowerLaw(shap_runs, "model_rows_per_row")
    print(
        f"shap (l1_reg=False): seconds per row ~ error^{seconds.slope:.2f}, "
        f"model rows per row ~ error^{model_rows.slope:.2f}"
    )
    table = []
    for run in [shap_default, *shap_runs, *ours]:
        mine = run in ours
        at_equal, extrapolated = seconds.cost_at(run.error)
        rows_at_equal, _ = model_rows.cost_at(run.error)
        table.append(
            [
                run.contender,
                run.setting,
                f"{run.error:.4f}",
                f"{run.seconds_per_row:.3f}",
                f"{run.model_rows_per_row:,.0f}",
                f"{at_equal:.2f}{'*' if extrapolated else ''}" if mine else "-",
                f"{at_equal / run.seconds_per_row:.1f}" if mine else "-",
                f"{rows_at_equal / run.model_rows_per_row:.1f}" if mine else "-",
            ]
        )
    print()
    print_table(
        [
            "contender",
            "setting",
            "rel. RMSE",
            "s/row",
            "model rows/row",
            "shap s/row at equal error",
            "x shap (time)",
            "x shap (model rows)",
        ],
        table,
    )
    print("* extrapolated along shap's fitted power law (outside its measured errors)")

    print()
    shap_at_goal, extrapolated = seconds.cost_at(GOAL_ERROR)
    reaching = [r for r in ours if r.error <= GOAL_ERROR]
    print(
        f"shap reaches rel. RMSE {GOAL_ERROR} at {shap_at_goal:.2f} s/row"
        f"{' (extrapolated)' if extrapolated else ''}; a tenth of that is "
        f"{shap_at_goal / GOAL_SPEEDUP:.3f} s/row."
    )
    if reaching:
        fastest = min(reaching, key=lambda r: r.seconds_per_row)
        met = fastest.seconds_per_row <= shap_at_goal / GOAL_SPEEDUP
        print(
            f"fastest SynapseNet run at rel. RMSE <= {GOAL_ERROR}: {fastest.setting}, "
            f"{fastest.error:.4f} in {fastest.seconds_per_row:.3f} s/row = "
            f"{shap_at_goal / fastest.seconds_per_row:.1f}x faster: goal "
            f"{'met' if met else 'NOT met'}"
        )
    else:
        print(f"no SynapseNet run reached rel. RMSE {GOAL_ERROR}: goal NOT met")
    budget = shap_default.seconds_per_row / GOAL_SPEEDUP
    within = [r for r in ours if r.seconds_per_row <= budget]
    if within:
        best = min(within, key=lambda r: r.error)
        print(
            f"best SynapseNet error within a tenth of shap's default time per row "
            f"({budget:.3f} s): {best.error:.4f} ({best.setting}); shap's default: "
            f"{shap_default.error:.4f}"
        )


if __name__ == "__main__":
    main()
