"""A circuit breaker: stop calling a peer that keeps failing, then probe it now and then.

A breaker is *closed* while calls succeed. After ``failure_threshold`` consecutive failures
it *opens* and rejects every call at once, so a dead peer costs callers nothing and gets
time to recover. After ``reset_timeout`` seconds it is *half-open*: it lets one trial call
through; success closes it, failure opens it for another ``reset_timeout``.

The breaker only keeps score; the caller decides what a failure is
(:class:`~synapsenet.core.client.ServiceClient` counts transport errors and 5xx responses).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

from synapsenet.errors import InvalidError, UnavailableError


class CircuitState(enum.Enum):
    """Where a :class:`CircuitBreaker` stands."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """Calls are rejected without being made."""
    HALF_OPEN = "half-open"
    """The reset timeout has passed: one trial call may go through."""


class CircuitOpenError(UnavailableError):
    """A call was rejected because the circuit to its target is open.

    Attributes:
        target: What the circuit protects (usually a base URL).
        retry_in: Seconds until the breaker allows a trial call.
    """

    def __init__(self, target: str, retry_in: float, *, trial_in_flight: bool = False) -> None:
        reason = (
            "a trial call is already in flight" if trial_in_flight else "after repeated failures"
        )
        super().__init__(
            f"The circuit to {target} is open ({reason}); the call was not attempted. "
            f"The next trial call is allowed in {retry_in:.1f} s.",
            retry_in=round(retry_in, 3),
        )
        self.target = target
        self.retry_in = retry_in


class CircuitBreaker:
    """Counts consecutive failures of calls to one peer and rejects calls while it is down.

    Thread-safe: one breaker is shared by every thread that calls the peer.

    Args:
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before it allows a trial call.
        clock: Monotonic clock in seconds; tests pass a fake one.

    Example:
        >>> breaker = CircuitBreaker(failure_threshold=2, reset_timeout=10.0)
        >>> breaker.record_failure(); breaker.record_failure()
        >>> breaker.state
        <CircuitState.OPEN: 'open'>
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (
            not isinstance(failure_threshold, int)
            or isinstance(failure_threshold, bool)
            or failure_threshold < 1
        ):
            raise InvalidError(
                "The 'failure_threshold' parameter of CircuitBreaker must be an int >= 1. "
                f"Got {failure_threshold!r} instead.",
                field="failure_threshold",
            )
        if (
            not isinstance(reset_timeout, int | float)
            or isinstance(reset_timeout, bool)
            or not reset_timeout > 0
        ):
            raise InvalidError(
                "The 'reset_timeout' parameter of CircuitBreaker must be a float > 0. "
                f"Got {reset_timeout!r} instead.",
                field="reset_timeout",
            )
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_started_at: float | None = None

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit turns half-open once its timeout has passed."""
        with self._lock:
            if self._opened_at is None:
                return CircuitState.CLOSED
            if self.clock() - self._opened_at >= self.reset_timeout:
                return CircuitState.HALF_OPEN
            return CircuitState.OPEN

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        with self._lock:
            return self._failures

    def acquire(self, target: str = "the service") -> None:
        """Ask permission to make one call.

        Args:
            target: What the circuit protects, named in the error message.

        Raises:
            CircuitOpenError: The circuit is open, or half-open with its one trial call
                still in flight.
        """
        with self._lock:
            if self._opened_at is None:
                return
            now = self.clock()
            reopen_at = self._opened_at + self.reset_timeout
            if now < reopen_at:
                raise CircuitOpenError(target, reopen_at - now)
            # A trial whose outcome never got recorded (the caller died) must not keep the
            # circuit shut forever, so a trial lease expires after one reset timeout.
            if self._trial_started_at is not None:
                lease_ends = self._trial_started_at + self.reset_timeout
                if now < lease_ends:
                    raise CircuitOpenError(target, lease_ends - now, trial_in_flight=True)
            self._trial_started_at = now

    def record_success(self) -> None:
        """Record a call that reached the peer and got a sane answer; closes the circuit."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_started_at = None

    def record_failure(self) -> None:
        """Record a failed call; opens the circuit at the threshold or after a failed trial."""
        with self._lock:
            self._failures += 1
            if self._opened_at is not None or self._failures >= self.failure_threshold:
                self._opened_at = self.clock()
                self._trial_started_at = None

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_threshold={self.failure_threshold}, "
            f"reset_timeout={self.reset_timeout}, state={self.state.value!r})"
        )
