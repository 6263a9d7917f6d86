"""TreeSHAP throughput: SynapseNet's TreeSHAP against shap.TreeExplainer, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/bench_tree_shap.py

For an XGBoost model, a LightGBM model and a scikit-learn random forest (trained once on the
same synthetic data), both contenders explain the same rows with path-dependent TreeSHAP:

* shap: ``shap.TreeExplainer(model)`` built once, then ``shap_values(X)`` with its defaults
  (its additivity check on) and ``shap_interaction_values(X)``.
* SynapseNet: ``TreeSHAP(model)`` built once, then ``explain(X)`` / ``interactions(X)``,
  which also check local accuracy against the model's own raw output on
  ``accuracy_check="sample"`` rows (the default: one row in 8, at most 64) or ``"all"``, and
  (for XGBoost and LightGBM) compare the native values with shap's independent C-extension
  TreeSHAP on ``native_check="sample"`` (the default: one row in 64, at most 8), ``"all"``
  rows, or ``"off"``.

Rows per second (wall) and both ratios are medians over repeats after one warm-up call
(which builds the lazy parts: shap's parse of the trees for the agreement check); the
contenders run in turn within each repeat, so load from other work on a shared machine falls
on all of them alike. "setup ms" is the constructor alone (ours defers shap's parse of the
trees to the first checked call, and builds the TreeSHAP tables on the first call: "tables ms"
is that one-time cost, "tables MiB" their memory; it is paid once per explainer, outside the
timed repeats). The values of every SynapseNet variant are compared with
shap's (max absolute difference). Ratios > 1 mean SynapseNet is faster; the CPU ratio
(process CPU time, all threads) is the one that holds still on a loaded machine. Both sides
SynapseNet's default (``implementation="auto"``) computes the values with its tabulated
TreeSHAP (one table look-up per leaf and path feature); ``"library"`` is the previous default,
the same C++ code as shap (XGBoost's and LightGBM's own TreeSHAP, or shap's C extension for
scikit-learn), where the ratio measures only the overhead of the checks around it.
Interaction values likewise: the default tabulates them (pair tables per leaf, built on the
first ``interactions`` call; "tables ms" includes the value tables it also builds, "tables
MiB" is pairs + values), ``"library"`` is XGBoost's ``pred_interactions`` or shap's C
extension. ``--only values`` / ``--only interactions`` runs one of the two races.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import shap
import xgboost as xgb
from _common import print_machine, print_table
from sklearn.ensemble import RandomForestRegressor

from synapsenet.services.explainability.tree import TreeSHAP


@dataclass(frozen=True)
class Workload:
    name: str
    model: Any
    rows: int
    interaction_rows: int


def _data(n_rows: int, n_features: int, seed: int) -> tuple[np.ndarray[Any, Any], Any]:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_rows, n_features))
    y = (
        2.0 * data[:, 0]
        + data[:, 1] * data[:, 2]
        - data[:, 3] ** 2
        + np.sin(3 * data[:, 4])
        + 0.5 * rng.normal(size=n_rows)
    )
    return data, y


def _workloads(args: argparse.Namespace) -> tuple[list[Workload], np.ndarray[Any, Any]]:
    train, y = _data(args.train_rows, args.features, seed=0)
    binary = (y > np.median(y)).astype(int)
    models = [
        Workload(
            f"XGBoost classifier ({args.trees} trees, depth 6)",
            xgb.XGBClassifier(
                n_estimators=args.trees, max_depth=6, random_state=0, n_jobs=args.threads
            ).fit(train, binary),
            args.rows,
            args.interaction_rows,
        ),
        Workload(
            f"LightGBM regressor ({args.trees} trees, 31 leaves)",
            lgb.LGBMRegressor(
                n_estimators=args.trees, num_leaves=31, verbose=-1, n_jobs=args.threads
            ).fit(train, y),
            args.rows,
            args.interaction_rows,
        ),
        Workload(
            f"sklearn random forest ({args.forest_trees} trees, depth 8)",
            RandomForestRegressor(
                n_estimators=args.forest_trees, max_depth=8, random_state=0, n_jobs=1
            ).fit(train, y),
            args.forest_rows,
            args.forest_interaction_rows,
        ),
    ]
    explain, _ = _data(max(args.rows, args.forest_rows), args.features, seed=1)
    return models, explain


def _outputs(values: Any, extra_axes: int) -> np.ndarray[Any, Any]:
    array = np.asarray(values, dtype=np.float64)
    return array[..., None] if array.ndim == 1 + extra_axes else array


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def _race(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    """Median wall and CPU seconds per contender, running them in turn within each repeat.

    Interleaving spreads the load of a shared machine over every contender alike, instead
    of letting one contender's block of repeats land on a busy minute. CPU time (of the
    whole process, every thread) is what the work costs; on a loaded machine wall time adds
    waiting for a core, which swings far more than the differences measured here.
    """
    for run in contenders.values():
        run()  # warm-up: lazy parses, thread pools, caches
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    cpus: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            cpus[name].append(time.process_time() - cpu)
            walls[name].append(time.perf_counter() - wall)
    return {
        name: Timing(statistics.median(walls[name]), statistics.median(cpus[name]))
        for name in contenders
    }


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}"


SHAP_VALUES = "shap.TreeExplainer.shap_values"
VARIANTS = (
    ("sample", "sample", "auto"),
    ("off", "sample", "auto"),
    ("all", "all", "auto"),
    ("sample", "sample", "library"),
)
"""(native_check, accuracy_check, implementation): the first is the default (tabulated
TreeSHAP), the last the library code it replaces (the previous default)."""
SHAP_INTERACTIONS = "shap.TreeExplainer.shap_interaction_values"


def bench_values(
    workload: Workload, instances: np.ndarray[Any, Any], repeats: int
) -> list[list[str]]:
    data = instances[: workload.rows]
    started = time.perf_counter()
    explainer = shap.TreeExplainer(workload.model)
    setup = {SHAP_VALUES: time.perf_counter() - started}
    reference = _outputs(explainer.shap_values(data), 1)
    contenders: dict[str, Callable[[], object]] = {SHAP_VALUES: lambda: explainer.shap_values(data)}
    results = {}
    for check, accuracy, implementation in VARIANTS:
        name = f"SynapseNet {implementation}, native {check}, accuracy {accuracy}"
        started = time.perf_counter()
        ours = TreeSHAP(
            workload.model,
            native_check=check,
            accuracy_check=accuracy,
            implementation=implementation,
        )
        setup[name] = time.perf_counter() - started
        results[name] = ours.explain(data)
        contenders[name] = lambda ours=ours: ours.explain(data)
    seconds = _race(contenders, repeats)
    theirs = seconds[SHAP_VALUES]
    setup_ms = f"{setup[SHAP_VALUES] * 1e3:.0f}"
    rows = [
        [SHAP_VALUES, setup_ms, "-", "-", _rate(len(data), theirs.wall), "1.00", "1.00", "-", "-"]
    ]
    for name, explanation in results.items():
        native = explanation.extras["native_check"]
        accuracy = explanation.extras["local_accuracy"]["rows_checked"]
        tables = explanation.extras.get("path_tables")
        rows.append(
            [
                name,
                f"{setup[name] * 1e3:.0f}",
                "-" if tables is None else f"{tables['build_seconds'] * 1e3:.0f}",
                "-" if tables is None else f"{tables['bytes'] / 2**20:.1f}",
                _rate(len(data), seconds[name].wall),
                f"{theirs.wall / seconds[name].wall:.2f}",
                f"{theirs.cpu / seconds[name].cpu:.2f}",
                f"{np.abs(explanation.values - reference).max():.1e}",
                f"{native.get('rows_checked', native['status'])} / {accuracy}",
            ]
        )
    return rows


INTERACTION_VARIANTS = (("sample", "auto"), ("off", "auto"), ("sample", "library"))
"""(native_check, implementation): the first is the default (tabulated interaction values),
the last the library code it replaces (XGBoost's pred_interactions or shap's C extension)."""


def bench_interactions(
    workload: Workload, instances: np.ndarray[Any, Any], repeats: int
) -> list[list[str]]:
    data = instances[: workload.interaction_rows]
    explainer = shap.TreeExplainer(workload.model)
    reference = _outputs(explainer.shap_interaction_values(data), 2)
    contenders: dict[str, Callable[[], object]] = {
        SHAP_INTERACTIONS: lambda: explainer.shap_interaction_values(data)
    }
    results = {}
    for check, implementation in INTERACTION_VARIANTS:
        name = f"SynapseNet {implementation}, native {check}"
        ours = TreeSHAP(workload.model, native_check=check, implementation=implementation)
        results[name] = ours.interactions(data)
        contenders[name] = lambda ours=ours: ours.interactions(data)
    seconds = _race(contenders, repeats)
    theirs = seconds[SHAP_INTERACTIONS]
    rows = [[SHAP_INTERACTIONS, "-", "-", _rate(len(data), theirs.wall), "1.00", "1.00", "-", "-"]]
    for name, explanation in results.items():
        difference = np.abs(explanation.extras["interaction_values"] - reference).max()
        tables = explanation.extras.get("interaction_tables", {})
        used = tables.get("status") == "used"
        build = tables.get("build_seconds", 0.0) + explanation.extras.get("path_tables", {}).get(
            "build_seconds", 0.0
        )
        native = explanation.extras["native_check"]
        rows.append(
            [
                name,
                f"{build * 1e3:.0f}" if used else "-",
                f"{tables['bytes'] / 2**20:.1f} + {tables['value_table_bytes'] / 2**20:.1f}"
                if used
                else "-",
                _rate(len(data), seconds[name].wall),
                f"{theirs.wall / seconds[name].wall:.2f}",
                f"{theirs.cpu / seconds[name].cpu:.2f}",
                f"{difference:.1e}",
                str(native.get("rows_checked", native["status"])),
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--trees", type=int, default=200, help="XGBoost and LightGBM trees")
    parser.add_argument("--forest-trees", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1_000, help="rows explained (boosting)")
    parser.add_argument("--forest-rows", type=int, default=200, help="rows explained (forest)")
    parser.add_argument("--interaction-rows", type=int, default=20)
    parser.add_argument("--forest-interaction-rows", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="XGBoost/LightGBM threads (both contenders call the same booster); one thread "
        "keeps the ratios stable on a shared machine",
    )
    parser.add_argument(
        "--only",
        choices=("values", "interactions"),
        default=None,
        help="run only the SHAP-value or only the interaction-value races",
    )
    args = parser.parse_args()

    warnings.simplefilter("ignore")  # shap's notes about output formats, matplotlib's
    print_machine(["shap", "xgboost-cpu", "lightgbm", "scikit-learn", "numpy"])
    print(f"XGBoost/LightGBM threads: {args.threads}; repeats: {args.repeats}")
    workloads, instances = _workloads(args)
    for workload in workloads:
        if args.only == "interactions":
            print(f"\n== {workload.name}")
        else:
            print(
                f"\n== {workload.name}: SHAP values, {workload.rows} rows x "
                f"{args.features} features"
            )
            print_table(
                [
                    "contender",
                    "setup ms",
                    "tables ms",
                    "tables MiB",
                    "rows/s",
                    "x shap (wall)",
                    "x shap (CPU)",
                    "max |diff|",
                    "rows checked native / accuracy",
                ],
                bench_values(workload, instances, args.repeats),
            )
        if args.only == "values":
            continue
        print(f"-- interaction values, {workload.interaction_rows} rows")
        print_table(
            [
                "contender",
                "tables ms",
                "tables MiB (pairs + values)",
                "rows/s",
                "x shap (wall)",
                "x shap (CPU)",
                "max |diff|",
                "rows checked native",
            ],
            bench_interactions(workload, instances, args.repeats),
        )


if __name__ == "__main__":
    main()
