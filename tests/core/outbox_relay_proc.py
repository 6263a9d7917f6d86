"""A relay process that dies (SIGKILL) right after publishing its Nth event.

Usage: python -m tests.core.outbox_relay_proc DATABASE_URL REDIS_URL STREAM KILL_AFTER
"""

from __future__ import annotations

import os
import signal
import sys

from synapsenet.core.db import Database
from synapsenet.core.events import Event
from synapsenet.core.outbox import OutboxRelay
from synapsenet.core.redis_bus import RedisStreamsEventBus


class DyingBus(RedisStreamsEventBus):
    """The real Redis bus, in a process that is killed mid-batch."""

    def __init__(self, url: str, stream: str, kill_after: int) -> None:
        super().__init__(url, stream=stream)
        self.kill_after = kill_after
        self.published = 0

    def publish(self, event: Event) -> None:
        super().publish(event)
        self.published += 1
        if self.published == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    database_url, redis_url, stream, kill_after = sys.argv[1:5]
    relay = OutboxRelay(Database(database_url), DyingBus(redis_url, stream, int(kill_after)))
    relay.drain()


if __name__ == "__main__":
    main()
