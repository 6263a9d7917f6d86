"""The worker thread behind one subscription to the Redis Streams event bus.

:class:`RedisSubscription` is re-exported by :mod:`synapsenet.core.redis_bus`; it runs
:meth:`~synapsenet.core.redis_bus.RedisStreamsEventBus.consume_once` in a loop until closed.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Final

from synapsenet.core.events import EventHandler

if TYPE_CHECKING:
    from synapsenet.core.redis_bus import RedisStreamsEventBus

# The bus's logger, so that logging configuration for the bus covers its workers too.
logger = logging.getLogger("synapsenet.core.redis_bus")

# Pause after a failed worker round, doubled up to the cap while Redis stays unreachable.
_WORKER_BACKOFF_S: Final = 0.05
_WORKER_BACKOFF_CAP_S: Final = 5.0


class RedisSubscription:
    """A background worker consuming one group's events for one handler.

    Created by :meth:`RedisStreamsEventBus.subscribe`; :meth:`close` stops the worker.

    Attributes:
        type_pattern: Glob over event types this subscription handles.
        group: The consumer group.
        consumer: This worker's consumer name within the group.
    """

    def __init__(
        self,
        bus: RedisStreamsEventBus,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        consumer: str,
    ) -> None:
        self.type_pattern = type_pattern
        self.handler = handler
        self.group = group
        self.consumer = consumer
        self._bus = bus
        self._stop = threading.Event()
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"redis-bus:{group}:{consumer}", daemon=True
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread.is_alive()

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        bus = self._bus
        # Claiming more often than half the idle threshold finds nothing new.
        claim_interval_s = bus.claim_idle_ms / 2000
        next_claim = 0.0
        backoff = _WORKER_BACKOFF_S
        while not self._stop.is_set():
            claim = time.monotonic() >= next_claim
            try:
                result = bus.consume_once(
                    self.type_pattern,
                    self.handler,
                    self.group,
                    consumer=self.consumer,
                    block_ms=bus.block_ms,
                    claim=claim,
                )
            except Exception:
                if self._stop.is_set() or bus.closed:
                    break
                logger.warning(
                    "event bus worker %s/%s failed a round; retrying in %.2fs",
                    self.group,
                    self.consumer,
                    backoff,
                    exc_info=True,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _WORKER_BACKOFF_CAP_S)
                continue
            backoff = _WORKER_BACKOFF_S
            if claim:
                # A full batch means more idle entries may be waiting: claim again at once.
                more = result.claimed >= bus.batch_size
                next_claim = time.monotonic() + (0.0 if more else claim_interval_s)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker and wait for it to finish its current round.

        Entries the worker has read but not acknowledged stay pending in the group, and
        another consumer reclaims them after ``claim_idle_ms``.

        Args:
            timeout: Seconds to wait for the worker; by default the bus's ``block_ms`` plus
                its socket timeout. A worker still busy after that (a stuck handler) is left
                to finish in the background and logged.
        """
        with self._close_lock:
            if self._stop.is_set() and not self._thread.is_alive():
                return
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join(self._bus._default_join_timeout() if timeout is None else timeout)
                if self._thread.is_alive():
                    logger.warning(
                        "event bus worker %s/%s did not stop in time; left running",
                        self.group,
                        self.consumer,
                    )
            self._bus._release(self)
