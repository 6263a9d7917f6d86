"""Tests of the thread helpers: ordered bounded fan-out and the serial feed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from synapsenet.services.dataversion._parallel import SerialFeed, bounded_map


def test_bounded_map_keeps_input_order_and_runs_inline_without_threads() -> None:
    def square(n: int) -> int:
        time.sleep(0.001 * (n % 3))  # finish out of order
        return n * n

    assert list(bounded_map(square, range(20), 3)) == [n * n for n in range(20)]
    assert list(bounded_map(square, range(5), 0)) == [0, 1, 4, 9, 16]


@pytest.mark.parametrize(("threads", "ahead"), [(1, 2), (2, 2), (1, 8), (2, 3)])
def test_bounded_map_holds_at_most_ahead_times_threads_items_in_flight(
    threads: int, ahead: int
) -> None:
    taken = 0  # items consumed from the input
    yielded = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for n in range(50):
            taken += 1
            yield n

    most = 0
    for _ in bounded_map(lambda n: n, items(), threads, ahead=ahead):
        most = max(most, taken - yielded)  # taken but not yet yielded: in flight
        yielded += 1
    assert yielded == 50
    assert most == ahead * threads


def test_serial_feed_calls_in_order_and_is_done_when_the_block_ends() -> None:
    seen: list[int] = []

    def slow(n: int) -> None:
        time.sleep(0.001 * (n % 2))
        seen.append(n)

    with SerialFeed(slow, depth=3) as feed:
        for n in range(30):
            feed.put(n)
    assert seen == list(range(30))


class Held:
    """An ``fn`` that notes each item once ``release`` is set (or after 5 s)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[int] = []

    def __call__(self, n: int) -> None:
        self.release.wait(5)
        self.seen.append(n)


def test_serial_feed_put_waits_while_depth_items_wait() -> None:
    held = Held()
    feed = SerialFeed(held, depth=2)
    third_put = threading.Event()

    def producer() -> None:
        with feed:
            feed.put(1)
            feed.put(2)
            feed.put(3)  # two wait: blocks until the first is done
            third_put.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not third_put.wait(0.2)
    held.release.set()
    thread.join(5)
    assert third_put.is_set()
    assert held.seen == [1, 2, 3]


def test_serial_feed_raises_what_fn_raised_at_the_next_put_or_at_the_end() -> None:
    def fails_on_two(n: int) -> None:
        if n == 2:
            raise ValueError(f"bad item {n}")

    with pytest.raises(ValueError, match="bad item 2"), SerialFeed(fails_on_two) as feed:
        feed.put(1)
        feed.put(2)
    with pytest.raises(ValueError, match="bad item 2"), SerialFeed(fails_on_two, depth=1) as feed:
        for n in range(5):
            feed.put(n)


def test_serial_feed_left_by_an_exception_drops_waiting_items_without_waiting() -> None:
    held = Held()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="stop"), SerialFeed(held, depth=10) as feed:
        for n in range(5):
            feed.put(n)
        raise RuntimeError("stop")
    assert time.monotonic() - start < 2  # the held first item was not waited for
    held.release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("feed"):
            thread.join(5)
    assert held.seen == [0]  # the item running when the block was left, and no other
