"""The Redis Streams bus's connection-free parts: entry layout, replies, results, checks.

Everything here works on plain values, never on a live connection: the field names of a
stream entry, flattening ``XREADGROUP`` replies and decoding entries into events, the result
records :class:`ConsumeResult` and :class:`StreamDeadLetter` (re-exported by
:mod:`synapsenet.core.redis_bus`), and the parameter checks that give every message of
:class:`~synapsenet.core.redis_bus.RedisStreamsEventBus` one format.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Final, Literal

import redis

from synapsenet.core.events import Event
from synapsenet.errors import InvalidError

EVENT_FIELD: Final = "event"
TYPE_FIELD: Final = "type"
_OWNER: Final = "RedisStreamsEventBus"

_Fields = dict[str, str]
_Outcome = Literal["handled", "skipped", "failed", "dead_lettered"]


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    """What one consuming round did with the entries it took from the stream.

    Attributes:
        handled: The handler succeeded and the entry was acknowledged.
        skipped: The event type did not match the pattern; acknowledged without handling.
        failed: The handler raised; the entry stays pending and will be delivered again.
        dead_lettered: Moved to the dead-letter stream (too many deliveries, malformed, or
            deleted from the stream before it was acknowledged).
        claimed: How many of the entries above were reclaimed from idle consumers.
    """

    handled: int = 0
    skipped: int = 0
    failed: int = 0
    dead_lettered: int = 0
    claimed: int = 0

    @property
    def total(self) -> int:
        """Entries the round took from the stream, whatever became of them."""
        return self.handled + self.skipped + self.failed + self.dead_lettered

    def __add__(self, other: ConsumeResult) -> ConsumeResult:
        return ConsumeResult(
            handled=self.handled + other.handled,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            claimed=self.claimed + other.claimed,
        )


@dataclass(frozen=True, slots=True)
class StreamDeadLetter:
    """One entry of the dead-letter stream.

    Attributes:
        entry_id: Id of this record in the dead-letter stream.
        stream_id: Id the entry had in the event stream.
        group: The consumer group that gave up on it.
        consumer: The consumer that moved it here.
        error: Why: the last handler error, or what was wrong with the entry.
        deliveries: How many times the group had delivered it.
        type: The entry's ``type`` field ("" when it had none).
        payload: The entry's raw ``event`` field ("" when it had none or was deleted).
    """

    entry_id: str
    stream_id: str
    group: str
    consumer: str
    error: str
    deliveries: int
    type: str
    payload: str

    @property
    def event(self) -> Event | None:
        """The dead-lettered event, or ``None`` when the payload is not a valid event."""
        try:
            return Event.from_json(self.payload)
        except (InvalidError, ValueError):
            return None


def _stream_entries(reply: Any) -> list[tuple[str, _Fields]]:
    """Flatten an XREADGROUP reply over one stream into its entries.

    RESP2 replies ``[[stream, entries]]``; redis-py shapes RESP3 replies as
    ``{stream: [entries]}`` with ``entries`` wrapped in one more list (a URL's
    ``protocol=3`` option overrides ours).
    """
    if not reply:
        return []
    entries: list[tuple[str, _Fields]] = []
    if isinstance(reply, dict):
        for batches in reply.values():
            for batch in batches:
                entries.extend(batch)
    else:
        for _stream, batch in reply:
            entries.extend(batch)
    return entries


def _decode_entry(fields: _Fields) -> Event:
    """Parse an entry's event, checking it against the entry's ``type`` field."""
    if EVENT_FIELD not in fields:
        raise InvalidError(f"the entry has no {EVENT_FIELD!r} field")
    if TYPE_FIELD not in fields:
        raise InvalidError(f"the entry has no {TYPE_FIELD!r} field")
    try:
        event = Event.from_json(fields[EVENT_FIELD])
    except ValueError as exc:  # json.JSONDecodeError
        raise InvalidError(f"the event is not JSON: {exc}") from None
    if event.type != fields[TYPE_FIELD]:
        raise InvalidError(
            f"the entry's type {fields[TYPE_FIELD]!r} differs from its event's {event.type!r}"
        )
    return event


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _describe_server(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"
    return url


def _invalid(name: str, expected: str, got: object) -> InvalidError:
    return InvalidError(
        f"The {name!r} parameter of {_OWNER} must be {expected}. Got {got!r} instead.",
        field=name,
    )


def _check_int(name: str, value: object, *, minimum: int, or_none: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(name, f"an int >= {minimum}" + (" or None" if or_none else ""), value)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(name, "a non-empty str", value)


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _invalid(name, "a number of seconds > 0", value)
