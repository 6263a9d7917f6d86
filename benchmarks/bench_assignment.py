"""Assignment throughput: SynapseNet against the GrowthBook Python SDK, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/bench_assignment.py

All contenders assign the same 50/50 two-variant experiment with full coverage. GrowthBook is
timed two ways: ``GrowthBook(attributes=...).run(Experiment(...))`` built fresh per user (what
a request handler usually does) and one instance whose attributes are replaced per user
(cheaper, so the ratios against it are the conservative ones). Ratios are also printed against
the 29k assignments/s the A/B testing issue quotes for GrowthBook. Each measurement is repeated
and the median reported.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import xxhash
from _common import median_rate, print_machine
from growthbook import Experiment, GrowthBook

from synapsenet.services.abtesting.assignment import (
    Assigner,
    assign,
    assign_batch,
    build_layout,
)

SALT = "bench-exp"
TARGET_SINGLE = 10.0
TARGET_BATCH = 100.0
ISSUE_GROWTHBOOK_RATE = 29_000.0  # assignments/s the issue quotes for GrowthBook's run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="ids per batch run")
    parser.add_argument("--single-n", type=int, default=200_000, help="ids per single-call run")
    parser.add_argument("--gb-n", type=int, default=50_000, help="ids per GrowthBook run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    ids = [f"user-{i}" for i in range(args.n)]
    ids_array = np.array(ids)
    int_ids = np.arange(args.n, dtype=np.int64) * 7_919
    single_ids = ids[: args.single_n]
    gb_ids = ids[: args.gb_n]

    layout = build_layout([Decimal("0.5"), Decimal("0.5")], control_index=0)
    assigner = Assigner(layout, SALT)
    experiment = Experiment(key=SALT, variations=[0, 1], weights=[0.5, 0.5])

    def gb_fresh() -> list[int]:
        return [
            GrowthBook(attributes={"id": u})
            .run(Experiment(key=SALT, variations=[0, 1], weights=[0.5, 0.5]))
            .value
            for u in gb_ids
        ]

    reused = GrowthBook(attributes={})

    def gb_reused() -> list[int]:
        out = []
        for u in gb_ids:
            reused.set_attributes({"id": u})
            out.append(reused.run(experiment).value)
        return out

    def ours_function() -> list[int]:
        return [assign(layout, SALT, u) for u in single_ids]

    def ours_assigner() -> list[int]:
        fast = assigner.assign
        return [fast(u) for u in single_ids]

    # Sanity: every contender splits about 50/50 (and ours agree with each other).
    assert abs(np.mean(gb_fresh()) - 0.5) < 0.02
    assert ours_function() == ours_assigner() == assign_batch(layout, SALT, single_ids).tolist()

    gb_repeats = max(3, args.repeats // 2)
    contenders: list[tuple[str, int, int, Callable[[], object]]] = [
        ("GrowthBook run(), fresh instance per user", args.gb_n, gb_repeats, gb_fresh),
        ("GrowthBook run(), set_attributes per user", args.gb_n, gb_repeats, gb_reused),
        ("SynapseNet assign() (function)", args.single_n, args.repeats, ours_function),
        ("SynapseNet Assigner.assign (closure)", args.single_n, args.repeats, ours_assigner),
        (
            "SynapseNet assign_batch, list[str]",
            args.n,
            args.repeats,
            lambda: assign_batch(layout, SALT, ids),
        ),
        (
            "SynapseNet assign_batch, ndarray[str]",
            args.n,
            args.repeats,
            lambda: assign_batch(layout, SALT, ids_array),
        ),
        (
            "SynapseNet assign_batch, ndarray[int64]",
            args.n,
            args.repeats,
            lambda: assign_batch(layout, SALT, int_ids),
        ),
    ]
    rates = [median_rate(run, count, reps) for _, count, reps, run in contenders]
    fresh, baseline = rates[0], rates[1]

    print_machine(["growthbook", "xxhash", "numpy"])
    print(f"xxHash {xxhash.XXHASH_VERSION}")
    print(f"median of {args.repeats} runs ({gb_repeats} for GrowthBook)\n")
    print(f"{'contender':<42} {'ids':>9} {'assign/s':>11} {'xGB reused':>10} {'xGB fresh':>9}")
    for (name, count, _, _), rate in zip(contenders, rates, strict=True):
        print(
            f"{name:<42} {count:>9,} {rate:>11,.0f} {rate / baseline:>10.1f} {rate / fresh:>9.1f}"
        )

    single, batch = max(rates[2:4]), min(rates[4:])
    print()
    for label, rate, target in (
        ("single calls", single, TARGET_SINGLE),
        ("batch", batch, TARGET_BATCH),
    ):
        ratios = [rate / baseline, rate / fresh, rate / ISSUE_GROWTHBOOK_RATE]
        verdicts = ["met" if r >= target else "NOT met" for r in ratios]
        print(
            f"{label} (target >= {target:.0f}x): {ratios[0]:.0f}x GB reused ({verdicts[0]}), "
            f"{ratios[1]:.0f}x GB fresh ({verdicts[1]}), "
            f"{ratios[2]:.0f}x the issue's 29k/s ({verdicts[2]})"
        )


if __name__ == "__main__":
    main()
