"""Allocation strategies: ramp decisions and bandit reweighting (pure logic)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.bandits import (
    UCB1,
    Allocation,
    AllocationReason,
    ArmStats,
    BanditStrategy,
    EpsilonGreedy,
    ThompsonSampling,
)
from synapsenet.services.abtesting.ramping import (
    RampAction,
    RampReason,
    RampSchedule,
    RampStep,
    advance_ramp,
    evaluate_ramp,
)

D = Decimal
T0 = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

# --------------------------------------------------------------------------- ramping


def schedule() -> RampSchedule:
    return RampSchedule(
        [
            RampStep(D("0.05"), HOUR, 100),
            RampStep(D("0.20"), 2 * HOUR, 500),
            RampStep(D("0.50"), 4 * HOUR, 1_000),
        ]
    )


def test_ramp_advances_when_duration_samples_and_guardrails_are_met() -> None:
    decision = evaluate_ramp(schedule(), 0, T0, T0 + HOUR, {"control": 100, "canary": 120}, True)
    assert decision.action is RampAction.ADVANCE
    assert decision.reason is RampReason.MINIMUMS_MET
    assert (decision.step_index, decision.traffic) == (1, D("0.20"))


def test_ramp_completes_after_the_last_step() -> None:
    decision = evaluate_ramp(schedule(), 2, T0, T0 + 5 * HOUR, {"a": 2_000, "b": 1_000}, True)
    assert decision.action is RampAction.COMPLETE
    assert (decision.step_index, decision.traffic) == (2, D("0.50"))


@pytest.mark.parametrize(
    ("now", "samples", "healthy", "reason"),
    [
        (T0 + HOUR, {"a": 100, "b": 100}, False, RampReason.GUARDRAILS_UNHEALTHY),
        (T0 + HOUR, {"a": 100, "b": 100}, None, RampReason.GUARDRAILS_UNKNOWN),
        (T0 + HOUR - timedelta(seconds=1), {"a": 100, "b": 100}, True, RampReason.DURATION_NOT_MET),
        (T0 - HOUR, {"a": 100, "b": 100}, True, RampReason.DURATION_NOT_MET),
        (T0 + HOUR, {"a": 100, "b": 99}, True, RampReason.SAMPLES_NOT_MET),
        (T0 + HOUR, {}, True, RampReason.SAMPLES_NOT_MET),
    ],
)
def test_ramp_holds_until_every_minimum_is_met(
    now: datetime, samples: dict[str, int], healthy: bool | None, reason: RampReason
) -> None:
    decision = evaluate_ramp(schedule(), 0, T0, now, samples, healthy)
    assert decision.action is RampAction.HOLD
    assert decision.reason is reason
    assert (decision.step_index, decision.traffic) == (0, D("0.05"))


def test_hold_detail_lists_every_unmet_condition_most_serious_first() -> None:
    decision = evaluate_ramp(schedule(), 1, T0, T0 + HOUR, {"a": 10, "b": 600}, None)
    assert decision.reason is RampReason.GUARDRAILS_UNKNOWN
    assert "guardrail health is unknown" in decision.detail
    assert "minimum 2:00:00" in decision.detail
    assert "a=10" in decision.detail
    assert "b=" not in decision.detail


def test_manual_hold_wins_and_manual_advance_skips_the_minimums() -> None:
    held = evaluate_ramp(schedule(), 0, T0, T0 + HOUR, {"a": 100}, True, manually_held=True)
    assert (held.action, held.reason) == (RampAction.HOLD, RampReason.MANUAL_HOLD)
    advanced = advance_ramp(schedule(), 0)
    assert (advanced.action, advanced.reason) == (RampAction.ADVANCE, RampReason.MANUAL_ADVANCE)
    assert advanced.step_index == 1
    assert advance_ramp(schedule(), 2).action is RampAction.COMPLETE


@pytest.mark.parametrize(
    ("started", "now", "field"),
    [
        (datetime(2025, 1, 1), T0, "step_started_at"),
        (T0, datetime(2025, 1, 1, 1), "now"),
        (T0, datetime(2025, 1, 1, 3, tzinfo=timezone(timedelta(hours=2))), "now"),
    ],
)
def test_ramp_rejects_naive_and_non_utc_datetimes(
    started: datetime, now: datetime, field: str
) -> None:
    with pytest.raises(InvalidError) as info:
        evaluate_ramp(schedule(), 0, started, now, {"a": 1}, True)
    assert info.value.field == field


def test_ramp_rejects_bad_step_index_and_negative_samples() -> None:
    with pytest.raises(InvalidError, match=r"step index must be in \[0, 3\)"):
        evaluate_ramp(schedule(), 3, T0, T0, {"a": 1}, True)
    with pytest.raises(InvalidError, match="step index"):
        advance_ramp(schedule(), -1)
    with pytest.raises(InvalidError, match="Sample counts must be >= 0"):
        evaluate_ramp(schedule(), 0, T0, T0, {"a": -1}, True)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: RampStep(D(0), HOUR, 1),
            r"'traffic' of a ramp step must be a Decimal in \(0, 1\]",
        ),
        (lambda: RampStep(D("1.01"), HOUR, 1), "'traffic'"),
        (lambda: RampStep(0.5, HOUR, 1), "'traffic'"),  # type: ignore[arg-type]
        (lambda: RampStep(D("0.5"), -HOUR, 1), "'min_duration'"),
        (lambda: RampStep(D("0.5"), HOUR, -1), "'min_samples_per_arm'"),
        (lambda: RampStep(D("0.5"), HOUR, True), "'min_samples_per_arm'"),
        (lambda: RampSchedule([]), "at least one step"),
        (lambda: RampSchedule(["x"]), "must be a RampStep"),  # type: ignore[list-item]
        (
            lambda: RampSchedule([RampStep(D("0.2"), HOUR, 1), RampStep(D("0.2"), HOUR, 1)]),
            "strictly increase",
        ),
    ],
)
def test_ramp_schedule_validation(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidError, match=message) as info:
        make()
    assert info.value.field == "ramp"


def test_schedule_reports_traffic_per_step() -> None:
    ramp = schedule()
    assert len(ramp) == 3
    assert ramp.traffic_at(1) == D("0.20")


# --------------------------------------------------------------------------- bandits

EVEN3 = (D("0.3334"), D("0.3333"), D("0.3333"))


def binary(n: int, rate: float) -> ArmStats:
    successes = float(round(n * rate))
    return ArmStats(n, successes, successes)


def continuous(n: int, mean: float, sd: float, seed: int) -> ArmStats:
    x = np.random.default_rng(seed).normal(mean, sd, n)
    return ArmStats(n, float(x.sum()), float((x**2).sum()))


BANDITS: dict[str, Callable[[], BanditStrategy]] = {
    "thompson-binary": lambda: ThompsonSampling(min_units_per_arm=50, seed=1),
    "thompson-continuous": lambda: ThompsonSampling(
        reward="continuous", min_units_per_arm=50, seed=1
    ),
    "epsilon-greedy": lambda: EpsilonGreedy(epsilon=0.1, min_units_per_arm=50),
    "ucb1-binary": lambda: UCB1(min_units_per_arm=50),
    "ucb1-continuous": lambda: UCB1(reward="continuous", min_units_per_arm=50),
    "ucb1-ranged": lambda: UCB1(reward="continuous", min_units_per_arm=50, reward_range=(0, 20)),
}
bandit_names = pytest.mark.parametrize("name", list(BANDITS))


def stats_with_best(name: str, best: int, n: int = 2_000) -> list[ArmStats]:
    if "continuous" in name or "ranged" in name:
        return [continuous(n, 10.0 + (1.0 if i == best else 0.0), 2.0, i) for i in range(3)]
    return [binary(n, 0.15 if i == best else 0.10) for i in range(3)]


@bandit_names
def test_bandit_is_deterministic(name: str) -> None:
    stats = stats_with_best(name, 1, n=200)
    assert BANDITS[name]().reweight(stats, EVEN3) == BANDITS[name]().reweight(stats, EVEN3)


@bandit_names
@pytest.mark.parametrize("best", [0, 2])
def test_clearly_better_arm_gets_most_traffic(name: str, best: int) -> None:
    result = BANDITS[name]().reweight(stats_with_best(name, best), EVEN3)
    assert result.reason is AllocationReason.REWEIGHTED
    assert result.weights[best] > D("0.8")
    assert sum(result.weights) == 1


@bandit_names
def test_every_eligible_arm_keeps_its_floor(name: str) -> None:
    result = BANDITS[name]().reweight(stats_with_best(name, 0, n=20_000), EVEN3)
    assert min(result.weights) >= D("0.01")


@bandit_names
def test_excluded_arm_gets_exactly_zero(name: str) -> None:
    result = BANDITS[name]().reweight(stats_with_best(name, 1), EVEN3, excluded={1})
    assert result.weights[1] == 0
    assert sum(result.weights) == 1
    assert min(result.weights[0], result.weights[2]) >= D("0.01")


@bandit_names
def test_no_reweight_before_minimum_samples(name: str) -> None:
    stats = stats_with_best(name, 0)
    stats[2] = ArmStats(10, stats[2].sum / 200, stats[2].sum_squares / 200)
    current = (D("0.2"), D("0.3"), D("0.5"))
    result = BANDITS[name]().reweight(stats, current)
    assert result == Allocation(current, AllocationReason.INSUFFICIENT_DATA, result.detail)
    assert "arms [2]" in result.detail


@bandit_names
def test_excluded_arm_loses_traffic_even_before_minimum_samples(name: str) -> None:
    stats = [ArmStats(0, 0.0, 0.0)] * 3
    result = BANDITS[name]().reweight(stats, (D("0.2"), D("0.3"), D("0.5")), excluded=[2])
    assert result.reason is AllocationReason.INSUFFICIENT_DATA
    assert result.weights == (D("0.4"), D("0.6"), D(0))


@bandit_names
def test_excluded_short_arm_does_not_block_reweighting(name: str) -> None:
    stats = stats_with_best(name, 0)
    stats[1] = ArmStats(0, 0.0, 0.0)
    result = BANDITS[name]().reweight(stats, EVEN3, excluded=[1])
    assert result.reason is AllocationReason.REWEIGHTED
    assert result.weights[1] == 0


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(list(BANDITS)),
    st.lists(st.tuples(st.integers(50, 5_000), st.floats(0, 1)), min_size=2, max_size=5),
    st.integers(0, 300).map(lambda u: D(u).scaleb(-4)),
    st.data(),
)
def test_bandit_weights_sum_exactly_to_one(
    name: str, arms: list[tuple[int, float]], floor: Decimal, data: st.DataObject
) -> None:
    stats = [binary(n, rate) for n, rate in arms]
    excluded = data.draw(st.sets(st.integers(0, len(arms) - 1), max_size=len(arms) - 1))
    bandit = BANDITS[name]()
    bandit.floor = floor  # type: ignore[attr-defined]
    weights = bandit.reweight(stats, normalize_even(len(arms)), excluded=excluded).weights
    assert sum(weights) == 1
    for i, weight in enumerate(weights):
        assert weight == 0 if i in excluded else weight >= floor


def normalize_even(k: int) -> tuple[Decimal, ...]:
    from synapsenet.services.abtesting.assignment import normalize_weights

    return normalize_weights([1.0] * k)


def test_lower_is_better_rewards_favour_the_smaller_mean() -> None:
    error_rates = [binary(2_000, 0.05), binary(2_000, 0.10)]
    latencies = [continuous(2_000, 100.0, 10.0, 1), continuous(2_000, 90.0, 10.0, 2)]
    even = (D("0.5"), D("0.5"))
    for bandit in (
        ThompsonSampling(higher_is_better=False),
        EpsilonGreedy(higher_is_better=False),
        UCB1(higher_is_better=False),
    ):
        assert bandit.reweight(error_rates, even).weights[0] > D("0.8")
        bandit.reward = "continuous"
        assert bandit.reweight(latencies, even).weights[1] > D("0.8")


def test_thompson_splits_ties_between_zero_variance_arms() -> None:
    same = [ArmStats(100, 500.0, 2_500.0)] * 2
    result = ThompsonSampling(reward="continuous").reweight(same, (D("0.5"), D("0.5")))
    assert result.weights == (D("0.5"), D("0.5"))


def test_epsilon_greedy_gives_exploration_share_evenly() -> None:
    stats = [binary(1_000, 0.1), binary(1_000, 0.2), binary(1_000, 0.2), binary(1_000, 0.1)]
    result = EpsilonGreedy(epsilon=0.2, floor=D(0)).reweight(stats, normalize_even(4))
    assert result.weights == (D("0.05"), D("0.45"), D("0.45"), D("0.05"))


def test_ucb1_prefers_the_less_explored_arm_when_means_tie() -> None:
    stats = [binary(100, 0.5), binary(10_000, 0.5)]
    result = UCB1(floor=D("0.05")).reweight(stats, (D("0.5"), D("0.5")))
    assert result.weights == (D("0.95"), D("0.05"))


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ThompsonSampling(reward="ordinal"), "reward"),
        (lambda: ThompsonSampling(draws=0), "draws"),
        (lambda: ThompsonSampling(reward="continuous", min_units_per_arm=1), "min_units_per_arm"),
        (lambda: EpsilonGreedy(min_units_per_arm=0), "min_units_per_arm"),
        (lambda: EpsilonGreedy(epsilon=1.5), "epsilon"),
        (lambda: UCB1(floor=D(1)), "floor"),
        (lambda: UCB1(floor=D("0.6")), "floor"),
        (lambda: UCB1(floor=D("0.00001")), "floor"),
        (lambda: UCB1(reward_range=(1.0, 1.0)), "reward_range"),
    ],
)
def test_bandit_parameters_are_validated(make: Callable[[], BanditStrategy], field: str) -> None:
    stats = [binary(200, 0.1), binary(200, 0.2)]
    with pytest.raises(InvalidError) as info:
        make().reweight(stats, (D("0.5"), D("0.5")))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("stats", "weights", "excluded", "field"),
    [
        ([binary(200, 0.1)] * 2, (D("0.5"), D("0.4")), (), "current_weights"),
        ([binary(200, 0.1)] * 3, (D("0.5"), D("0.5")), (), "stats"),
        ([binary(200, 0.1)] * 2, (D("0.5"), D("0.5")), (2,), "excluded"),
        ([binary(200, 0.1)] * 2, (D("0.5"), D("0.5")), (0, 1), "excluded"),
        ([ArmStats(200, 250.0, 250.0)] * 2, (D("0.5"), D("0.5")), (), "stats"),
    ],
)
def test_bandit_inputs_are_validated(
    stats: list[ArmStats], weights: tuple[Decimal, ...], excluded: tuple[int, ...], field: str
) -> None:
    with pytest.raises(InvalidError) as info:
        ThompsonSampling().reweight(stats, weights, excluded=excluded)
    assert info.value.field == field


def test_arm_stats_pool_and_describe_rewards() -> None:
    pooled = ArmStats(2, 3.0, 5.0) + ArmStats(1, 3.0, 9.0)
    assert pooled == ArmStats(3, 6.0, 14.0)
    assert pooled.mean == 2.0
    assert pooled.variance == pytest.approx(1.0)
    assert ArmStats(0, 0.0, 0.0).mean == 0.0
    assert ArmStats(1, 4.0, 16.0).variance == 0.0
    with pytest.raises(InvalidError):
        ArmStats(-1, 0.0, 0.0)


# --------------------------------------------------------------------------- regret


def simulate_regret(bandit: BanditStrategy | None, rates: list[float], seed: int) -> float:
    """Expected regret of 2,000 units, reweighting every 100 units."""
    rng = np.random.default_rng(seed)
    k = len(rates)
    n = np.zeros(k, dtype=np.int64)
    wins = np.zeros(k)
    weights = normalize_even(k)
    regret = 0.0
    for _ in range(20):
        probabilities = np.array([float(w) for w in weights])
        arms = rng.choice(k, size=100, p=probabilities)
        rewards = rng.random(100) < np.asarray(rates)[arms]
        regret += float(np.sum(max(rates) - np.asarray(rates)[arms]))
        np.add.at(n, arms, 1)
        np.add.at(wins, arms, rewards)
        if bandit is not None:
            stats = [ArmStats(int(n[i]), float(wins[i]), float(wins[i])) for i in range(k)]
            weights = bandit.reweight(stats, weights).weights
    return regret


@pytest.mark.parametrize(
    "make",
    [
        lambda: ThompsonSampling(min_units_per_arm=20, seed=3),
        lambda: EpsilonGreedy(min_units_per_arm=20),
        lambda: UCB1(min_units_per_arm=20),
    ],
)
def test_bandit_regret_beats_uniform_allocation(make: Callable[[], BanditStrategy]) -> None:
    rates = [0.30, 0.45, 0.60]
    uniform = simulate_regret(None, rates, seed=11)
    assert simulate_regret(make(), rates, seed=11) < 0.6 * uniform
