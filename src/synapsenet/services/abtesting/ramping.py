"""Ramping: move a canary through a schedule of traffic steps, one safe step at a time.

A step's ``traffic`` is the *treatment share*: the fraction of traffic that goes to all
non-control variants together (see :func:`~synapsenet.services.abtesting.assignment.build_layout`,
which keeps units sticky as the share grows). :func:`evaluate_ramp` is the pure decision the
engine takes on a schedule or after a batch of data; the engine persists the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from synapsenet.errors import InvalidError

__all__ = [
    "RampAction",
    "RampDecision",
    "RampReason",
    "RampSchedule",
    "RampStep",
    "advance_ramp",
    "evaluate_ramp",
]

_FIELD = "ramp"


@dataclass(frozen=True, slots=True)
class RampStep:
    """One step of a ramp.

    Attributes:
        traffic: Treatment share during the step, a ``Decimal`` in (0, 1].
        min_duration: How long the step must run before the ramp may advance.
        min_samples_per_arm: Units every arm must have seen before the ramp may advance.
    """

    traffic: Decimal
    min_duration: timedelta
    min_samples_per_arm: int

    def __post_init__(self) -> None:
        if (
            not isinstance(self.traffic, Decimal)
            or not self.traffic.is_finite()
            or not 0 < self.traffic <= 1
        ):
            raise InvalidError(
                f"The 'traffic' of a ramp step must be a Decimal in (0, 1]. "
                f"Got {self.traffic!r} instead.",
                field=_FIELD,
            )
        if not isinstance(self.min_duration, timedelta) or self.min_duration < timedelta(0):
            raise InvalidError(
                f"The 'min_duration' of a ramp step must be a timedelta >= 0. "
                f"Got {self.min_duration!r} instead.",
                field=_FIELD,
            )
        if (
            not isinstance(self.min_samples_per_arm, int)
            or isinstance(self.min_samples_per_arm, bool)
            or self.min_samples_per_arm < 0
        ):
            raise InvalidError(
                f"The 'min_samples_per_arm' of a ramp step must be an int >= 0. "
                f"Got {self.min_samples_per_arm!r} instead.",
                field=_FIELD,
            )


@dataclass(frozen=True, slots=True)
class RampSchedule:
    """The steps of a ramp, with strictly increasing traffic.

    Attributes:
        steps: The steps, in order; the experiment starts on step 0.
    """

    steps: tuple[RampStep, ...]

    def __init__(self, steps: Sequence[RampStep]) -> None:
        object.__setattr__(self, "steps", tuple(steps))
        if not self.steps:
            raise InvalidError("A ramp schedule needs at least one step.", field=_FIELD)
        for i, step in enumerate(self.steps):
            if not isinstance(step, RampStep):
                raise InvalidError(
                    f"Ramp step {i} must be a RampStep. Got {type(step).__name__}.", field=_FIELD
                )
        for i in range(1, len(self.steps)):
            if self.steps[i].traffic <= self.steps[i - 1].traffic:
                raise InvalidError(
                    f"Ramp traffic must strictly increase: step {i} has "
                    f"{self.steps[i].traffic} after {self.steps[i - 1].traffic}.",
                    field=_FIELD,
                )

    def __len__(self) -> int:
        return len(self.steps)

    def traffic_at(self, step_index: int) -> Decimal:
        """The treatment share of a step.

        Args:
            step_index: The step's 0-based index.

        Returns:
            The step's traffic.

        Raises:
            InvalidError: If the index is out of range.
        """
        return self.steps[self._check_index(step_index)].traffic

    def _check_index(self, step_index: int) -> int:
        if not 0 <= step_index < len(self.steps):
            raise InvalidError(
                f"The step index must be in [0, {len(self.steps)}). Got {step_index} instead.",
                field="step_index",
            )
        return step_index


class RampAction(StrEnum):
    """What the engine should do with the ramp."""

    ADVANCE = "advance"
    """Move to the next step (``RampDecision.step_index``)."""
    HOLD = "hold"
    """Stay on the current step."""
    COMPLETE = "complete"
    """The last step's minimums are met: the ramp is done; traffic stays at the last step."""


class RampReason(StrEnum):
    """Why a ramp decision was taken; stable codes for the audit log and the API."""

    MINIMUMS_MET = "minimums_met"
    MANUAL_ADVANCE = "manual_advance"
    MANUAL_HOLD = "manual_hold"
    GUARDRAILS_UNHEALTHY = "guardrails_unhealthy"
    GUARDRAILS_UNKNOWN = "guardrails_unknown"
    DURATION_NOT_MET = "duration_not_met"
    SAMPLES_NOT_MET = "samples_not_met"


@dataclass(frozen=True, slots=True)
class RampDecision:
    """The outcome of evaluating a ramp.

    Attributes:
        action: What to do.
        reason: Why, as a stable code (the most serious unmet condition when holding).
        detail: A sentence for people, listing every unmet condition.
        step_index: The step the experiment is on after acting on the decision.
        traffic: The treatment share of that step.
    """

    action: RampAction
    reason: RampReason
    detail: str
    step_index: int
    traffic: Decimal


def evaluate_ramp(
    schedule: RampSchedule,
    step_index: int,
    step_started_at: datetime,
    now: datetime,
    samples_per_arm: Mapping[str, int],
    guardrails_healthy: bool | None,
    *,
    manually_held: bool = False,
) -> RampDecision:
    """Decide whether a ramp may leave its current step.

    The ramp advances only when the step has run for its minimum duration, every arm has its
    minimum samples and the guardrails are known to be healthy. Unknown guardrail health
    (no verdict yet, stale data) holds: a ramp never advances on missing evidence.

    Args:
        schedule: The ramp schedule.
        step_index: The current step's 0-based index.
        step_started_at: When the current step started (aware, UTC).
        now: The current time (aware, UTC).
        samples_per_arm: Units seen per arm during the experiment, for *every* arm (an arm
            with no data must be present with 0).
        guardrails_healthy: The guardrail verdict; ``None`` when unknown.
        manually_held: An operator put the ramp on hold.

    Returns:
        The decision, with a reason code and a readable detail.

    Raises:
        InvalidError: If a datetime is naive or not UTC, the step index is out of range or a
            sample count is negative.
    """
    current = schedule.steps[schedule._check_index(step_index)]
    _check_utc(step_started_at, "step_started_at")
    _check_utc(now, "now")
    for arm, count in samples_per_arm.items():
        if count < 0:
            raise InvalidError(
                f"Sample counts must be >= 0. Got {count} for arm {arm!r}.",
                field="samples_per_arm",
            )

    def hold(reason: RampReason, detail: str) -> RampDecision:
        return RampDecision(RampAction.HOLD, reason, detail, step_index, current.traffic)

    if manually_held:
        return hold(RampReason.MANUAL_HOLD, "The ramp is on hold by an operator.")

    unmet: list[tuple[RampReason, str]] = []
    if guardrails_healthy is False:
        unmet.append((RampReason.GUARDRAILS_UNHEALTHY, "a guardrail is unhealthy"))
    elif guardrails_healthy is None:
        unmet.append((RampReason.GUARDRAILS_UNKNOWN, "guardrail health is unknown"))
    elapsed = now - step_started_at
    if elapsed < current.min_duration:
        unmet.append(
            (
                RampReason.DURATION_NOT_MET,
                f"the step has run {elapsed} of its minimum {current.min_duration}",
            )
        )
    short = {arm: n for arm, n in samples_per_arm.items() if n < current.min_samples_per_arm}
    if not samples_per_arm:
        unmet.append((RampReason.SAMPLES_NOT_MET, "no arm has reported samples"))
    elif short:
        listed = ", ".join(f"{arm}={n}" for arm, n in sorted(short.items()))
        unmet.append(
            (
                RampReason.SAMPLES_NOT_MET,
                f"arms below {current.min_samples_per_arm} samples: {listed}",
            )
        )
    if unmet:
        detail = "Holding step {}: {}.".format(step_index, "; ".join(text for _, text in unmet))
        return hold(unmet[0][0], detail)
    return _move_on(schedule, step_index, RampReason.MINIMUMS_MET)


def advance_ramp(schedule: RampSchedule, step_index: int) -> RampDecision:
    """An operator's manual advance: move to the next step regardless of the minimums.

    Args:
        schedule: The ramp schedule.
        step_index: The current step's 0-based index.

    Returns:
        ``ADVANCE`` to the next step, or ``COMPLETE`` on the last step.

    Raises:
        InvalidError: If the step index is out of range.
    """
    return _move_on(schedule, schedule._check_index(step_index), RampReason.MANUAL_ADVANCE)


def _move_on(schedule: RampSchedule, step_index: int, reason: RampReason) -> RampDecision:
    why = "minimums met" if reason is RampReason.MINIMUMS_MET else "manual advance"
    if step_index == len(schedule) - 1:
        traffic = schedule.steps[step_index].traffic
        detail = f"Ramp complete at {traffic} traffic ({why})."
        return RampDecision(RampAction.COMPLETE, reason, detail, step_index, traffic)
    nxt = schedule.steps[step_index + 1]
    detail = f"Advancing to step {step_index + 1} at {nxt.traffic} traffic ({why})."
    return RampDecision(RampAction.ADVANCE, reason, detail, step_index + 1, nxt.traffic)


def _check_utc(value: datetime, field: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidError(
            f"The '{field}' must be a timezone-aware UTC datetime. Got {value!r} instead.",
            field=field,
        )
    if value.utcoffset() != timedelta(0):
        raise InvalidError(
            f"The '{field}' must be in UTC. Got offset {value.utcoffset()} instead.",
            field=field,
        )
