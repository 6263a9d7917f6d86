"""The Redis Streams event bus: one stream, one consumer group per subscriber group.

Keys, all derived from the ``stream`` name (a hash tag such as ``{synapsenet}:events`` keeps
them in one Redis Cluster slot):

- ``<stream>``: the events; each entry has a ``type`` field (so consumers can filter without
  parsing) and an ``event`` field (the CloudEvents structured JSON).
- ``<stream>:dead``: dead letters, one entry per (entry, group) that could not be handled,
  with the group, the last error and the delivery count. Never trimmed: humans read it.
- ``<stream>:errors:<group>``: hash of the last handler error per still-pending entry id, so
  whichever consumer finally dead-letters an entry can say why it kept failing, even when the
  consumer that saw the error has died since.

Delivery is at least once. A handler that raises leaves its entry pending; any consumer of the
group reclaims it with ``XAUTOCLAIM`` once it has been idle for ``claim_idle_ms`` (which must
therefore exceed the longest handler run), and after ``max_deliveries`` deliveries the entry
goes to the dead-letter stream.

This module holds the bus itself and re-exports its public companions: the worker of a
subscription lives in ``_redis_subscription``, and the entry layout, reply parsing, result
records and parameter checks in ``_redis_streams``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from synapsenet.core._redis_streams import (
    _OWNER,
    EVENT_FIELD,
    TYPE_FIELD,
    ConsumeResult,
    StreamDeadLetter,
    _check_int,
    _check_seconds,
    _check_text,
    _decode_entry,
    _default_consumer_name,
    _describe_server,
    _Fields,
    _invalid,
    _Outcome,
    _redact,
    _stream_entries,
)
from synapsenet.core._redis_subscription import RedisSubscription
from synapsenet.core.events import Event, EventHandler, type_matches
from synapsenet.errors import InvalidError, UnavailableError

__all__ = [
    "EVENT_FIELD",
    "TYPE_FIELD",
    "ConsumeResult",
    "RedisStreamsEventBus",
    "RedisSubscription",
    "StartPosition",
    "StreamDeadLetter",
]

logger = logging.getLogger(__name__)

StartPosition = Literal["latest", "earliest"]
"""Where a newly created consumer group starts: new events only, or the whole stream."""

_GROUP_START_IDS: Final[dict[str, str]] = {"latest": "$", "earliest": "0"}


class RedisStreamsEventBus:
    """The event bus on Redis Streams, for deployments past one process.

    Every subscriber group is a Redis consumer group on one stream, so every group receives
    every event and, within a group, each event goes to one consumer. Subscriptions run a
    background thread each; :meth:`consume_once` runs one round synchronously for tests and
    job runners (the threads call it in a loop).

    Args:
        url: Redis URL (``redis://``, ``rediss://`` or ``unix://``). Query options such as
            ``socket_timeout`` override the keyword arguments, as in redis-py.
        stream: Stream key; the dead-letter stream and error hashes are named after it.
        consumer_name: This process's consumer name within each group; by default
            ``<host>-<pid>-<random>``. A second subscription to the same group from this bus
            gets a numbered suffix.
        block_ms: How long a worker blocks waiting for new events per round; also bounds how
            long closing a subscription waits.
        batch_size: Entries read or claimed per round.
        claim_idle_ms: Pending entries idle longer than this are reclaimed and redelivered.
            Must exceed the longest handler run, or slow handlers get duplicate deliveries.
        max_deliveries: Deliveries to one group after which an entry is dead-lettered.
        max_len: Approximate stream length kept on publish (``MAXLEN ~``); ``None`` keeps
            everything. It must cover the backlog of the slowest group: entries trimmed
            before a group reads them are lost to it.
        start: Where a consumer group created by this bus starts: ``"latest"`` (events
            published from now on) or ``"earliest"`` (the whole stream).
        connect_timeout: Seconds to wait for a TCP connection.
        socket_timeout: Seconds to wait for a reply; must exceed ``block_ms``.

    Raises:
        InvalidError: When a parameter is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "synapsenet:events",
        consumer_name: str | None = None,
        block_ms: int = 1000,
        batch_size: int = 100,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        max_len: int | None = 1_000_000,
        start: StartPosition = "latest",
        connect_timeout: float = 2.0,
        socket_timeout: float = 5.0,
    ) -> None:
        _check_text("stream", stream)
        _check_int("block_ms", block_ms, minimum=1)
        if consumer_name is not None:
            _check_text("consumer_name", consumer_name)
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("claim_idle_ms", claim_idle_ms, minimum=1)
        _check_int("max_deliveries", max_deliveries, minimum=1)
        if max_len is not None:
            _check_int("max_len", max_len, minimum=1, or_none=True)
        if start not in _GROUP_START_IDS:
            raise _invalid("start", "one of 'latest', 'earliest'", start)
        _check_seconds("connect_timeout", connect_timeout)
        _check_seconds("socket_timeout", socket_timeout)
        try:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                # Valid events are ASCII JSON; foreign bytes must not make reads fail forever.
                encoding_errors="replace",
                # RESP2 reply shapes are the documented ones; _stream_entries copes with both.
                protocol=2,
                socket_connect_timeout=connect_timeout,
                socket_timeout=socket_timeout,
                # Rides out a dropped connection or a failover, yet fails fast when Redis is down.
                retry=Retry(ExponentialBackoff(cap=0.25, base=0.025), retries=2),
            )
        except ValueError as exc:
            raise InvalidError(
                f"The 'url' parameter of {_OWNER} must be a redis://, rediss:// or unix:// "
                f"URL. Got {_redact(url)!r} instead ({exc}).",
                field="url",
            ) from None
        self._socket_timeout: float | None = client.connection_pool.connection_kwargs.get(
            "socket_timeout", socket_timeout
        )
        self._check_block_ms("block_ms", block_ms)

        self.stream = stream
        self.dead_letter_stream = f"{stream}:dead"
        self.consumer_name = consumer_name or _default_consumer_name()
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.max_len = max_len
        self.start: StartPosition = start
        self._redis = client
        self._where = _describe_server(client)
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._ready_groups: set[str] = set()
        self._subscriptions: list[RedisSubscription] = []
        self._consumers_in_use: dict[str, set[str]] = {}
        self._claim_cursors: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r}, stream={self.stream!r})"

    def __enter__(self) -> RedisStreamsEventBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- producing -------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Append ``event`` to the stream; returns once Redis has accepted it.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._redis_errors("publish to"):
            self._redis.xadd(
                self.stream,
                {TYPE_FIELD: event.type, EVENT_FIELD: event.to_json()},
                maxlen=self.max_len,
                approximate=True,
            )

    # -- consuming -------------------------------------------------------------------------

    def subscribe(self, type_pattern: str, handler: EventHandler, group: str) -> RedisSubscription:
        """Start a background worker delivering matching events to ``handler`` in ``group``.

        The consumer group is created first (from ``start``), so every event published after
        this call returns reaches the group. Subscriptions of one group share its events, so
        they should use the same ``type_pattern``: an event one member skips is acknowledged
        for the whole group.

        Args:
            type_pattern: Glob over dotted event types, e.g. ``abtesting.*``.
            handler: Called once per event; raising leaves the event for redelivery.
            group: The consumer group.

        Returns:
            The running subscription; close it to stop the worker.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        _check_text("type_pattern", type_pattern)
        _check_text("group", group)
        self.ensure_group(group)
        with self._lock:
            if self._closing:
                raise UnavailableError("the Redis event bus is closed")
            in_use = self._consumers_in_use.setdefault(group, set())
            consumer = self.consumer_name
            suffix = 1
            while consumer in in_use:
                suffix += 1
                consumer = f"{self.consumer_name}-{suffix}"
            in_use.add(consumer)
            subscription = RedisSubscription(self, type_pattern, handler, group, consumer)
            self._subscriptions.append(subscription)
        subscription._start()
        return subscription

    def ensure_group(self, group: str) -> None:
        """Create consumer group ``group`` (and the stream) unless it exists.

        A new group starts at ``start``; an existing group keeps its position.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._lock:
            if group in self._ready_groups:
                return
        with self._redis_errors("create a consumer group on"):
            try:
                self._redis.xgroup_create(
                    self.stream, group, id=_GROUP_START_IDS[self.start], mkstream=True
                )
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise
        with self._lock:
            self._ready_groups.add(group)

    def consume_once(
        self,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        *,
        consumer: str | None = None,
        block_ms: int = 0,
        claim: bool = True,
    ) -> ConsumeResult:
        """Run one consuming round synchronously, as a subscription's worker does.

        The round first reclaims entries of ``group`` idle longer than ``claim_idle_ms`` (when
        ``claim``), then reads up to ``batch_size`` new entries. Each entry is handled,
        skipped, left pending or dead-lettered as described in the module docstring.

        Args:
            type_pattern: Glob over dotted event types, e.g. ``abtesting.*``.
            handler: Called once per matching event; raising leaves it for redelivery.
            group: The consumer group (created if missing).
            consumer: Consumer name within the group; by default :attr:`consumer_name`.
            block_ms: How long to wait for new entries when none are there (0: do not wait).
                Not used when the round reclaimed entries.
            claim: Whether to reclaim idle pending entries first.

        Returns:
            What the round did, by outcome.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        _check_text("type_pattern", type_pattern)
        _check_text("group", group)
        if consumer is not None:
            _check_text("consumer", consumer)
        _check_int("block_ms", block_ms, minimum=0)
        self._check_block_ms("block_ms", block_ms)
        name = consumer or self.consumer_name
        self.ensure_group(group)
        with self._redis_errors("consume from"):
            try:
                return self._consume_round(type_pattern, handler, group, name, block_ms, claim)
            except ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                # The stream or group was deleted under us: recreate it and try again.
                logger.warning("consumer group %s vanished from %s; recreating", group, self.stream)
                with self._lock:
                    self._ready_groups.discard(group)
                self.ensure_group(group)
                return self._consume_round(type_pattern, handler, group, name, block_ms, claim)

    def _consume_round(
        self,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        consumer: str,
        block_ms: int,
        claim: bool,
    ) -> ConsumeResult:
        outcomes: list[_Outcome] = []
        skipped: list[str] = []
        claimed = 0
        if claim:
            entries, deleted = self._claim_idle(group, consumer)
            claimed = len(entries) + len(deleted)
            for entry_id in deleted:
                self._dead_letter(
                    group,
                    consumer,
                    entry_id,
                    {},
                    deliveries=0,
                    error=f"deleted from the stream (trimmed or XDEL) before group {group!r} "
                    "acknowledged it" + self._last_error_suffix(group, entry_id),
                )
                outcomes.append("dead_lettered")
            for entry_id, fields, deliveries in entries:
                outcome = self._process(
                    type_pattern, handler, group, consumer, entry_id, fields, deliveries
                )
                if outcome == "skipped":
                    skipped.append(entry_id)
                outcomes.append(outcome)
        # XREADGROUP BLOCK 0 waits forever, so "do not wait" means no BLOCK at all; and
        # reclaimed work should not be held up waiting for new entries.
        block = block_ms if block_ms > 0 and not outcomes else None
        reply = self._redis.xreadgroup(
            group, consumer, {self.stream: ">"}, count=self.batch_size, block=block
        )
        for entry_id, fields in _stream_entries(reply):
            # An entry read with ">" is on its first delivery.
            outcome = self._process(type_pattern, handler, group, consumer, entry_id, fields, 1)
            if outcome == "skipped":
                skipped.append(entry_id)
            outcomes.append(outcome)
        if skipped:
            self._redis.xack(self.stream, group, *skipped)
        return ConsumeResult(
            handled=outcomes.count("handled"),
            skipped=outcomes.count("skipped"),
            failed=outcomes.count("failed"),
            dead_lettered=outcomes.count("dead_lettered"),
            claimed=claimed,
        )

    def _claim_idle(
        self, group: str, consumer: str
    ) -> tuple[list[tuple[str, _Fields, int]], list[str]]:
        """Take over entries idle past ``claim_idle_ms``; return them with delivery counts."""
        key = (group, consumer)
        with self._lock:
            cursor = self._claim_cursors.get(key, "0-0")
        reply = self._redis.xautoclaim(
            self.stream, group, consumer, self.claim_idle_ms, cursor, count=self.batch_size
        )
        next_cursor = str(reply[0])
        replied = cast(list[tuple[str, _Fields | None]], reply[1])
        # Redis 7 reports entries deleted from the stream separately (and drops them from
        # the pending list); Redis 6.2 returns them with no fields instead.
        deleted = [str(i) for i in reply[2]] if len(reply) > 2 else []
        deleted += [entry_id for entry_id, fields in replied if fields is None]
        entries = [(entry_id, fields) for entry_id, fields in replied if fields is not None]
        with self._lock:
            self._claim_cursors[key] = next_cursor
        if not entries:
            return [], deleted
        # XAUTOCLAIM does not report delivery counts; XPENDING does, one id at a time.
        pipe = self._redis.pipeline(transaction=False)
        for entry_id, _ in entries:
            pipe.xpending_range(
                self.stream, group, min=entry_id, max=entry_id, count=1, consumername=consumer
            )
        details = cast(list[list[dict[str, Any]]], pipe.execute())
        claimed: list[tuple[str, _Fields, int]] = []
        for (entry_id, fields), detail in zip(entries, details, strict=True):
            if detail:  # else another consumer claimed it meanwhile: it is theirs now
                claimed.append((entry_id, fields, int(detail[0]["times_delivered"])))
        return claimed, deleted

    def _process(
        self,
        type_pattern: str,
        handler: EventHandler,
        group: str,
        consumer: str,
        entry_id: str,
        fields: _Fields,
        deliveries: int,
    ) -> _Outcome:
        """Deliver one entry; return its outcome (a :class:`ConsumeResult` field name)."""
        event_type = fields.get(TYPE_FIELD)
        if event_type is not None and not type_matches(type_pattern, event_type):
            return "skipped"
        if deliveries > self.max_deliveries:
            # The consumer of the last allowed delivery died or hung before acknowledging.
            last_error = self._last_error_suffix(group, entry_id)
            error = f"not acknowledged after {deliveries - 1} deliveries{last_error}"
            self._dead_letter(group, consumer, entry_id, fields, deliveries - 1, error)
            return "dead_lettered"
        try:
            event = _decode_entry(fields)
        except InvalidError as exc:
            self._dead_letter(
                group, consumer, entry_id, fields, deliveries, f"malformed entry: {exc.detail}"
            )
            return "dead_lettered"
        try:
            handler(event)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if deliveries >= self.max_deliveries:
                self._dead_letter(group, consumer, entry_id, fields, deliveries, error)
                return "dead_lettered"
            logger.warning(
                "handler of group %s failed on event %s (delivery %d of %d): %s",
                group,
                event.id,
                deliveries,
                self.max_deliveries,
                error,
            )
            self._redis.hset(self._errors_key(group), entry_id, error)
            return "failed"
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(self.stream, group, entry_id)
        if deliveries > 1:
            pipe.hdel(self._errors_key(group), entry_id)
        pipe.execute()
        return "handled"

    def _dead_letter(
        self,
        group: str,
        consumer: str,
        entry_id: str,
        fields: _Fields,
        deliveries: int,
        error: str,
    ) -> None:
        record: dict[str, str] = {
            "stream_id": entry_id,
            "group": group,
            "consumer": consumer,
            "error": error,
            "deliveries": str(deliveries),
            TYPE_FIELD: fields.get(TYPE_FIELD, ""),
            EVENT_FIELD: fields.get(EVENT_FIELD, ""),
        }
        if set(fields) - {TYPE_FIELD, EVENT_FIELD}:
            record["entry"] = json.dumps(fields, sort_keys=True)
        # One transaction, so an entry is never acknowledged without its dead letter written.
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self.dead_letter_stream, cast(dict[Any, Any], record))
        # Also for deleted entries: Redis 7 has already dropped them from the pending list
        # (a no-op then), Redis 6.2 has not.
        pipe.xack(self.stream, group, entry_id)
        pipe.hdel(self._errors_key(group), entry_id)
        pipe.execute()
        logger.error(
            "entry %s of %s dead-lettered for group %s after %d deliveries: %s",
            entry_id,
            self.stream,
            group,
            deliveries,
            error,
        )

    def _last_error_suffix(self, group: str, entry_id: str) -> str:
        # decode_responses=True: redis-py's bytes-or-str annotation is str here.
        last = cast(str | None, self._redis.hget(self._errors_key(group), entry_id))
        return f"; last error: {last}" if last else "; no handler error recorded"

    def _errors_key(self, group: str) -> str:
        return f"{self.stream}:errors:{group}"

    # -- inspection ------------------------------------------------------------------------

    def pending_count(self, group: str) -> int:
        """Entries delivered to ``group`` and not yet acknowledged (0 for an unknown group).

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._redis_errors("inspect"):
            try:
                summary = self._redis.xpending(self.stream, group)
            except ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    return 0
                raise
        return int(summary["pending"])

    def dead_letters(self, count: int = 100, *, after: str = "-") -> list[StreamDeadLetter]:
        """Read the dead-letter stream, oldest first.

        Args:
            count: At most this many records.
            after: Start at this dead-letter entry id (inclusive); ``-`` for the beginning.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        _check_int("count", count, minimum=1)
        self._check_open()
        with self._redis_errors("read dead letters from"):
            rows = cast(
                list[tuple[str, _Fields]],
                self._redis.xrange(self.dead_letter_stream, min=after, count=count),
            )
        return [
            StreamDeadLetter(
                entry_id=entry_id,
                stream_id=fields.get("stream_id", ""),
                group=fields.get("group", ""),
                consumer=fields.get("consumer", ""),
                error=fields.get("error", ""),
                deliveries=int(fields.get("deliveries", "0")),
                type=fields.get(TYPE_FIELD, ""),
                payload=fields.get(EVENT_FIELD, ""),
            )
            for entry_id, fields in rows
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            UnavailableError: When Redis cannot be reached or the bus is closed.
        """
        self._check_open()
        with self._redis_errors("reach"):
            self._redis.ping()

    def close(self) -> None:
        """Stop every subscription's worker, then close the connection pool. Idempotent."""
        with self._lock:
            if self._closing:
                return
            # Refuse new subscriptions now, but keep Redis usable while workers wind down.
            self._closing = True
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.close()
        self._closed = True
        self._redis.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has finished."""
        return self._closed

    def _release(self, subscription: RedisSubscription) -> None:
        """Forget a closed subscription; drop its consumer from the group if it owes nothing."""
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            self._consumers_in_use.get(subscription.group, set()).discard(subscription.consumer)
            self._claim_cursors.pop((subscription.group, subscription.consumer), None)
            if self._closed:
                return
        # Random default names would otherwise pile up in the group across restarts. A
        # consumer with pending entries is kept: deleting it would drop them from the group.
        try:
            summary = self._redis.xpending(self.stream, subscription.group)
            owing = {c["name"]: int(c["pending"]) for c in summary.get("consumers") or []}
            if owing.get(subscription.consumer, 0) == 0:
                self._redis.xgroup_delconsumer(
                    self.stream, subscription.group, subscription.consumer
                )
        except RedisError as exc:
            logger.debug("could not remove consumer %s: %s", subscription.consumer, exc)

    def _default_join_timeout(self) -> float:
        return self.block_ms / 1000 + (self._socket_timeout or 5.0)

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the Redis event bus is closed")

    def _check_block_ms(self, name: str, block_ms: int) -> None:
        if self._socket_timeout is not None and block_ms >= self._socket_timeout * 1000:
            limit = round(self._socket_timeout * 1000)
            raise InvalidError(
                f"The {name!r} parameter of {_OWNER} must be an int below the socket timeout "
                f"({limit} ms). Got {block_ms!r} instead.",
                field=name,
            )

    @contextmanager
    def _redis_errors(self, action: str) -> Iterator[None]:
        """Turn redis-py errors into :class:`UnavailableError` naming the server."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise UnavailableError(
                f"cannot {action} the event stream {self.stream!r}: Redis at {self._where} "
                f"is unreachable ({type(exc).__name__}: {exc})"
            ) from exc
        except RedisError as exc:
            raise UnavailableError(
                f"cannot {action} the event stream {self.stream!r} on Redis at {self._where}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
