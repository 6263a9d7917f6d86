"""Peeking and rollbacks: false positives, power and detection time of the sequential tests.

Run from the repository root (gbstats installed as ``make bench`` does):

    .venv/bin/python benchmarks/bench_sequential.py

Part 1, peeking. A binary metric (control conversion 10%) is checked at 20 looks of 500
units per arm. For each true relative lift (0 is the A/A case), the table gives the share
of seeded replications in which each procedure ever declares a difference at alpha 0.05:

- naive: the fixed-horizon two-proportion z-test, read at every look;
- fixed horizon: the same test read once, at the last look (the power a planned test has);
- SynapseNet mSPRT: ``StatisticalAnalyzer.sequential_test`` at every look;
- gbstats: ``SequentialTwoSidedTTest`` (its default tuning, 5,000 units) at every look.

Our p-values are computed in one vectorised call to the library's own
``always_valid_p_value`` and checked against ``StatisticalAnalyzer`` on a sample of looks;
gbstats is called once per look (it has no vectorised form).

Part 2, rollback. A canary gets 10% of traffic; the error rate is a guardrail (lower is
better, at least 200 observations per arm). Batches of 1,000 observations arrive and every
batch is checked through ``evaluate_guardrail`` (pure, no database), with the rollback
manager's streak rule: 2 breaching checks in a row roll back, a healthy check resets the
streak (batches are taken to be at least the cooldown apart). The canary's error rate is
either the control's 5% (A/A) or 6% (a 20% relative degradation). The naive rule is the same
guardrail with the fixed-horizon one-sided test instead of the always-valid one.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from _common import print_machine, print_table
from gbstats.frequentist.tests import SequentialConfig, SequentialTwoSidedTTest
from gbstats.models.statistics import ProportionStatistic
from scipy import special

from synapsenet.services.abtesting.models import (
    MetricDefinition,
    MetricDirection,
    MetricKind,
    RollbackPolicy,
)
from synapsenet.services.abtesting.rollback import GuardrailStatus, evaluate_guardrail
from synapsenet.services.abtesting.statistics.analyzer import StatisticalAnalyzer
from synapsenet.services.abtesting.statistics.results import (
    Alternative,
    Direction,
    MarginTestResult,
)
from synapsenet.services.abtesting.statistics.sequential import (
    DEFAULT_TUNING_N,
    always_valid_p_value,
    tuning_rho_squared,
)
from synapsenet.services.abtesting.statistics.sufficient import SampleStats
from synapsenet.services.abtesting.store import MetricAggregate

ALPHA = 0.05


# ---------------------------------------------------------------------- part 1: peeking


def z_statistics(
    control: np.ndarray, treatment: np.ndarray, n: np.ndarray, *, pooled: bool
) -> np.ndarray:
    """z of ``p_t - p_c`` for cumulative success counts, pooled (z-test) or Bernoulli SEs."""
    p_c, p_t = control / n, treatment / n
    if pooled:
        p = (control + treatment) / (2 * n)
        variance = p * (1 - p) * 2 / n
    else:
        variance = (p_c * (1 - p_c) + p_t * (1 - p_t)) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p_t - p_c) / np.sqrt(variance)
    return np.where(variance > 0, z, 0.0)


def check_against_analyzer(
    control: np.ndarray, treatment: np.ndarray, n: np.ndarray, p_seq: np.ndarray
) -> float:
    """Max |vectorised - StatisticalAnalyzer| p-value over a sample of (replication, look)."""
    analyzer = StatisticalAnalyzer(alpha=ALPHA)
    worst = 0.0
    for r in range(0, control.shape[0], max(1, control.shape[0] // 50)):
        for look in (0, 9, 19):
            k = int(n[look])
            result = analyzer.sequential_test(
                SampleStats.from_successes(k, int(control[r, look])),
                SampleStats.from_successes(k, int(treatment[r, look])),
                kind=MetricKind.BINARY,
            )
            if result.p_value is not None:
                worst = max(worst, abs(result.p_value - float(p_seq[r, look])))
    return worst


@dataclass(frozen=True, slots=True)
class PeekingRow:
    lift: float
    naive: float
    fixed: float
    ours: float
    gbstats: float
    median_stop: float
    max_diff_gbstats: float
    max_diff_analyzer: float


def peeking_row(
    rng: np.random.Generator, lift: float, reps: int, looks: int, per_look: int, base: float
) -> PeekingRow:
    # Cumulative successes per arm at each look: shape (reps, looks).
    control = rng.binomial(per_look, base, (reps, looks)).cumsum(axis=1)
    treatment = rng.binomial(per_look, base * (1 + lift), (reps, looks)).cumsum(axis=1)
    n = per_look * np.arange(1, looks + 1)
    p_naive = 2 * special.ndtr(-np.abs(z_statistics(control, treatment, n, pooled=True)))
    k = tuning_rho_squared(ALPHA, DEFAULT_TUNING_N) * 2 * n
    p_seq = always_valid_p_value(
        z_statistics(control, treatment, n, pooled=False), k, Alternative.TWO_SIDED
    )
    first = np.where((p_seq < ALPHA).any(axis=1), (p_seq < ALPHA).argmax(axis=1) + 1, 0)

    config = SequentialConfig(difference_type="absolute")
    gb_rejected = np.zeros(reps, dtype=bool)
    max_diff = 0.0
    for r in range(reps):
        for look in range(looks):
            test = SequentialTwoSidedTTest(
                ProportionStatistic(n=int(n[look]), sum=float(control[r, look])),
                ProportionStatistic(n=int(n[look]), sum=float(treatment[r, look])),
                config,
            )
            p = test.compute_result().p_value
            max_diff = max(max_diff, abs(p - float(p_seq[r, look])))
            if p < ALPHA:
                gb_rejected[r] = True
    stops = first[first > 0]
    return PeekingRow(
        lift=lift,
        naive=float((p_naive < ALPHA).any(axis=1).mean()),
        fixed=float((p_naive[:, -1] < ALPHA).mean()),
        ours=float((first > 0).mean()),
        gbstats=float(gb_rejected.mean()),
        median_stop=float(np.median(stops)) if stops.size else float("nan"),
        max_diff_gbstats=max_diff,
        max_diff_analyzer=check_against_analyzer(control, treatment, n, p_seq),
    )


# ---------------------------------------------------------------------- part 2: rollback


class FixedHorizonAnalyzer(StatisticalAnalyzer):
    """The naive guardrail: the same margin test, fixed-horizon, read after every batch."""

    def degradation(
        self,
        control: SampleStats,
        treatment: SampleStats,
        *,
        margin: float,
        direction: Direction | str = Direction.HIGHER_IS_BETTER,
        relative: bool = False,
        sequential: bool = True,
        kind: MetricKind | str = MetricKind.CONTINUOUS,
    ) -> MarginTestResult:
        del sequential  # always fixed-horizon: that is the point of this analyzer
        return super().degradation(
            control,
            treatment,
            margin=margin,
            direction=direction,
            relative=relative,
            sequential=False,
            kind=kind,
        )


@dataclass(frozen=True, slots=True)
class RollbackRow:
    rule: str
    margin: float
    canary_rate: float
    rolled_back: float
    median_batches: float
    median_canary_obs: float
    seconds: float


def simulate_rollbacks(
    rng: np.random.Generator,
    analyzer: StatisticalAnalyzer,
    metric: MetricDefinition,
    *,
    canary_rate: float,
    control_rate: float,
    reps: int,
    batches: int,
    batch_size: int,
    canary_share: float,
    consecutive: int,
) -> tuple[list[int], list[int]]:
    """Batches until rollback (0: never) and canary observations then, per replication."""
    canary_n = rng.binomial(batch_size, canary_share, (reps, batches))
    control_n = batch_size - canary_n
    canary_errors = rng.binomial(canary_n, canary_rate).cumsum(axis=1)
    control_errors = rng.binomial(control_n, control_rate).cumsum(axis=1)
    canary_n, control_n = canary_n.cumsum(axis=1), control_n.cumsum(axis=1)
    now = datetime.now(UTC)
    policy = RollbackPolicy(alpha=analyzer.alpha, consecutive_breaches=consecutive)
    stopped_at, canary_seen = [], []
    for r in range(reps):
        streak, stop = 0, 0
        for b in range(batches):
            check = evaluate_guardrail(
                metric,
                "canary",
                MetricAggregate(
                    "control",
                    metric.name,
                    SampleStats.from_successes(int(control_n[r, b]), int(control_errors[r, b])),
                    None,
                    now,
                ),
                MetricAggregate(
                    "canary",
                    metric.name,
                    SampleStats.from_successes(int(canary_n[r, b]), int(canary_errors[r, b])),
                    None,
                    now,
                ),
                analyzer,
                now=now,
                policy=policy,
            )
            if check.status is GuardrailStatus.HEALTHY:
                streak = 0
            elif check.status is GuardrailStatus.BREACH:
                streak += 1
            if streak >= consecutive:
                stop = b + 1
                break
        stopped_at.append(stop)
        canary_seen.append(int(canary_n[r, stop - 1]) if stop else 0)
    return stopped_at, canary_seen


def rollback_rows(args: argparse.Namespace, rng: np.random.Generator) -> list[RollbackRow]:
    rows = []
    for margin in (0.0, 0.1):
        metric = MetricDefinition(
            "error",
            MetricKind.BINARY,
            MetricDirection.LOWER_IS_BETTER,
            guardrail=True,
            allowed_degradation=margin,
            min_samples=200,
        )
        for rule, analyzer in (
            ("SynapseNet (always-valid)", StatisticalAnalyzer(alpha=ALPHA)),
            ("naive (fixed-horizon)", FixedHorizonAnalyzer(alpha=ALPHA)),
        ):
            for canary_rate in (args.control_rate, args.control_rate * 1.2):
                start = time.perf_counter()
                stops, seen = simulate_rollbacks(
                    rng,
                    analyzer,
                    metric,
                    canary_rate=canary_rate,
                    control_rate=args.control_rate,
                    reps=args.rollback_reps,
                    batches=args.batches,
                    batch_size=args.batch_size,
                    canary_share=args.canary_share,
                    consecutive=args.consecutive,
                )
                hits = [s for s in stops if s]
                rows.append(
                    RollbackRow(
                        rule=rule,
                        margin=margin,
                        canary_rate=canary_rate,
                        rolled_back=len(hits) / len(stops),
                        median_batches=float(np.median(hits)) if hits else float("nan"),
                        median_canary_obs=float(np.median([s for s in seen if s]))
                        if hits
                        else float("nan"),
                        seconds=time.perf_counter() - start,
                    )
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2_000, help="replications per lift")
    parser.add_argument("--looks", type=int, default=20)
    parser.add_argument("--per-look", type=int, default=500, help="units per arm per look")
    parser.add_argument("--base", type=float, default=0.10, help="control conversion rate")
    parser.add_argument("--rollback-reps", type=int, default=200)
    parser.add_argument("--batches", type=int, default=500, help="batches before giving up")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--canary-share", type=float, default=0.1)
    parser.add_argument("--control-rate", type=float, default=0.05)
    parser.add_argument("--consecutive", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print_machine(["gbstats", "numpy", "scipy"])
    print(
        f"\n1. Peeking: {args.reps:,} replications per lift, {args.looks} looks of "
        f"{args.per_look} units per arm, control rate {args.base:.0%}, alpha {ALPHA}"
    )
    start = time.perf_counter()
    peeking = [
        peeking_row(rng, lift, args.reps, args.looks, args.per_look, args.base)
        for lift in (0.0, 0.05, 0.10, 0.15, 0.20)
    ]
    print_table(
        [
            "relative lift",
            "naive peeking",
            "fixed horizon (1 look)",
            "SynapseNet mSPRT",
            "gbstats sequential",
            "median stop look",
        ],
        [
            [
                f"{row.lift:.0%}" + (" (A/A)" if row.lift == 0 else ""),
                f"{row.naive:.3f}",
                f"{row.fixed:.3f}",
                f"{row.ours:.3f}",
                f"{row.gbstats:.3f}",
                f"{row.median_stop:.0f}",
            ]
            for row in peeking
        ],
    )
    aa = peeking[0]
    se = (ALPHA * (1 - ALPHA) / args.reps) ** 0.5
    print(
        f"A/A false-positive rate: mSPRT {aa.ours:.3f} (alpha {ALPHA}, +-{2 * se:.3f} at 2 SE), "
        f"naive {aa.naive:.3f} = {aa.naive / ALPHA:.1f}x alpha; "
        f"ours vs gbstats p-values: max |diff| {max(r.max_diff_gbstats for r in peeking):.1e}; "
        f"vectorised vs StatisticalAnalyzer: {max(r.max_diff_analyzer for r in peeking):.1e} "
        f"({time.perf_counter() - start:.1f} s)"
    )

    print(
        f"\n2. Rollback: {args.rollback_reps} replications per row, batches of "
        f"{args.batch_size:,} ({args.canary_share:.0%} canary), checked every batch, "
        f"{args.consecutive} breaches in a row roll back, up to {args.batches} batches"
    )
    rows = rollback_rows(args, rng)
    print_table(
        [
            "rule",
            "margin",
            "canary error rate",
            "rolled back",
            "median batches",
            "median canary obs",
            "median total obs",
            "seconds",
        ],
        [
            [
                row.rule,
                f"{row.margin:.0%}",
                f"{row.canary_rate:.1%}"
                + (" (A/A)" if row.canary_rate == args.control_rate else " (+20%)"),
                f"{row.rolled_back:.3f}",
                f"{row.median_batches:.0f}",
                f"{row.median_canary_obs:,.0f}",
                f"{row.median_batches * args.batch_size:,.0f}",
                f"{row.seconds:.1f}",
            ]
            for row in rows
        ],
    )
    print(
        "'rolled back' is the false-rollback rate for A/A rows and the detection rate within "
        f"{args.batches} batches for degraded rows; medians are over the runs that rolled back."
    )


if __name__ == "__main__":
    main()
