"""Tests of the pack format: index documents, pack keys, and what a damaged index looks like."""

from __future__ import annotations

import struct

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.dataversion.chunk_codec import CorruptDataError
from synapsenet.services.dataversion.packs import (
    IndexEntry,
    decode_index,
    encode_index,
    index_key,
    list_packs,
    pack_key,
)

PACK_ID = "0123456789abcdef" * 2
KEY = index_key(PACK_ID)

digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
entries_strategy = st.lists(
    st.tuples(digests, st.integers(1, 2**20), st.integers(1, 2**24)), max_size=50
)


def laid_out(rows: list[tuple[str, int, int]]) -> tuple[list[IndexEntry], int]:
    """Entries back to back, as a pack writer lays them out, and the pack's size."""
    entries, offset = [], 0
    for address, length, size in rows:
        entries.append(IndexEntry(address, offset, length, size))
        offset += length
    return entries, offset


@given(rows=entries_strategy)
def test_index_documents_round_trip(rows: list[tuple[str, int, int]]) -> None:
    entries, size = laid_out(rows)
    document = encode_index(entries, size)
    assert len(document) == 8 + 4 + 4 + 8 + 48 * len(entries) + 32
    assert decode_index(document, KEY) == (entries, size)


def resealed(body: bytes) -> bytes:
    """An index body with a valid checksum, to reach the checks behind the checksum."""
    return body + blake3.blake3(body).digest()


def damaged_indexes() -> list[tuple[str, bytes, str]]:
    entries, size = laid_out([("ab" * 32, 10, 20), ("cd" * 32, 5, 5)])
    good = encode_index(entries, size)
    body = good[:-32]
    flipped = bytearray(good)
    flipped[30] ^= 0x01
    header = struct.Struct(">8sIIQ")
    return [
        ("empty", b"", "shorter than its header"),
        ("truncated", good[:20], "shorter than its header"),
        ("flipped", bytes(flipped), "checksum does not match"),
        ("magic", resealed(b"NOTANIDX" + body[8:]), "magic b'NOTANIDX'"),
        ("version", resealed(header.pack(b"SNPACKIX", 2, 2, size) + body[24:]), "version 2"),
        ("count", resealed(header.pack(b"SNPACKIX", 1, 3, size) + body[24:]), "declares 3"),
        ("outside", encode_index(entries, size - 1), "outside its 14-byte pack"),
        ("zero length", encode_index([IndexEntry("ab" * 32, 0, 0, 1)], 0), "outside"),
    ]


@pytest.mark.parametrize(
    ("document", "problem"), [pytest.param(d, p, id=case) for case, d, p in damaged_indexes()]
)
def test_damaged_index_documents_are_refused_naming_the_key(document: bytes, problem: str) -> None:
    with pytest.raises(CorruptDataError, match=problem) as caught:
        decode_index(document, KEY)
    assert caught.value.subject == f"Pack index {KEY!r}"
    assert caught.value.extra == {"key": KEY}


def test_pack_keys_pair_a_pack_with_its_index(local_store: LocalObjectStore) -> None:
    assert (pack_key(PACK_ID), index_key(PACK_ID)) == (
        f"packs/{PACK_ID}.pack",
        f"packs/{PACK_ID}.idx",
    )
    other = "f" * 32
    for key in [
        pack_key(PACK_ID),
        index_key(PACK_ID),
        index_key(other),
        "packs/short.pack",
        f"packs/{PACK_ID.upper()}.pack",
        f"packs/{PACK_ID}.pack.old",
        f"packs/{PACK_ID}x.idx",
        f"packs/sub/{PACK_ID}.pack",
    ]:
        local_store.put(key, b"x")
    assert list_packs(local_store) == ({PACK_ID}, {PACK_ID, other})
