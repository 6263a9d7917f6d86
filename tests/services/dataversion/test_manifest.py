"""Tests of manifests: validation, canonical JSON, the Merkle root, and their storage."""

from __future__ import annotations

import dataclasses
import json
from typing import cast

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synapsenet.core.storage import LocalObjectStore, ObjectStore
from synapsenet.errors import InvalidError, NotFoundError
from synapsenet.services.dataversion.chunks import ChunkRef, CorruptDataError, FileEntry
from synapsenet.services.dataversion.manifest import (
    Manifest,
    ManifestStore,
    manifest_key,
)

A = "a" * 64
B = "b" * 64
C = "c" * 64

digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
# Directory segments never contain a dot and file names always do, so no generated path is
# a directory of another.
directories = st.lists(st.text("abcé", min_size=1, max_size=3), max_size=2)
names = st.text("xyz_ü", min_size=1, max_size=4).map(lambda name: name + ".csv")
paths = st.builds(lambda dirs, name: "/".join([*dirs, name]), directories, names)
chunk_refs = st.builds(ChunkRef, digests, st.integers(min_value=1, max_value=10**12))


@st.composite
def file_entries(draw: st.DrawFn, path: st.SearchStrategy[str] = paths) -> FileEntry:
    refs = tuple(draw(st.lists(chunk_refs, max_size=4)))
    return FileEntry(draw(path), sum(ref.size for ref in refs), draw(digests), refs)


manifests = st.builds(
    Manifest,
    st.lists(file_entries(), max_size=6, unique_by=lambda entry: entry.path).map(tuple),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


@pytest.fixture(params=["local", "s3"])
def object_store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each backend in turn."""
    return cast(ObjectStore, request.getfixturevalue(f"{request.param}_store"))


def entry(path: str, *sizes: int, content_hash: str = A, address: str = B) -> FileEntry:
    refs = tuple(ChunkRef(address, size) for size in sizes)
    return FileEntry(path, sum(sizes), content_hash, refs)


# --- values ---------------------------------------------------------------------------------


def test_files_are_sorted_by_path_whatever_the_input_order() -> None:
    files = (entry("b.csv", 1), entry("a/z.csv", 2), entry("a.csv", 3), entry("a-b.csv", 4))
    manifest = Manifest(files)
    assert [f.path for f in manifest.files] == ["a-b.csv", "a.csv", "a/z.csv", "b.csv"]
    assert Manifest(tuple(reversed(files))) == manifest


def test_duplicate_paths_are_refused() -> None:
    with pytest.raises(InvalidError, match=r"The path 'a\.csv' appears twice") as caught:
        Manifest((entry("a.csv", 1), entry("b", 1), entry("a.csv", 2)))
    assert caught.value.field == "files"


def test_a_path_that_is_also_a_directory_is_refused() -> None:
    with pytest.raises(InvalidError, match="'data' is both a file and a directory"):
        Manifest((entry("data", 1), entry("data-x", 1), entry("data/part.csv", 2)))


def test_files_must_be_file_entries() -> None:
    with pytest.raises(InvalidError, match="must be FileEntry objects"):
        Manifest(("a.csv",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([("a", "b")], "must be a mapping"),
        ({"a": 1}, "values must be str"),
        ({2: "b"}, "keys must be str"),
        ({"a": "\udc80"}, "not valid Unicode"),
    ],
)
def test_metadata_must_map_str_to_str(metadata: object, message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        Manifest((), metadata)  # type: ignore[arg-type]


def test_manifests_are_immutable_and_hashable() -> None:
    manifest = Manifest((entry("a", 1),), {"format": "csv"})
    same = Manifest((entry("a", 1),), {"format": "csv"})
    assert hash(manifest) == hash(same)
    assert {manifest, same} == {manifest}
    assert manifest.metadata == {"format": "csv"}
    with pytest.raises(TypeError):
        manifest.metadata["format"] = "json"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.files = ()  # type: ignore[misc]


def test_lookup_sizes_and_referenced_addresses() -> None:
    manifest = Manifest((entry("b", 5, 6, address=C), entry("a", 1, address=B), entry("e")))
    assert manifest.find("b") == entry("b", 5, 6, address=C)
    assert manifest.find("c") is None
    assert manifest.find("zzz") is None
    assert manifest.total_size == 12
    assert manifest.addresses == {B, C}
    assert Manifest().addresses == frozenset()


# --- canonical JSON -------------------------------------------------------------------------


@settings(max_examples=150)
@given(manifest=manifests)
def test_json_round_trips(manifest: Manifest) -> None:
    document = manifest.to_json()
    assert Manifest.from_json(document) == manifest
    assert Manifest.from_json(bytearray(document)).to_json() == document


@settings(max_examples=100)
@given(manifest=manifests)
def test_json_is_canonical(manifest: Manifest) -> None:
    document = manifest.to_json()
    parsed = json.loads(document)
    canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert document == canonical.encode("utf-8")
    assert parsed["format"] == "synapsenet.manifest"
    assert parsed["version"] == 1


def test_json_spells_out_every_field() -> None:
    manifest = Manifest((entry("é.csv", 3, 4),), {"k": "v"})
    chunks = f'[{{"address":"{B}","size":3}},{{"address":"{B}","size":4}}]'
    file = f'{{"chunks":{chunks},"content_hash":"{A}","path":"é.csv","size":7}}'
    expected = (
        f'{{"files":[{file}],"format":"synapsenet.manifest","metadata":{{"k":"v"}},"version":1}}'
    )
    assert manifest.to_json() == expected.encode()


def test_a_file_of_many_chunks_is_written_in_pieces_with_the_same_bytes() -> None:
    # Entries are serialised a few thousand chunks at a time: the pieces must join into
    # exactly the document json.dumps gives, and the root must follow the documented scheme.
    sizes = [1 + i % 7 for i in range(5_000)]
    manifest = Manifest((entry('big "quoted" é.csv', *sizes), entry("small", 1)))
    pieces = list(manifest.iter_json())
    assert len(pieces) > 4
    document = b"".join(pieces)
    assert document == manifest.to_json()
    canonical = json.dumps(
        json.loads(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert document == canonical.encode("utf-8")
    assert Manifest.from_json(document) == manifest
    assert manifest.merkle_root == expected_root(manifest)


def test_any_valid_json_spelling_is_accepted() -> None:
    manifest = Manifest((entry("b", 1), entry("a", 2)), {"k": "v"})
    loose = json.dumps(json.loads(manifest.to_json()), indent=2).encode()
    assert Manifest.from_json(loose) == manifest


def valid_document() -> dict[str, object]:
    document: dict[str, object] = json.loads(Manifest((entry("a.csv", 3),)).to_json())
    return document


DELETE = object()


def spoiled(target: str, key: str, value: object) -> bytes:
    """A valid document with one field of ``target`` (document, file or chunk) changed."""
    document = valid_document()
    file = cast(list[dict[str, object]], document["files"])[0]
    chunk = cast(list[dict[str, object]], file["chunks"])[0]
    changed = {"document": document, "file": file, "chunk": chunk}[target]
    if value is DELETE:
        del changed[key]
    else:
        changed[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not bytes", "expected bytes, got str"),
        (b"\xff\xfe", "it is not UTF-8"),
        (b"{", "it is not JSON"),
        (b"[]", "expected an object, got list"),
        (b'{"files": [], "files": []}', "the key 'files' appears twice"),
        (spoiled("chunk", "size", 3.0), "3.0 is not an integer"),
        (spoiled("chunk", "size", float("nan")), "NaN is not a valid number"),
        (spoiled("document", "metadata", DELETE), "missing ['metadata']"),
        (spoiled("document", "extra", 1), "unexpected ['extra']"),
        (spoiled("document", "format", "dvc"), "at format: expected 'synapsenet.manifest'"),
        (spoiled("document", "version", 2), "at version: expected 1, got 2"),
        (spoiled("document", "version", True), "at version: expected 1, got True"),
        (spoiled("document", "files", {}), "at files: expected an array, got dict"),
        (spoiled("document", "metadata", []), "at metadata: expected an object, got list"),
        (spoiled("document", "metadata", {"k": 1}), "metadata values must be str"),
        (spoiled("file", "path", "../etc/passwd"), "at files[0]: Invalid file path"),
        (spoiled("file", "size", 4), "at files[0]: The chunks of FileEntry 'a.csv' add up"),
        (spoiled("file", "size", "3"), "at files[0]: The 'size' of FileEntry"),
        (spoiled("file", "chunks", [1]), "at files[0].chunks[0]: expected an object, got int"),
        (spoiled("chunk", "address", "xyz"), "at files[0].chunks[0]: The 'address' must be"),
        (spoiled("chunk", "size", 0), "at files[0].chunks[0]: The 'size' of ChunkRef"),
        (spoiled("chunk", "size", DELETE), "at files[0].chunks[0]: missing ['size']"),
        (
            spoiled("document", "files", cast(list[object], valid_document()["files"]) * 2),
            "The path 'a.csv' appears twice",
        ),
    ],
)
def test_corrupt_documents_are_refused_saying_where(data: bytes, message: str) -> None:
    with pytest.raises(InvalidError, match="Invalid manifest document") as caught:
        Manifest.from_json(data)
    assert message in caught.value.detail
    assert caught.value.field == "manifest"


# --- Merkle root ----------------------------------------------------------------------------


def expected_root(manifest: Manifest) -> str:
    """The root as the module documents it, computed independently."""

    def canonical(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    metadata_leaf = blake3.blake3(b"\x02" + canonical(dict(manifest.metadata))).digest()
    leaves = [
        blake3.blake3(
            b"\x00"
            + canonical(
                {
                    "path": f.path,
                    "size": f.size,
                    "content_hash": f.content_hash,
                    "chunks": [{"address": r.address, "size": r.size} for r in f.chunks],
                }
            )
        ).digest()
        for f in sorted(manifest.files, key=lambda f: f.path.encode())
    ]
    return blake3.blake3(b"\x01" + metadata_leaf + b"".join(leaves)).hexdigest()


@settings(max_examples=100)
@given(manifest=manifests)
def test_merkle_root_follows_the_documented_scheme(manifest: Manifest) -> None:
    assert manifest.merkle_root == expected_root(manifest)
    assert len(manifest.merkle_root) == 64


def test_merkle_root_of_the_empty_manifest_is_pinned() -> None:
    # Pinned so that an accidental change of the scheme, which would rename every stored
    # version, fails loudly.
    empty_metadata = blake3.blake3(b"\x02{}").digest()
    assert Manifest().merkle_root == blake3.blake3(b"\x01" + empty_metadata).hexdigest()
    assert Manifest().merkle_root == (
        "071eec87a0a67c11907a4f75717de762b2a67e46d89c9cddc2837e8f0227b5dc"
    )


@given(manifest=manifests, data=st.data())
def test_merkle_root_is_independent_of_input_order(manifest: Manifest, data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(manifest.files))
    metadata = dict(reversed(list(manifest.metadata.items())))
    assert Manifest(tuple(shuffled), metadata).merkle_root == manifest.merkle_root


def mutations(file: FileEntry, data: st.DataObject) -> list[FileEntry]:
    """One change of each kind to ``file``: path, size, content hash, chunk list."""
    other_path = data.draw(paths.filter(lambda p: p != file.path))
    other_hash = data.draw(digests.filter(lambda h: h != file.content_hash))
    grown = (*file.chunks[:-1], ChunkRef(B, 1)) if file.chunks else (ChunkRef(B, 1),)
    changed = [
        dataclasses.replace(file, path=other_path),
        dataclasses.replace(file, content_hash=other_hash),
        FileEntry(file.path, file.size + 1, file.content_hash, (*file.chunks, ChunkRef(A, 1))),
        FileEntry(file.path, sum(r.size for r in grown), file.content_hash, grown),
    ]
    if file.chunks:
        first = file.chunks[0]
        new_address = data.draw(digests.filter(lambda h: h != first.address))
        changed.append(
            dataclasses.replace(file, chunks=(ChunkRef(new_address, first.size), *file.chunks[1:]))
        )
        bigger = ChunkRef(first.address, first.size + 1)
        changed.append(
            FileEntry(file.path, file.size + 1, file.content_hash, (bigger, *file.chunks[1:]))
        )
    if len(set(file.chunks)) > 1:
        changed.append(dataclasses.replace(file, chunks=file.chunks[::-1]))
    return [entry for entry in changed if entry != file]


@settings(max_examples=100)
@given(manifest=manifests.filter(lambda m: len(m.files) > 0), data=st.data())
def test_merkle_root_changes_with_any_path_size_hash_or_chunk(
    manifest: Manifest, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(manifest.files) - 1))
    others = manifest.files[:index] + manifest.files[index + 1 :]
    for changed in mutations(manifest.files[index], data):
        if any(changed.path == other.path for other in others):
            continue
        try:
            mutated = Manifest((*others, changed), manifest.metadata)
        except InvalidError:
            continue  # the new path clashes with a directory
        assert mutated.merkle_root != manifest.merkle_root


@given(manifest=manifests, key=st.text(max_size=3), value=st.text(max_size=3))
def test_merkle_root_changes_with_the_metadata(manifest: Manifest, key: str, value: str) -> None:
    metadata = dict(manifest.metadata)
    metadata[key] = value + "!" if metadata.get(key) == value else value
    assert Manifest(manifest.files, metadata).merkle_root != manifest.merkle_root


def test_adding_or_removing_a_file_changes_the_root() -> None:
    one = Manifest((entry("a", 1),))
    two = Manifest((entry("a", 1), entry("b", 1)))
    assert len({Manifest().merkle_root, one.merkle_root, two.merkle_root}) == 3


# --- storage --------------------------------------------------------------------------------


def test_manifest_keys_live_under_manifests() -> None:
    assert manifest_key(A) == f"manifests/{A}.json"
    with pytest.raises(InvalidError, match="'root'"):
        manifest_key("../" + A)


def test_save_then_load_round_trips_and_verifies(object_store: ObjectStore) -> None:
    manifests_ = ManifestStore(object_store)
    manifest = Manifest((entry("data/a.csv", 3, 4), entry("b.bin")), {"format": "csv"})
    root = manifests_.save(manifest)
    assert root == manifest.merkle_root
    assert object_store.get(manifest_key(root)) == manifest.to_json()
    assert manifests_.load(root) == manifest
    assert manifests_.save(manifest) == root  # idempotent
    assert manifests_.exists(root)
    assert "ManifestStore(" in repr(manifests_)


def test_load_recent_serves_the_last_saved_or_loaded_manifests(
    local_store: LocalObjectStore,
) -> None:
    first, second, third = (Manifest((entry(f"f{n}.csv", n),)) for n in (1, 2, 3))
    writer = ManifestStore(local_store, keep=2)
    roots = [writer.save(manifest) for manifest in (first, second, third)]
    for root in roots:
        local_store.delete(manifest_key(root))
    # The two most recent stay in memory; load() still reads the store.
    assert writer.load_recent(roots[2]) == third
    assert writer.load_recent(roots[1]) == second
    with pytest.raises(NotFoundError):
        writer.load(roots[1])
    with pytest.raises(NotFoundError):
        writer.load_recent(roots[0])  # evicted
    # A store that keeps none reads every time; a load is kept as a save is.
    reader = ManifestStore(local_store, keep=0)
    reader.save(first)
    with pytest.raises(NotFoundError):
        ManifestStore(local_store, keep=0).load_recent(roots[1])
    assert reader.load_recent(roots[0]) == first
    local_store.delete(manifest_key(roots[0]))
    with pytest.raises(NotFoundError):
        reader.load_recent(roots[0])
    root = ManifestStore(local_store).save(second)
    loader = ManifestStore(local_store, keep=1)
    assert loader.load_recent(root) == second  # read from the store, then kept
    local_store.delete(manifest_key(root))
    assert loader.load_recent(root) == second


def test_loading_an_unknown_root_raises_not_found(object_store: ObjectStore) -> None:
    with pytest.raises(NotFoundError, match=f"No manifest with root {A}"):
        ManifestStore(object_store).load(A)
    with pytest.raises(InvalidError):
        ManifestStore(object_store).load("HEAD")


def test_a_document_stored_under_another_root_is_corrupt(object_store: ObjectStore) -> None:
    manifest = Manifest((entry("a", 1),))
    object_store.put(manifest_key(A), manifest.to_json())
    with pytest.raises(CorruptDataError, match=f"describes the version {manifest.merkle_root}"):
        ManifestStore(object_store).load(A)


def test_a_damaged_document_is_corrupt(object_store: ObjectStore) -> None:
    manifest = Manifest((entry("a", 1),))
    root = ManifestStore(object_store).save(manifest)
    object_store.put(manifest_key(root), manifest.to_json()[:-5])
    with pytest.raises(CorruptDataError, match="is not JSON") as caught:
        ManifestStore(object_store).load(root)
    assert caught.value.extra == {"root": root, "key": manifest_key(root)}
    assert caught.value.status == 500


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(manifest=manifests)
def test_any_manifest_survives_the_store(local_store: LocalObjectStore, manifest: Manifest) -> None:
    manifests_ = ManifestStore(local_store)
    assert manifests_.load(manifests_.save(manifest)) == manifest


def test_listing_and_deleting_manifests(object_store: ObjectStore) -> None:
    manifests_ = ManifestStore(object_store)
    roots = sorted(manifests_.save(Manifest((entry(f"f{n}", n),))) for n in range(1, 4))
    object_store.put("manifests/README.txt", b"not a manifest")
    object_store.put(f"manifests/{A}.json.bak", b"not a manifest")
    assert list(manifests_.iter_roots()) == roots
    assert manifests_.delete(roots[0])
    assert not manifests_.delete(roots[0])
    assert not manifests_.exists(roots[0])
    assert list(manifests_.iter_roots()) == roots[1:]
