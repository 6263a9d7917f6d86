"""The condemned list's document: round trip and every way a damaged one is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.chunk_codec import CorruptDataError
from synapsenet.services.dataversion.condemned import (
    CONDEMNED_KEY,
    LOOSE,
    Copy,
    condemned_addresses,
    decode_condemned,
    encode_condemned,
    load_condemned,
    save_condemned,
)

WHEN = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)
LIST = {
    Copy("ab" * 32, "0f" * 16): WHEN,
    Copy("cd" * 32, LOOSE): WHEN - timedelta(days=400),
    Copy("ab" * 32, "1e" * 16): WHEN + timedelta(microseconds=1),
}


def test_a_list_round_trips_to_the_microsecond() -> None:
    assert decode_condemned(encode_condemned(LIST)) == LIST


def test_the_document_does_not_depend_on_the_order_given() -> None:
    assert encode_condemned(dict(reversed(LIST.items()))) == encode_condemned(LIST)


def test_a_missing_list_condemns_nothing(local_store: LocalObjectStore) -> None:
    assert load_condemned(local_store) == {}
    assert condemned_addresses(local_store) == frozenset()


def test_saving_replaces_the_list_and_an_empty_one_deletes_it(
    local_store: LocalObjectStore,
) -> None:
    save_condemned(local_store, LIST)
    assert load_condemned(local_store) == LIST
    assert condemned_addresses(local_store) == {"ab" * 32, "cd" * 32}
    save_condemned(local_store, {})
    assert not local_store.exists(CONDEMNED_KEY)


def damaged(document: bytes) -> list[tuple[bytes, str]]:
    from blake3 import blake3

    body = document[:-32]

    def signed(changed: bytes) -> bytes:
        return changed + blake3(changed).digest()

    return [
        (document[:20], "shorter than its header"),
        (document[:-1] + bytes([document[-1] ^ 1]), "checksum does not match"),
        (signed(b"SNOTHERX" + body[8:]), "magic"),
        (signed(body[:8] + (2).to_bytes(4, "big") + body[12:]), "version 2"),
        (signed(body[:-1]), "declares 3 entries"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_a_damaged_list_is_refused_naming_its_key(case: int) -> None:
    document, problem = damaged(encode_condemned(LIST))[case]
    with pytest.raises(CorruptDataError, match=problem) as caught:
        decode_condemned(document)
    assert caught.value.subject == f"Condemned list {CONDEMNED_KEY!r}"
