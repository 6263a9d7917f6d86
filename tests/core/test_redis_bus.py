"""RedisStreamsEventBus behaviour beyond the shared bus contract, against the real server.

Most tests drive :meth:`RedisStreamsEventBus.consume_once` directly, so rounds are
deterministic; waits on other processes or on idle timers use bounded polling.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from synapsenet.core.events import Event
from synapsenet.core.redis_bus import ConsumeResult, RedisStreamsEventBus
from synapsenet.errors import InvalidError, UnavailableError
from tests.fixtures.redis import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_bus(redis_url: str, redis_stream: str) -> Iterator[Callable[..., RedisStreamsEventBus]]:
    """Build buses on this test's stream (fast timings unless overridden); close them after."""
    buses: list[RedisStreamsEventBus] = []

    def make(**options: object) -> RedisStreamsEventBus:
        url = str(options.pop("url", redis_url))
        settings: dict[str, object] = {"stream": redis_stream, "block_ms": 50, **options}
        bus = RedisStreamsEventBus(url, **settings)  # type: ignore[arg-type]
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.close()


def _event(event_type: str = "billing.invoice.paid", **data: object) -> Event:
    return Event(type=event_type, source="/tests", data=dict(data))


def _fail(error: Exception) -> Callable[[Event], None]:
    def handler(event: Event) -> None:
        raise error

    return handler


def _consume_until(
    bus: RedisStreamsEventBus,
    handler: Callable[[Event], None],
    group: str,
    done: Callable[[], bool],
    *,
    pattern: str = "*",
    timeout: float = 10.0,
) -> ConsumeResult:
    """Run rounds (without blocking) until ``done``; the summed result of all rounds."""
    total = ConsumeResult()
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"consumer of {group!r} did not finish within {timeout:g}s: {total}")
        total += bus.consume_once(pattern, handler, group, block_ms=10)
    return total


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- redelivery -----------------------------------------------------------------------------


@pytest.mark.slow
def test_event_of_killed_consumer_process_is_redelivered_to_group_peer(
    make_bus: Callable[..., RedisStreamsEventBus],
    redis_client: redis.Redis,
    redis_stream: str,
    redis_key_prefix: str,
    redis_url: str,
) -> None:
    survivor = make_bus(start="earliest", claim_idle_ms=200, consumer_name="survivor")
    event = _event(invoice="INV-7")
    survivor.publish(event)
    ready_key = f"{redis_key_prefix}doomed-ready"
    command = [sys.executable, "-m", "tests.core.redis_consumer_proc"]
    doomed = subprocess.Popen(
        [*command, redis_url, redis_stream, "billing", "doomed", ready_key],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: redis_client.exists(ready_key) == 1 or doomed.poll() is not None,
            timeout=30,
            message="the consumer process to take the event",
        )
        assert doomed.poll() is None, doomed.communicate()[1].decode()
        assert redis_client.get(ready_key) == event.id
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        assert doomed.stderr is not None
        doomed.stderr.close()
    owners = redis_client.xpending_range(redis_stream, "billing", "-", "+", 10)
    assert [owner["consumer"] for owner in owners] == ["doomed"]

    received: list[Event] = []
    result = _consume_until(survivor, received.append, "billing", lambda: bool(received))

    assert [e.id for e in received] == [event.id]
    assert received[0] == event
    assert result.claimed == 1
    assert redis_client.xpending(redis_stream, "billing")["pending"] == 0


def test_event_failing_every_delivery_is_dead_lettered_with_its_error(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bus = make_bus(claim_idle_ms=20, max_deliveries=3)
    bus.ensure_group("billing")
    event = _event()
    bus.publish(event)
    attempts: list[str] = []

    def always_fails(received: Event) -> None:
        attempts.append(received.id)
        raise ValueError(f"cannot bill {received.subject}")

    result = _consume_until(bus, always_fails, "billing", lambda: bool(bus.dead_letters()))

    assert attempts == [event.id] * 3
    assert (result.failed, result.dead_lettered, result.handled) == (2, 1, 0)
    [dead] = bus.dead_letters()
    assert dead.group == "billing"
    assert dead.error == "ValueError: cannot bill None"
    assert dead.deliveries == 3
    assert dead.type == event.type
    assert dead.event == event
    assert bus.pending_count("billing") == 0
    # The last-error hash is cleaned up with the entry.
    assert redis_client.hlen(f"{redis_stream}:errors:billing") == 0


def test_entry_whose_last_consumer_died_is_dead_lettered_without_more_handling(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bus = make_bus(claim_idle_ms=20, max_deliveries=2)
    bus.ensure_group("billing")
    bus.publish(_event())
    calls: list[str] = []

    def fails_once(event: Event) -> None:
        calls.append(event.id)
        raise ConnectionResetError("ledger went away")

    assert bus.consume_once("*", fails_once, "billing").failed == 1
    # A second consumer takes the entry (its last allowed delivery) and dies without acking.
    time.sleep(0.03)
    claimed = redis_client.xautoclaim(redis_stream, "billing", "ghost", 20, "0-0")
    assert len(claimed[1]) == 1

    _consume_until(bus, fails_once, "billing", lambda: bool(bus.dead_letters()))

    assert len(calls) == 1
    [dead] = bus.dead_letters()
    assert dead.deliveries == 2
    assert dead.error == (
        "not acknowledged after 2 deliveries; last error: ConnectionResetError: ledger went away"
    )
    assert bus.pending_count("billing") == 0


def test_malformed_entries_are_dead_lettered_and_later_events_still_flow(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bus = make_bus()
    bus.ensure_group("audit")
    mismatched = _event("billing.invoice.paid").to_json()
    for fields in [
        {"type": "billing.invoice.paid"},
        {"type": "billing.invoice.paid", "event": "{not json"},
        {"event": _event().to_json()},
        {"type": "billing.invoice.sent", "event": mismatched},
        {"type": "billing.invoice.paid", "event": json.dumps({"type": "billing.x"})},
    ]:
        redis_client.xadd(redis_stream, fields)  # type: ignore[arg-type]
    good = _event()
    bus.publish(good)
    received: list[Event] = []

    result = bus.consume_once("*", received.append, "audit")

    assert (result.dead_lettered, result.handled) == (5, 1)
    assert received == [good]
    errors = [dead.error for dead in bus.dead_letters()]
    assert errors == [
        "malformed entry: the entry has no 'event' field",
        "malformed entry: the event is not JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)",
        "malformed entry: the entry has no 'type' field",
        "malformed entry: the entry's type 'billing.invoice.sent' differs from its event's "
        "'billing.invoice.paid'",
        "malformed entry: event is missing 'source'",
    ]
    assert all(dead.group == "audit" and dead.deliveries == 1 for dead in bus.dead_letters())
    assert bus.pending_count("audit") == 0


def test_entry_deleted_before_it_was_acknowledged_is_reported_as_dead_letter(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bus = make_bus(claim_idle_ms=20)
    bus.ensure_group("billing")
    bus.publish(_event())
    assert bus.consume_once("*", _fail(RuntimeError("later")), "billing").failed == 1
    [entry_id] = [str(entry[0]) for entry in redis_client.xrange(redis_stream) or []]
    redis_client.xdel(redis_stream, entry_id)

    _consume_until(
        bus, _fail(AssertionError("unreachable")), "billing", lambda: bool(bus.dead_letters())
    )

    [dead] = bus.dead_letters()
    assert dead.stream_id == entry_id
    assert dead.error.startswith("deleted from the stream (trimmed or XDEL) before group")
    assert dead.error.endswith("last error: RuntimeError: later")
    assert bus.pending_count("billing") == 0


def test_events_of_other_types_are_acknowledged_without_handling(
    make_bus: Callable[..., RedisStreamsEventBus],
) -> None:
    bus = make_bus()
    bus.ensure_group("abtesting")
    bus.publish(_event("billing.invoice.paid"))
    wanted = _event("abtesting.experiment.ramped")
    bus.publish(wanted)
    received: list[Event] = []

    result = bus.consume_once("abtesting.*", received.append, "abtesting")

    assert (result.skipped, result.handled) == (1, 1)
    assert received == [wanted]
    assert bus.pending_count("abtesting") == 0


# -- group creation and retention ---------------------------------------------------------


def test_new_group_starts_at_latest_or_earliest_as_configured(
    make_bus: Callable[..., RedisStreamsEventBus],
) -> None:
    earlier = _event(n=1)
    latest_bus = make_bus(start="latest")
    earliest_bus = make_bus(start="earliest")
    latest_bus.publish(earlier)
    latest_bus.ensure_group("from-latest")
    earliest_bus.ensure_group("from-earliest")
    later = _event(n=2)
    latest_bus.publish(later)
    from_latest: list[Event] = []
    from_earliest: list[Event] = []

    latest_bus.consume_once("*", from_latest.append, "from-latest")
    earliest_bus.consume_once("*", from_earliest.append, "from-earliest")

    assert from_latest == [later]
    assert from_earliest == [earlier, later]


def test_existing_group_keeps_its_position_whatever_start_says(
    make_bus: Callable[..., RedisStreamsEventBus],
) -> None:
    first_bus = make_bus(start="latest")
    first_bus.ensure_group("billing")
    first_bus.publish(_event(n=1))
    assert first_bus.consume_once("*", lambda event: None, "billing").handled == 1
    later = _event(n=2)
    first_bus.publish(later)
    received: list[Event] = []

    make_bus(start="earliest").consume_once("*", received.append, "billing")

    assert received == [later]


def test_max_len_keeps_the_stream_approximately_bounded(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bounded = make_bus(max_len=50)
    node_size = int(
        str(redis_client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    )

    for i in range(600):
        bounded.publish(_event(n=i))

    # "MAXLEN ~" trims whole radix-tree nodes only, so up to one node's worth stays on top.
    assert 50 <= redis_client.xlen(redis_stream) <= 50 + node_size


def test_max_len_none_keeps_every_event(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    unbounded = make_bus(max_len=None)

    for i in range(300):
        unbounded.publish(_event(n=i))

    assert redis_client.xlen(redis_stream) == 300


def test_consumes_when_the_url_asks_for_resp3(
    make_bus: Callable[..., RedisStreamsEventBus], redis_url: str
) -> None:
    separator = "&" if "?" in redis_url else "?"
    bus = make_bus(url=f"{redis_url}{separator}protocol=3", claim_idle_ms=20)
    bus.ensure_group("resp3")
    event = _event()
    bus.publish(event)
    received: list[Event] = []

    assert bus.consume_once("*", _fail(RuntimeError("once")), "resp3").failed == 1
    _consume_until(bus, received.append, "resp3", lambda: bool(received))

    assert received == [event]


def test_group_deleted_under_a_consumer_is_recreated(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bus = make_bus()
    bus.ensure_group("audit")
    redis_client.xgroup_destroy(redis_stream, "audit")

    result = bus.consume_once("*", lambda event: None, "audit")

    assert result.total == 0
    assert [g["name"] for g in redis_client.xinfo_groups(redis_stream)] == ["audit"]


# -- subscriptions and lifecycle ------------------------------------------------------------


def test_subscriptions_in_one_group_get_distinct_consumers_removed_on_close(
    make_bus: Callable[..., RedisStreamsEventBus], redis_client: redis.Redis, redis_stream: str
) -> None:
    bus = make_bus(consumer_name="api-1")
    handled: list[Event] = []
    first = bus.subscribe("*", handled.append, "audit")
    second = bus.subscribe("*", handled.append, "audit")
    assert (first.consumer, second.consumer) == ("api-1", "api-1-2")
    for i in range(4):
        bus.publish(_event(n=i))
    wait_until(lambda: len(handled) == 4, message="4 deliveries")
    assert redis_client.xinfo_consumers(redis_stream, "audit") != []

    first.close()
    second.close()

    assert not first.running
    assert not second.running
    assert redis_client.xinfo_consumers(redis_stream, "audit") == []


def test_close_stops_every_worker_and_refuses_further_use(
    make_bus: Callable[..., RedisStreamsEventBus],
) -> None:
    bus = make_bus()
    subscriptions = [bus.subscribe("*", lambda event: None, group) for group in ("a", "b")]

    bus.close()
    bus.close()

    assert not any(subscription.running for subscription in subscriptions)
    assert not [t for t in threading.enumerate() if t.name.startswith("redis-bus:")]
    with pytest.raises(UnavailableError, match="closed"):
        bus.publish(_event())
    with pytest.raises(UnavailableError, match="closed"):
        bus.subscribe("*", lambda event: None, "c")


def test_handler_may_close_its_own_subscription(
    make_bus: Callable[..., RedisStreamsEventBus],
) -> None:
    bus = make_bus()
    holder: list[object] = []

    def close_self(event: Event) -> None:
        subscription.close()
        holder.append(event)

    subscription = bus.subscribe("*", close_self, "once")
    bus.publish(_event())

    wait_until(lambda: not subscription.running, message="the worker to stop")
    assert len(holder) == 1


# -- failures and validation ----------------------------------------------------------------


def test_unreachable_redis_raises_unavailable_quickly() -> None:
    port = _closed_port()
    bus = RedisStreamsEventBus(
        f"redis://127.0.0.1:{port}/0", connect_timeout=0.5, socket_timeout=1.0, block_ms=100
    )
    try:
        started = time.monotonic()
        with pytest.raises(UnavailableError, match=rf"Redis at 127\.0\.0\.1:{port} is unreachable"):
            bus.publish(_event())
        assert time.monotonic() - started < 2.0
        with pytest.raises(UnavailableError):
            bus.ping()
        with pytest.raises(UnavailableError):
            bus.subscribe("*", lambda event: None, "audit")
    finally:
        bus.close()


def test_ping_succeeds_on_the_real_server(make_bus: Callable[..., RedisStreamsEventBus]) -> None:
    make_bus().ping()


@pytest.mark.parametrize(
    ("options", "expectation"),
    [
        ({"batch_size": 0}, "must be an int >= 1. Got 0 instead."),
        ({"batch_size": True}, "must be an int >= 1. Got True instead."),
        ({"block_ms": 0}, "must be an int >= 1. Got 0 instead."),
        (
            {"block_ms": 5000},
            "must be an int below the socket timeout (5000 ms). Got 5000 instead.",
        ),
        ({"claim_idle_ms": -5}, "must be an int >= 1. Got -5 instead."),
        ({"max_deliveries": 0}, "must be an int >= 1. Got 0 instead."),
        ({"max_len": 0}, "must be an int >= 1 or None. Got 0 instead."),
        ({"start": "middle"}, "must be one of 'latest', 'earliest'. Got 'middle' instead."),
        ({"stream": ""}, "must be a non-empty str. Got '' instead."),
        ({"consumer_name": " "}, "must be a non-empty str. Got ' ' instead."),
        ({"connect_timeout": 0}, "must be a number of seconds > 0. Got 0 instead."),
        ({"socket_timeout": -1.0}, "must be a number of seconds > 0. Got -1.0 instead."),
        (
            {"url": "http://user:secret@example.com"},
            "must be a redis://, rediss:// or unix:// URL. "
            "Got 'http://user:***@example.com' instead",
        ),
    ],
)
def test_invalid_parameters_are_rejected_with_one_message_format(
    options: dict[str, object], expectation: str
) -> None:
    [name] = options
    url = str(options.pop("url", "redis://127.0.0.1:6379/0"))

    with pytest.raises(InvalidError) as caught:
        RedisStreamsEventBus(url, **options)  # type: ignore[arg-type]

    assert caught.value.detail.startswith(
        f"The {name!r} parameter of RedisStreamsEventBus {expectation}"
    )
    assert caught.value.field == name


def test_consume_once_rejects_bad_arguments(make_bus: Callable[..., RedisStreamsEventBus]) -> None:
    bus = make_bus()

    with pytest.raises(InvalidError, match=r"'block_ms' parameter .* must be an int >= 0\. Got -1"):
        bus.consume_once("*", lambda event: None, "audit", block_ms=-1)
    with pytest.raises(InvalidError, match=r"'group' parameter .* must be a non-empty str"):
        bus.subscribe("*", lambda event: None, "")
