"""CircuitBreaker: closed -> open -> half-open -> closed/open, on a fake clock."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapsenet.core.circuit import CircuitBreaker, CircuitOpenError, CircuitState
from synapsenet.errors import InvalidError, UnavailableError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def open_breaker(clock: FakeClock, threshold: int = 3, reset: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_timeout=reset, clock=clock)
    for _ in range(threshold):
        breaker.acquire()
        breaker.record_failure()
    return breaker


def test_new_breaker_is_closed_and_lets_calls_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()
    assert breaker.consecutive_failures == 0


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    states = [breaker.state]
    breaker.record_failure()
    states.append(breaker.state)
    assert states == [CircuitState.CLOSED, CircuitState.OPEN]


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


def test_open_circuit_rejects_with_unavailable_error_naming_target_and_wait(
    clock: FakeClock,
) -> None:
    breaker = open_breaker(clock, reset=30.0)
    clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire(target="http://registry:8000")
    error = caught.value
    assert isinstance(error, UnavailableError)
    assert error.status == 503
    assert error.retry_in == pytest.approx(20.0)
    assert "http://registry:8000" in error.detail
    assert "open" in error.detail
    assert "20.0 s" in error.detail
    assert error.to_problem()["retry_in"] == pytest.approx(20.0)


def test_half_open_after_reset_timeout_allows_exactly_one_trial(clock: FakeClock) -> None:
    breaker = open_breaker(clock, reset=30.0)
    clock.advance(30.0)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()
    with pytest.raises(CircuitOpenError, match="trial call is already in flight"):
        breaker.acquire()


def test_successful_trial_closes_the_circuit(clock: FakeClock) -> None:
    breaker = open_breaker(clock)
    clock.advance(30.0)
    breaker.acquire()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()
    breaker.acquire()


def test_failed_trial_opens_the_circuit_for_another_timeout(clock: FakeClock) -> None:
    breaker = open_breaker(clock, threshold=3, reset=30.0)
    clock.advance(31.0)
    breaker.acquire()
    breaker.record_failure()
    states = [breaker.state]
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(1.0)
    states.append(breaker.state)
    assert states == [CircuitState.OPEN, CircuitState.HALF_OPEN]


def test_abandoned_trial_lease_expires_after_reset_timeout(clock: FakeClock) -> None:
    breaker = open_breaker(clock, reset=30.0)
    clock.advance(30.0)
    breaker.acquire()  # its outcome is never recorded
    clock.advance(30.0)
    breaker.acquire()


def test_is_thread_safe_under_concurrent_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=10_000, clock=clock)
    barrier = threading.Barrier(8)

    def fail_many() -> None:
        barrier.wait()
        for _ in range(1000):
            breaker.record_failure()

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.consecutive_failures == 8000
    assert breaker.state is CircuitState.CLOSED


def test_only_one_of_many_threads_gets_the_half_open_trial(clock: FakeClock) -> None:
    breaker = open_breaker(clock)
    clock.advance(30.0)
    barrier = threading.Barrier(8)
    admitted: list[int] = []

    def try_call(i: int) -> None:
        barrier.wait()
        try:
            breaker.acquire()
        except CircuitOpenError:
            return
        admitted.append(i)

    threads = [threading.Thread(target=try_call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"failure_threshold": 0},
            "The 'failure_threshold' parameter of CircuitBreaker must be an int >= 1. "
            "Got 0 instead.",
        ),
        (
            {"failure_threshold": 2.5},
            "The 'failure_threshold' parameter of CircuitBreaker must be an int >= 1. "
            "Got 2.5 instead.",
        ),
        (
            {"reset_timeout": 0},
            "The 'reset_timeout' parameter of CircuitBreaker must be a float > 0. Got 0 instead.",
        ),
        (
            {"reset_timeout": float("nan")},
            "The 'reset_timeout' parameter of CircuitBreaker must be a float > 0. Got nan instead.",
        ),
    ],
)
def test_rejects_bad_parameters_with_one_message_format(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
    assert caught.value.detail == message
    assert caught.value.field == next(iter(kwargs))


class ReferenceModel:
    """The state machine written the obvious way, to check the breaker against."""

    def __init__(self, threshold: int, reset: float) -> None:
        self.threshold, self.reset = threshold, reset
        self.failures = 0
        self.opened_at: float | None = None

    def state(self, now: float) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if now - self.opened_at >= self.reset:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def outcome(self, ok: bool, now: float) -> None:
        if ok:
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = now


@given(
    threshold=st.integers(min_value=1, max_value=4),
    steps=st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 1.0, 5.0, 10.0])), max_size=40),
)
def test_matches_reference_state_machine(threshold: int, steps: list[tuple[bool, float]]) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=threshold, reset_timeout=10.0, clock=clock)
    model = ReferenceModel(threshold, 10.0)
    for ok, pause in steps:
        clock.advance(pause)
        assert breaker.state is model.state(clock.now)
        try:
            breaker.acquire()
        except CircuitOpenError:
            assert model.state(clock.now) is CircuitState.OPEN
            continue
        assert model.state(clock.now) is not CircuitState.OPEN
        if ok:
            breaker.record_success()
        else:
            breaker.record_failure()
        model.outcome(ok, clock.now)
        assert breaker.state is model.state(clock.now)
