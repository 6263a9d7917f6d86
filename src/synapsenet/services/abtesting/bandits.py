"""Multi-armed bandits: recompute allocation weights from per-arm reward statistics.

Each strategy is configured in its constructor and computes in :meth:`reweight`, a pure
function of its parameters and inputs (Thompson sampling draws from a generator seeded from
``seed`` on every call, so the same inputs give the same weights). The engine calls it after
each batch of data and lays the returned weights out with
:func:`~synapsenet.services.abtesting.assignment.build_layout`.

Rules shared by every strategy:

- No reweighting until every eligible arm has ``min_units_per_arm`` observations: the current
  weights come back unchanged (except that excluded arms lose their traffic).
- Every eligible arm keeps ``floor`` weight, so a bandit never starves an arm of the data that
  could change its mind. ``floor * arms <= 1`` is checked.
- Arms excluded because they breached a guardrail get exactly 0.
- Weights are ``Decimal`` with four places and sum exactly to 1
  (:func:`~synapsenet.services.abtesting.assignment.normalize_weights`).

``reward`` is ``"binary"`` or ``"continuous"`` (the values of the models' ``MetricKind``), and
``higher_is_better=False`` turns a metric such as an error rate or a latency into a reward.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError

from .assignment import normalize_weights, validate_weights

__all__ = [
    "UCB1",
    "Allocation",
    "AllocationReason",
    "ArmStats",
    "BanditStrategy",
    "EpsilonGreedy",
    "ThompsonSampling",
]

BINARY = "binary"
CONTINUOUS = "continuous"
_REWARDS = (BINARY, CONTINUOUS)


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Sufficient statistics of one arm's rewards.

    Attributes:
        n: Number of observed rewards.
        sum: Sum of the rewards.
        sum_squares: Sum of the squared rewards.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        if self.n < 0 or not math.isfinite(self.sum) or not math.isfinite(self.sum_squares):
            raise InvalidError(
                f"Arm statistics need n >= 0 and finite sums. Got {self!r}.", field="stats"
            )

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )

    @property
    def mean(self) -> float:
        """The mean reward (0 with no data)."""
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The unbiased sample variance (0 with fewer than two rewards)."""
        if self.n < 2:
            return 0.0
        # Clamped: cancellation can push an exact-zero variance slightly negative.
        return max((self.sum_squares - self.sum * self.mean) / (self.n - 1), 0.0)


class AllocationReason(StrEnum):
    """Why a strategy returned its weights; stable codes for the audit log and the API."""

    REWEIGHTED = "reweighted"
    INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True, slots=True)
class Allocation:
    """New allocation weights with the reason for them.

    Attributes:
        weights: One weight per arm, in arm order, summing exactly to 1.
        reason: Why these weights, as a stable code.
        detail: A sentence for people.
    """

    weights: tuple[Decimal, ...]
    reason: AllocationReason
    detail: str


class BanditStrategy(Protocol):
    """What the engine needs from a bandit."""

    def reweight(
        self,
        stats: Sequence[ArmStats],
        current_weights: Sequence[Decimal],
        *,
        excluded: Collection[int] = (),
    ) -> Allocation:
        """Compute new weights from each arm's rewards (see :meth:`ThompsonSampling.reweight`)."""
        ...


class _Bandit(ABC):
    """The rules every bandit shares; subclasses implement :meth:`_preferences`."""

    name = "bandit"

    def __init__(
        self, *, reward: str, higher_is_better: bool, min_units_per_arm: int, floor: Decimal
    ) -> None:
        self.reward = reward
        self.higher_is_better = higher_is_better
        self.min_units_per_arm = min_units_per_arm
        self.floor = floor

    def _validate_params(self) -> None:
        if self.reward not in _REWARDS:
            raise InvalidError(
                f"The 'reward' parameter of {self.name} must be 'binary' or 'continuous'. "
                f"Got {self.reward!r} instead.",
                field="reward",
            )
        lowest = 2 if self.reward == CONTINUOUS else 1
        if isinstance(self.min_units_per_arm, bool) or not (
            isinstance(self.min_units_per_arm, int) and self.min_units_per_arm >= lowest
        ):
            raise InvalidError(
                f"The 'min_units_per_arm' parameter of {self.name} must be an int >= {lowest} "
                f"for {self.reward} rewards. Got {self.min_units_per_arm!r} instead.",
                field="min_units_per_arm",
            )
        if not isinstance(self.floor, Decimal) or not 0 <= self.floor < 1:
            raise InvalidError(
                f"The 'floor' parameter of {self.name} must be a Decimal in [0, 1). "
                f"Got {self.floor!r} instead.",
                field="floor",
            )

    def reweight(
        self,
        stats: Sequence[ArmStats],
        current_weights: Sequence[Decimal],
        *,
        excluded: Collection[int] = (),
    ) -> Allocation:
        """Compute new allocation weights from each arm's reward statistics.

        Args:
            stats: Reward statistics per arm, in arm order.
            current_weights: The weights in force, in arm order, summing exactly to 1.
            excluded: Indices of arms that breached a guardrail; they get exactly 0.

        Returns:
            The new weights (or the current ones, until every eligible arm has
            ``min_units_per_arm`` observations) with the reason.

        Raises:
            InvalidError: If the parameters or inputs are invalid, the lengths disagree, or
                every arm is excluded.
        """
        self._validate_params()
        if len(stats) != len(current_weights):
            raise InvalidError(
                f"Got statistics for {len(stats)} arms but {len(current_weights)} weights.",
                field="stats",
            )
        validate_weights(current_weights, field="current_weights")
        if any(not 0 <= i < len(stats) for i in excluded):
            raise InvalidError(
                f"Excluded arms must be indices in [0, {len(stats)}). Got {sorted(excluded)}.",
                field="excluded",
            )
        eligible = [i not in excluded for i in range(len(stats))]
        if not any(eligible):
            raise InvalidError("Every arm is excluded; nothing can get traffic.", field="excluded")
        if self.reward == BINARY:
            for i, arm in enumerate(stats):
                if not 0 <= arm.sum <= arm.n:
                    raise InvalidError(
                        f"Binary rewards need 0 <= sum <= n. Arm {i} has {arm!r}.", field="stats"
                    )

        short = [i for i, arm in enumerate(stats) if eligible[i] and arm.n < self.min_units_per_arm]
        if short:
            weights = tuple(current_weights)
            detail = (
                f"Keeping current weights: arms {short} have fewer than "
                f"{self.min_units_per_arm} observations."
            )
            if any(not eligible[i] and w > 0 for i, w in enumerate(weights)):
                # A guardrail breach is a safety rule: it applies even before there is data.
                weights = normalize_weights(weights, floor=Decimal(0), eligible=eligible)
                detail += " Excluded arms lost their traffic."
            return Allocation(weights, AllocationReason.INSUFFICIENT_DATA, detail)

        index = [i for i, ok in enumerate(eligible) if ok]
        allocation = np.zeros(len(stats))
        rewards = [stats[i] if self.higher_is_better else self._flip(stats[i]) for i in index]
        allocation[index] = self._preferences(rewards)
        weights = normalize_weights(allocation.tolist(), floor=self.floor, eligible=eligible)
        return Allocation(
            weights,
            AllocationReason.REWEIGHTED,
            f"{self.name} reweighted {len(index)} eligible arms.",
        )

    def _flip(self, arm: ArmStats) -> ArmStats:
        # Bandits maximise; a lower-is-better metric becomes 1 - x (binary) or -x (continuous),
        # both of which the sufficient statistics can express exactly.
        if self.reward == BINARY:
            return ArmStats(arm.n, arm.n - arm.sum, arm.n - 2 * arm.sum + arm.sum_squares)
        return ArmStats(arm.n, -arm.sum, arm.sum_squares)

    @abstractmethod
    def _preferences(self, stats: Sequence[ArmStats]) -> npt.NDArray[np.float64]:
        """Non-negative preference per eligible arm; the floor is applied afterwards."""
        ...


def _split_ties(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    best = (scores == scores.max()).astype(np.float64)
    result: npt.NDArray[np.float64] = best / best.sum()
    return result


class ThompsonSampling(_Bandit):
    """Thompson sampling: each arm's weight is the posterior probability that it is best.

    Binary rewards use a Beta-Bernoulli model with a Beta(1, 1) prior. Continuous rewards use
    a normal model with unknown mean and variance under the Jeffreys prior
    ``p(mu, sigma^2) ~ 1 / sigma^2`` (a limit of the Normal-Inverse-Gamma family), whose
    posterior of the mean is Student's t with ``n - 1`` degrees of freedom, centred on the
    sample mean with scale ``s / sqrt(n)``. The probability of being best is estimated from
    ``draws`` vectorised posterior draws per arm; ties (zero-variance arms) split a draw.

    Args:
        reward: ``"binary"`` (rewards in {0, 1}) or ``"continuous"``.
        higher_is_better: Whether a larger reward is better (an error rate is not).
        min_units_per_arm: Observations every eligible arm needs before reweighting.
        floor: Minimum weight of each eligible arm (four decimal places at most).
        draws: Posterior draws per arm.
        seed: Seed of the generator used on every call.
    """

    name = "ThompsonSampling"

    def __init__(
        self,
        *,
        reward: str = BINARY,
        higher_is_better: bool = True,
        min_units_per_arm: int = 100,
        floor: Decimal = Decimal("0.01"),
        draws: int = 10_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            reward=reward,
            higher_is_better=higher_is_better,
            min_units_per_arm=min_units_per_arm,
            floor=floor,
        )
        self.draws = draws
        self.seed = seed

    def _validate_params(self) -> None:
        super()._validate_params()
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 1:
            raise InvalidError(
                f"The 'draws' parameter of {self.name} must be an int >= 1. "
                f"Got {self.draws!r} instead.",
                field="draws",
            )

    def _preferences(self, stats: Sequence[ArmStats]) -> npt.NDArray[np.float64]:
        rng = np.random.default_rng(self.seed)
        n = np.array([arm.n for arm in stats], dtype=np.float64)
        total = np.array([arm.sum for arm in stats], dtype=np.float64)
        shape = (self.draws, len(stats))
        if self.reward == BINARY:
            samples = rng.beta(1.0 + total, 1.0 + n - total, size=shape)
        else:
            scale = np.sqrt([arm.variance for arm in stats]) / np.sqrt(n)
            samples = total / n + scale * rng.standard_t(n - 1.0, size=shape)
        best = samples == samples.max(axis=1, keepdims=True)
        result: npt.NDArray[np.float64] = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
        return result


class EpsilonGreedy(_Bandit):
    """Epsilon-greedy: ``1 - epsilon`` to the best mean reward, ``epsilon`` split evenly.

    Tied best arms share ``1 - epsilon``. Deterministic: it needs no seed.

    Args:
        epsilon: Share of traffic spread evenly over the eligible arms, in [0, 1].
        reward: ``"binary"`` or ``"continuous"`` (the rule is the same; binary sums are
            checked to lie in [0, n]).
        higher_is_better: Whether a larger reward is better (an error rate is not).
        min_units_per_arm: Observations every eligible arm needs before reweighting.
        floor: Minimum weight of each eligible arm (four decimal places at most).
    """

    name = "EpsilonGreedy"

    def __init__(
        self,
        *,
        epsilon: float = 0.1,
        reward: str = BINARY,
        higher_is_better: bool = True,
        min_units_per_arm: int = 100,
        floor: Decimal = Decimal("0.01"),
    ) -> None:
        super().__init__(
            reward=reward,
            higher_is_better=higher_is_better,
            min_units_per_arm=min_units_per_arm,
            floor=floor,
        )
        self.epsilon = epsilon

    def _validate_params(self) -> None:
        super()._validate_params()
        if not 0 <= self.epsilon <= 1:
            raise InvalidError(
                f"The 'epsilon' parameter of {self.name} must be in [0, 1]. "
                f"Got {self.epsilon!r} instead.",
                field="epsilon",
            )

    def _preferences(self, stats: Sequence[ArmStats]) -> npt.NDArray[np.float64]:
        means = np.array([arm.mean for arm in stats], dtype=np.float64)
        explore = np.full(len(stats), self.epsilon / len(stats))
        return explore + (1.0 - self.epsilon) * _split_ties(means)


class UCB1(_Bandit):
    """UCB1: all non-floor traffic to the arm with the highest upper confidence bound.

    The index is ``mean_i + scale * sqrt(2 ln N / n_i)`` with ``N`` the observations over the
    eligible arms. Binary rewards lie in [0, 1], so ``scale`` is 1 (the standard UCB1). For
    continuous rewards the bonus must carry the rewards' units: ``scale`` is the width of
    ``reward_range`` when given (rewards known to lie in it), otherwise the sample standard
    deviation of all eligible arms' rewards taken together: sufficient statistics give that,
    while the observed min/max they cannot give. Tied best indices share the traffic. Deterministic.

    Args:
        reward: ``"binary"`` or ``"continuous"``.
        higher_is_better: Whether a larger reward is better (an error rate is not).
        min_units_per_arm: Observations every eligible arm needs before reweighting.
        floor: Minimum weight of each eligible arm (four decimal places at most).
        reward_range: ``(low, high)`` bounds of continuous rewards, if known.
    """

    name = "UCB1"

    def __init__(
        self,
        *,
        reward: str = BINARY,
        higher_is_better: bool = True,
        min_units_per_arm: int = 100,
        floor: Decimal = Decimal("0.01"),
        reward_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(
            reward=reward,
            higher_is_better=higher_is_better,
            min_units_per_arm=min_units_per_arm,
            floor=floor,
        )
        self.reward_range = reward_range

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.reward_range is not None and not (
            math.isfinite(self.reward_range[0])
            and math.isfinite(self.reward_range[1])
            and self.reward_range[0] < self.reward_range[1]
        ):
            raise InvalidError(
                f"The 'reward_range' parameter of {self.name} must be finite (low, high) with "
                f"low < high. Got {self.reward_range!r} instead.",
                field="reward_range",
            )

    def _scale(self, stats: Sequence[ArmStats]) -> float:
        if self.reward == BINARY:
            return 1.0
        if self.reward_range is not None:
            return self.reward_range[1] - self.reward_range[0]
        pooled = ArmStats(0, 0.0, 0.0)
        for arm in stats:
            pooled += arm
        return math.sqrt(pooled.variance)

    def _preferences(self, stats: Sequence[ArmStats]) -> npt.NDArray[np.float64]:
        n = np.array([arm.n for arm in stats], dtype=np.float64)
        means = np.array([arm.mean for arm in stats], dtype=np.float64)
        bonus = self._scale(stats) * np.sqrt(2.0 * math.log(n.sum()) / n)
        return _split_ties(means + bonus)
