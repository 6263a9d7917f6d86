"""A consumer process that takes one event and hangs before acknowledging it.

Run by ``test_redis_bus.py`` as ``python -m tests.core.redis_consumer_proc URL STREAM GROUP
CONSUMER READY_KEY``. Its handler writes the event id to ``READY_KEY`` and then sleeps, so the
test can SIGKILL it while the event is delivered but unacknowledged. It exits on its own after
``_LIFETIME_S`` in case the test never kills it.
"""

from __future__ import annotations

import sys
import time

import redis

from synapsenet.core.events import Event
from synapsenet.core.redis_bus import RedisStreamsEventBus

_LIFETIME_S = 60.0


def main(url: str, stream: str, group: str, consumer: str, ready_key: str) -> int:
    """Consume from ``group`` as ``consumer`` until killed (or the lifetime runs out)."""
    signal = redis.Redis.from_url(url)

    def hang_before_ack(event: Event) -> None:
        signal.set(ready_key, event.id)
        time.sleep(_LIFETIME_S)

    bus = RedisStreamsEventBus(url, stream=stream, consumer_name=consumer, start="earliest")
    deadline = time.monotonic() + _LIFETIME_S
    while time.monotonic() < deadline:
        bus.consume_once("*", hang_before_ack, group, block_ms=100)
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
