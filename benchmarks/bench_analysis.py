"""Analysis speed: 1,000 experiments x 3 arms x 5 metrics, SynapseNet against gbstats.

Run from the repository root (gbstats is installed without its numpy<2/pandas<2 pins,
as ``make bench`` does):

    .venv/bin/pip install --no-deps gbstats==0.8.0
    .venv/bin/python benchmarks/bench_analysis.py

Every experiment has a control and two treatments and five metrics: two binary
(conversion, error rate), three continuous (revenue and sessions with a pre-period covariate,
latency without). The stored sufficient statistics are drawn exactly as those of normal or
Bernoulli samples of 1,500-30,000 units per arm, so no raw rows are generated. Every
contender starts from the same plain numbers (what a results query reads from the database)
and builds its own statistic objects inside the timed region.

Paired rows (ours, then the gbstats equivalent):

- fixed horizon: ``StatisticalAnalyzer.compare`` (z-test or Welch, absolute and relative
  lifts with CIs, CUPED where covariates exist) against ``TwoSidedTTest`` (absolute
  difference; ``RegressionAdjustedStatistic`` where covariates exist);
- sequential: ``compare(sequential=True)`` (adds always-valid p-values and confidence
  sequences for both lifts) against ``SequentialTwoSidedTTest``;
- report: ``compute_results`` (every comparison, Holm across metrics and treatments, the
  sample-ratio check) against the gbstats tests plus its ``check_srm`` (gbstats 0.8 has
  no multiple-testing correction).

Before timing, both sides' p-values are compared on every comparison.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

import numpy as np
from _common import median_seconds, print_machine, print_table
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import (
    ProportionStatistic,
    RegressionAdjustedStatistic,
    SampleMeanStatistic,
)
from gbstats.utils import check_srm

from synapsenet.services.abtesting.models import (
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    MetricDefinition,
    MetricDirection,
    MetricKind,
    Variant,
)
from synapsenet.services.abtesting.reporting import compute_results
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats
from synapsenet.services.abtesting.store import MetricAggregate

TARGET_SECONDS = 1.0
WEIGHTS = (Decimal("0.5"), Decimal("0.25"), Decimal("0.25"))
ARMS = ("control", "treatment-a", "treatment-b")

Row = tuple[int, float, float] | tuple[int, float, float, float, float, float]
"""(n, sum, sum_squares), or (n, sum_y, sum_y2, sum_x, sum_x2, sum_xy) with a covariate."""


@dataclass(frozen=True, slots=True)
class MetricShape:
    """One of the five metrics every experiment measures."""

    name: str
    kind: MetricKind
    direction: MetricDirection
    covariate: bool = False

    @property
    def binary(self) -> bool:
        return self.kind is MetricKind.BINARY


METRICS = (
    MetricShape("conversion", MetricKind.BINARY, MetricDirection.HIGHER_IS_BETTER),
    MetricShape("error", MetricKind.BINARY, MetricDirection.LOWER_IS_BETTER),
    MetricShape("revenue", MetricKind.CONTINUOUS, MetricDirection.HIGHER_IS_BETTER, True),
    MetricShape("latency_ms", MetricKind.CONTINUOUS, MetricDirection.LOWER_IS_BETTER),
    MetricShape("sessions", MetricKind.CONTINUOUS, MetricDirection.HIGHER_IS_BETTER, True),
)


# ---------------------------------------------------------------------- data


def _lifts(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Relative treatment effects: none for 70% of (experiment, metric), else up to 10%."""
    lifts = rng.uniform(-0.1, 0.1, shape)
    lifts[rng.random(shape) < 0.7] = 0.0
    return np.concatenate([np.zeros((shape[0], 1)), lifts], axis=1)


def _binary(rng: np.random.Generator, n: np.ndarray, base: np.ndarray) -> list[list[Row]]:
    p = np.clip(base[:, None] * (1 + _lifts(rng, (len(n), 2))), 0.0, 1.0)
    successes = rng.binomial(n, p).astype(float)
    return [
        [(int(k), float(s), float(s)) for k, s in zip(n_e, s_e, strict=True)]
        for n_e, s_e in zip(n, successes, strict=True)
    ]


def _continuous(rng: np.random.Generator, n: np.ndarray) -> list[list[Row]]:
    mu = rng.uniform(50, 150, (len(n), 1)) * (1 + _lifts(rng, (len(n), 2)))
    sigma = mu[:, :1] * rng.uniform(0.5, 1.5, (len(n), 1))
    mean = mu + sigma * rng.standard_normal(n.shape) / np.sqrt(n)
    centred = sigma**2 * rng.chisquare(n - 1)
    total = n * mean
    squares = centred + total * mean
    return [
        [(int(k), float(s), float(q)) for k, s, q in zip(*arm, strict=True)]
        for arm in zip(n, total, squares, strict=True)
    ]


def _with_covariate(rng: np.random.Generator, n: np.ndarray) -> list[list[Row]]:
    """Moments of bivariate normal (x: pre-period, y: outcome) samples via Bartlett's method."""
    shape = n.shape
    mu_x = rng.uniform(50, 150, (shape[0], 1)) * np.ones(shape)
    mu_y = mu_x[:, :1] * (1 + _lifts(rng, (shape[0], 2)))
    sx = mu_x * rng.uniform(0.5, 1.0, (shape[0], 1))
    sy = sx * rng.uniform(0.8, 1.2, (shape[0], 1))
    rho = rng.uniform(0.3, 0.8, (shape[0], 1)) * np.ones(shape)
    # Sample means: mu + L z / sqrt(n) with L the Cholesky factor of the covariance.
    z1, z2 = rng.standard_normal(shape), rng.standard_normal(shape)
    mean_x = mu_x + sx * z1 / np.sqrt(n)
    mean_y = mu_y + sy * (rho * z1 + np.sqrt(1 - rho**2) * z2) / np.sqrt(n)
    # Centred scatter matrix ~ Wishart(n - 1, Sigma) = L A A' L' (Bartlett decomposition).
    a11 = np.sqrt(rng.chisquare(n - 1))
    a22 = np.sqrt(rng.chisquare(n - 2))
    a21 = rng.standard_normal(shape)
    l11, l21, l22 = sx, sy * rho, sy * np.sqrt(1 - rho**2)
    b11, b21, b22 = l11 * a11, l21 * a11 + l22 * a21, l22 * a22
    sxx, sxy, syy = b11**2, b11 * b21, b21**2 + b22**2
    sum_x, sum_y = n * mean_x, n * mean_y
    sum_y2, sum_x2, sum_xy = syy + sum_y * mean_y, sxx + sum_x * mean_x, sxy + n * mean_x * mean_y
    return [
        [
            (
                int(n[e, a]),
                float(sum_y[e, a]),
                float(sum_y2[e, a]),
                float(sum_x[e, a]),
                float(sum_x2[e, a]),
                float(sum_xy[e, a]),
            )
            for a in range(shape[1])
        ]
        for e in range(shape[0])
    ]


def make_data(experiments: int, seed: int) -> list[list[list[Row]]]:
    """``data[experiment][metric][arm]``: the stored statistics of every arm."""
    rng = np.random.default_rng(seed)
    totals = rng.integers(3_000, 60_000, experiments)
    n = np.array([rng.multinomial(t, [float(w) for w in WEIGHTS]) for t in totals])
    per_metric = [
        _binary(rng, n, rng.uniform(0.02, 0.3, experiments)),
        _binary(rng, n, rng.uniform(0.005, 0.05, experiments)),
        _with_covariate(rng, n),
        _continuous(rng, n),
        _with_covariate(rng, n),
    ]
    return [[per_metric[m][e] for m in range(len(METRICS))] for e in range(experiments)]


def make_experiment(index: int, now: datetime) -> Experiment:
    spec = ExperimentSpec(
        name=f"bench-{index}",
        model_name="bench",
        variants=tuple(
            Variant(name, f"v{i}", w, is_control=i == 0)
            for i, (name, w) in enumerate(zip(ARMS, WEIGHTS, strict=True))
        ),
        metrics=tuple(
            MetricDefinition(m.name, m.kind, m.direction, guardrail=m.name == "error")
            for m in METRICS
        ),
    )
    return Experiment(
        id=f"{index:016x}",
        spec=spec,
        status=ExperimentStatus.RUNNING,
        salt=f"{index:016x}",
        allocation=WEIGHTS,
        treatment_share=Decimal("0.5"),
        ramp_step=0,
        ramp_held=False,
        created_at=now,
        started_at=now,
        step_started_at=now,
        ended_at=None,
        winner=None,
        version=2,
    )


# ---------------------------------------------------------------------- contenders


def ours_stats(row: Row) -> SampleStats | CovariateStats:
    return SampleStats(*row) if len(row) == 3 else CovariateStats(*row)


def ours_compare(
    data: list[list[list[Row]]], analyzer: StatisticalAnalyzer, *, sequential: bool
) -> list[float | None]:
    """Every (metric, treatment) of every experiment through ``StatisticalAnalyzer.compare``."""
    p_values = []
    for experiment in data:
        for metric, rows in zip(METRICS, experiment, strict=True):
            control, *treatments = (ours_stats(r) for r in rows)
            for treatment in treatments:
                result = analyzer.compare(
                    control,
                    treatment,
                    kind=metric.kind,
                    direction=metric.direction,
                    sequential=sequential,
                )
                p_values.append(result.p_value)
    return p_values


def ours_tests_only(
    data: list[list[list[Row]]], analyzer: StatisticalAnalyzer, *, sequential: bool
) -> None:
    """The work of one gbstats test per comparison: CUPED if covariates, a p-value, one CI.

    Fixed horizon: the z-test or Welch test plus the absolute lift's CI; sequential: the
    always-valid test with its confidence sequence.
    """
    for experiment in data:
        for metric, rows in zip(METRICS, experiment, strict=True):
            control, *treatments = (ours_stats(r) for r in rows)
            for treatment in treatments:
                kind = metric.kind
                if isinstance(control, CovariateStats) and isinstance(treatment, CovariateStats):
                    adjusted = analyzer.cuped(control, treatment)
                    c, t, kind = adjusted.control, adjusted.treatment, MetricKind.CONTINUOUS
                else:
                    assert isinstance(control, SampleStats)
                    assert isinstance(treatment, SampleStats)
                    c, t = control, treatment
                if sequential:
                    analyzer.sequential_test(c, t, kind=kind)
                    continue
                if kind is MetricKind.BINARY:
                    analyzer.z_test(c, t)
                else:
                    analyzer.welch_t_test(c, t)
                analyzer.absolute_lift(c, t, kind=kind)


def ours_report(
    data: list[list[list[Row]]],
    experiments: list[Experiment],
    analyzer: StatisticalAnalyzer,
    now: datetime,
    *,
    sequential: bool,
) -> int:
    """Every experiment's results page through ``compute_results``; returns the SRM count."""
    mismatches = 0
    for experiment, stored in zip(experiments, data, strict=True):
        aggregates = []
        for metric, rows in zip(METRICS, stored, strict=True):
            for arm, row in zip(ARMS, rows, strict=True):
                covariate = CovariateStats(*row) if len(row) == 6 else None
                outcome = SampleStats(*row[:3]) if covariate is None else covariate.outcome
                aggregates.append(MetricAggregate(arm, metric.name, outcome, covariate, now))
        exposures = {arm: stored[0][a][0] for a, arm in enumerate(ARMS)}
        results = compute_results(
            experiment, aggregates, exposures, analyzer, now=now, sequential=sequential
        )
        mismatches += results.srm is not None and results.srm.mismatch
    return mismatches


GbStatistic: TypeAlias = ProportionStatistic | SampleMeanStatistic | RegressionAdjustedStatistic


def gb_stats(row: Row, binary: bool) -> GbStatistic:
    statistic: GbStatistic  # gbstats ships no type hints: name what each branch builds
    if len(row) == 6:
        n, sum_y, sum_y2, sum_x, sum_x2, sum_xy = row
        statistic = RegressionAdjustedStatistic(
            n=n,
            post_statistic=SampleMeanStatistic(n=n, sum=sum_y, sum_squares=sum_y2),
            pre_statistic=SampleMeanStatistic(n=n, sum=sum_x, sum_squares=sum_x2),
            post_pre_sum_of_products=sum_xy,
            theta=0,
        )
    elif binary:
        statistic = ProportionStatistic(n=row[0], sum=row[1])
    else:
        statistic = SampleMeanStatistic(n=row[0], sum=row[1], sum_squares=row[2])
    return statistic


GbTest = type[TwoSidedTTest] | type[SequentialTwoSidedTTest]


def gb_compare(data: list[list[list[Row]]], test: GbTest, *, srm: bool = False) -> list[float]:
    """Every (metric, treatment) through a gbstats frequentist test on absolute differences."""
    config = (
        SequentialConfig(difference_type="absolute")
        if test is SequentialTwoSidedTTest
        else FrequentistConfig(difference_type="absolute")
    )
    weights = [float(w) for w in WEIGHTS]
    p_values = []
    for experiment in data:
        for metric, rows in zip(METRICS, experiment, strict=True):
            # Regression-adjusted statistics are mutated by the test (theta): one per test.
            shared = gb_stats(rows[0], metric.binary) if not metric.covariate else None
            for row in rows[1:]:
                control = shared if shared is not None else gb_stats(rows[0], metric.binary)
                result = test(control, gb_stats(row, metric.binary), config).compute_result()
                p_values.append(result.p_value)
        if srm:
            check_srm([rows[0] for rows in experiment[0]], weights)
    return p_values


# ---------------------------------------------------------------------- agreement


def print_agreement(
    ours: dict[str, list[float | None]], theirs: dict[str, list[float]], families: list[str]
) -> None:
    rows = []
    for mode in ("fixed", "sequential"):
        for family in dict.fromkeys(families):
            pairs = [
                (o, t)
                for o, t, f in zip(ours[mode], theirs[mode], families, strict=True)
                if f == family and o is not None
            ]
            diffs = np.abs(np.array([o - t for o, t in pairs]))
            rows.append([mode, family, len(pairs), f"{diffs.max():.1e}", f"{np.median(diffs):.1e}"])
    print("p-value agreement, ours vs gbstats, on every comparison:")
    print_table(["test", "metrics", "comparisons", "max |diff|", "median |diff|"], rows)
    print(
        "  binary fixed-horizon: ours is the pooled two-proportion z-test, gbstats a t-test\n"
        "  on unpooled Bernoulli variances; CUPED: ours fits theta within arms, gbstats on\n"
        "  both arms pooled. Welch and both mSPRTs are the same formulas.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5, help="runs per SynapseNet row")
    parser.add_argument("--gb-repeats", type=int, default=3, help="runs per gbstats row")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    now = datetime.now(UTC)
    data = make_data(args.experiments, args.seed)
    experiments = [make_experiment(i, now) for i in range(args.experiments)]
    analyzer = StatisticalAnalyzer(alpha=0.05)
    comparisons = args.experiments * len(METRICS) * (len(ARMS) - 1)
    families = [
        "continuous + covariate (CUPED)" if m.covariate else m.kind.value
        for _ in range(args.experiments)
        for m in METRICS
        for _ in ARMS[1:]
    ]

    print_machine(["gbstats", "numpy", "scipy", "pydantic"])
    print(
        f"{args.experiments:,} experiments x {len(ARMS)} arms x {len(METRICS)} metrics = "
        f"{comparisons:,} comparisons; median of {args.repeats} runs "
        f"({args.gb_repeats} for gbstats)\n"
    )
    print_agreement(
        {
            "fixed": ours_compare(data, analyzer, sequential=False),
            "sequential": ours_compare(data, analyzer, sequential=True),
        },
        {
            "fixed": gb_compare(data, TwoSidedTTest),
            "sequential": gb_compare(data, SequentialTwoSidedTTest),
        },
        families,
    )

    pairs: list[tuple[str, Callable[[], object], str, Callable[[], object]]] = [
        (
            "test + CI only, fixed horizon",
            lambda: ours_tests_only(data, analyzer, sequential=False),
            "TwoSidedTTest",
            lambda: gb_compare(data, TwoSidedTTest),
        ),
        (
            "sequential_test() only",
            lambda: ours_tests_only(data, analyzer, sequential=True),
            "SequentialTwoSidedTTest",
            lambda: gb_compare(data, SequentialTwoSidedTTest),
        ),
        (
            "compare(), fixed horizon",
            lambda: ours_compare(data, analyzer, sequential=False),
            "TwoSidedTTest",
            lambda: gb_compare(data, TwoSidedTTest),
        ),
        (
            "compare(sequential=True)",
            lambda: ours_compare(data, analyzer, sequential=True),
            "SequentialTwoSidedTTest",
            lambda: gb_compare(data, SequentialTwoSidedTTest),
        ),
        (
            "compute_results, fixed + Holm + SRM",
            lambda: ours_report(data, experiments, analyzer, now, sequential=False),
            "TwoSidedTTest + check_srm",
            lambda: gb_compare(data, TwoSidedTTest, srm=True),
        ),
        (
            "compute_results, sequential + Holm + SRM",
            lambda: ours_report(data, experiments, analyzer, now, sequential=True),
            "SequentialTwoSidedTTest + check_srm",
            lambda: gb_compare(data, SequentialTwoSidedTTest, srm=True),
        ),
    ]
    rows = []
    gb_seconds: dict[str, float] = {}  # the same gbstats run pairs with two of ours
    for ours_name, ours_run, gb_name, gb_run in pairs:
        ours_s = median_seconds(ours_run, args.repeats)
        if gb_name not in gb_seconds:
            gb_seconds[gb_name] = median_seconds(gb_run, args.gb_repeats)
        gb_s = gb_seconds[gb_name]
        verdict = "met" if ours_s < TARGET_SECONDS else "NOT met"
        rows.append(
            [
                f"SynapseNet {ours_name}",
                f"{ours_s:.3f}",
                f"{comparisons / ours_s:,.0f}",
                f"{gb_s / ours_s:.2f}x",
                f"< {TARGET_SECONDS:g} s: {verdict}",
            ]
        )
        rows.append([f"  gbstats {gb_name}", f"{gb_s:.3f}", f"{comparisons / gb_s:,.0f}", "1", ""])
    print_table(["contender", "seconds", "comparisons/s", "x gbstats", "target"], rows)


if __name__ == "__main__":
    main()
