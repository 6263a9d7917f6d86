"""Code identity and the registry of named, versioned transformations."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import platform
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.lineage_model import (
    CodeHashBasis,
    NodeRef,
    TransformationType,
)
from synapsenet.services.dataversion.transforms import (
    TransformRegistry,
    code_identity,
    library_versions,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def drop_nulls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if None not in row.values()]


def drop_empty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row]


def load_module(directory: Path, name: str, source: bytes) -> ModuleType:
    path = directory / f"{name}.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exec_function(source: str, name: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<typed in a REPL>", "exec"), namespace)
    function: Callable[..., Any] = namespace[name]
    return function


# --- code identity -----------------------------------------------------------------------------


def test_identity_is_stable_and_names_the_function() -> None:
    first = code_identity(drop_nulls)
    assert first == code_identity(drop_nulls)
    assert first.qualified_name == f"{__name__}.drop_nulls"
    assert first.basis is CodeHashBasis.SOURCE
    assert first.note is None
    assert first.library_versions == {"python": platform.python_version()}


def test_different_functions_have_different_hashes() -> None:
    assert code_identity(drop_nulls).source_hash != code_identity(drop_empty).source_hash


def test_identity_changes_when_the_source_changes(tmp_path: Path) -> None:
    before = load_module(tmp_path, "pipeline_v1", b"def step(x):\n    return x + 1\n")
    after = load_module(tmp_path, "pipeline_v2", b"def step(x):\n    return x + 2\n")
    same = load_module(tmp_path, "pipeline_v3", b"def step(x):\n    return x + 1\n")
    assert code_identity(before.step).source_hash != code_identity(after.step).source_hash
    assert code_identity(before.step).source_hash == code_identity(same.step).source_hash
    assert code_identity(before.step).qualified_name == "pipeline_v1.step"


def test_line_endings_do_not_change_the_identity(tmp_path: Path) -> None:
    unix = load_module(tmp_path, "unix_endings", b"def step(x):\n    return x * 3\n")
    windows = load_module(tmp_path, "windows_endings", b"def step(x):\r\n    return x * 3\r\n")
    assert code_identity(unix.step).source_hash == code_identity(windows.step).source_hash


def test_functions_without_source_fall_back_to_their_bytecode() -> None:
    add_one = exec_function("def step(x):\n    return x + 1\n", "step")
    moved = exec_function("\n\n\n# elsewhere\ndef step(x):\n    return x + 1\n", "step")
    add_two = exec_function("def step(x):\n    return x + 2\n", "step")
    identity = code_identity(add_one)
    assert identity.basis is CodeHashBasis.BYTECODE
    assert identity.note is not None
    assert "differ between Python versions" in identity.note
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in identity.note
    assert identity == code_identity(add_one)
    assert identity.source_hash == code_identity(moved).source_hash
    assert identity.source_hash != code_identity(add_two).source_hash


def test_bytecode_fallback_sees_nested_functions_and_set_constants() -> None:
    source = (
        "def step(x):\n    def inner(y):\n        return y in {'a', 'b', %r} or y == (1, 'z')\n"
        "    return inner(x)\n"
    )
    first = exec_function(source % "c", "step")
    second = exec_function(source % "d", "step")
    assert (
        code_identity(first).source_hash
        == code_identity(exec_function(source % "c", "step")).source_hash
    )
    assert code_identity(first).source_hash != code_identity(second).source_hash


def test_native_callable_objects_are_told_apart_by_name() -> None:
    add, subtract = code_identity(np.add), code_identity(np.subtract)
    assert (add.qualified_name, subtract.qualified_name) == ("numpy.add", "numpy.subtract")
    assert add.basis is CodeHashBasis.NAME
    assert add.source_hash != subtract.source_hash


def test_builtins_are_identified_by_name() -> None:
    identity = code_identity(len)
    assert identity.basis is CodeHashBasis.NAME
    assert identity.qualified_name == "builtins.len"
    assert identity.note is not None
    assert code_identity(sorted).source_hash != identity.source_hash


class Scaler:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, values: list[float]) -> list[float]:
        return [value * self.factor for value in values]

    def scale(self, values: list[float]) -> list[float]:
        return self(values)


def test_methods_and_callable_objects_are_identified_by_their_code() -> None:
    bound = code_identity(Scaler(2).scale)
    assert bound.qualified_name == f"{__name__}.Scaler.scale"
    assert bound == code_identity(Scaler.scale)
    instance = code_identity(Scaler(2))
    assert instance.qualified_name == f"{__name__}.Scaler"
    assert instance == code_identity(Scaler(3))


def test_decorated_functions_are_identified_by_the_wrapped_function() -> None:
    def logged(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any) -> Any:
            return function(*args)

        return wrapper

    assert code_identity(logged(drop_nulls)) == code_identity(drop_nulls)


def test_partials_and_non_callables_are_refused() -> None:
    with pytest.raises(InvalidError, match=r"functools\.partial hides its bound arguments"):
        code_identity(functools.partial(drop_nulls, []))
    with pytest.raises(InvalidError, match="expected a callable") as caught:
        code_identity(42)  # type: ignore[arg-type]
    assert caught.value.field == "fn"


def test_library_versions_come_from_installed_metadata() -> None:
    versions = library_versions(["pytest", "blake3"])
    assert list(versions) == ["blake3", "pytest", "python"]
    assert versions["pytest"] == importlib.metadata.version("pytest")
    assert library_versions("pytest") == {
        "pytest": importlib.metadata.version("pytest"),
        "python": platform.python_version(),
    }
    assert (
        code_identity(drop_nulls, packages=["pytest"]).library_versions["pytest"]
        == (versions["pytest"])
    )


def test_unknown_packages_are_refused() -> None:
    with pytest.raises(InvalidError, match="'no-such-package-xyz' is not installed") as caught:
        library_versions(["no-such-package-xyz"])
    assert caught.value.field == "packages"
    with pytest.raises(InvalidError, match="package names must be strings"):
        library_versions([""])


# --- registry ----------------------------------------------------------------------------------


def test_register_directly_and_as_a_decorator() -> None:
    registry = TransformRegistry()
    returned = registry.register(
        "drop_nulls", drop_nulls, type=TransformationType.CLEAN, version="1"
    )
    assert returned is drop_nulls

    @registry.register(
        "dedupe", type=TransformationType.DEDUPLICATE, version="2.0", description="d"
    )
    def dedupe(rows: list[int]) -> list[int]:
        return sorted(set(rows))

    assert dedupe([2, 1, 2]) == [1, 2]
    entry = registry.get("dedupe", "2.0")
    assert entry.fn is dedupe
    assert entry.type is TransformationType.DEDUPLICATE
    assert entry.reference == "dedupe@2.0"
    assert entry.description == "d"
    assert entry.code == code_identity(dedupe)
    assert ("dedupe", "2.0") in registry
    assert ("dedupe", "1") not in registry
    assert len(registry) == 2


def test_reregistering_the_same_code_is_allowed() -> None:
    registry = TransformRegistry()
    registry.register("drop_nulls", drop_nulls, type=TransformationType.CLEAN, version="1")
    registry.register("drop_nulls", drop_nulls, type=TransformationType.CLEAN, version="1")
    assert len(registry) == 1


def test_reregistering_a_version_with_different_code_is_a_conflict() -> None:
    registry = TransformRegistry()
    registry.register("clean", drop_nulls, type=TransformationType.CLEAN, version="1")
    with pytest.raises(ConflictError, match="clean@1 is already registered with other code"):
        registry.register("clean", drop_empty, type=TransformationType.CLEAN, version="1")
    with pytest.raises(ConflictError, match="already registered as clean, not filter"):
        registry.register("clean", drop_nulls, type=TransformationType.FILTER, version="1")
    assert registry.get("clean", "1").fn is drop_nulls
    registry.register("clean", drop_empty, type=TransformationType.CLEAN, version="2")
    assert registry.versions("clean") == ("1", "2")
    assert registry.latest("clean").fn is drop_empty


def test_lookups_of_unknown_transformations() -> None:
    registry = TransformRegistry()
    registry.register("clean", drop_nulls, type=TransformationType.CLEAN, version="1")
    with pytest.raises(
        NotFoundError, match="no transformation clean@9 is registered; registered versions: 1"
    ):
        registry.get("clean", "9")
    with pytest.raises(NotFoundError, match=r"no transformation other@1 is registered$"):
        registry.get("other", "1")
    with pytest.raises(NotFoundError, match="no transformation named 'other'"):
        registry.latest("other")
    assert registry.versions("other") == ()


def test_entries_are_listed_by_name_then_registration_order() -> None:
    registry = TransformRegistry()
    registry.register("b", drop_nulls, type=TransformationType.CLEAN, version="10")
    registry.register("a", drop_empty, type=TransformationType.FILTER, version="1")
    registry.register("b", drop_empty, type=TransformationType.CLEAN, version="9")
    assert [entry.reference for entry in registry.entries()] == ["a@1", "b@10", "b@9"]


@pytest.mark.parametrize(
    ("name", "version", "kind", "field"),
    [
        ("", "1", TransformationType.MAP, "name"),
        ("has space", "1", TransformationType.MAP, "name"),
        ("9lives", "1", TransformationType.MAP, "name"),
        ("ok", "", TransformationType.MAP, "version"),
        ("ok", "1 0", TransformationType.MAP, "version"),
        ("ok", "1", "explode", "type"),
    ],
)
def test_malformed_registrations_are_refused(
    name: str, version: str, kind: Any, field: str
) -> None:
    registry = TransformRegistry()
    with pytest.raises(InvalidError) as caught:
        registry.register(name, drop_nulls, type=kind, version=version)
    assert caught.value.field == field
    assert len(registry) == 0


def test_registered_transform_records_its_lineage() -> None:
    registry = TransformRegistry()
    registry.register(
        "clean", drop_nulls, type=TransformationType.CLEAN, version="1", packages=["pytest"]
    )
    entry = registry.get("clean", "1")
    record = entry.record(
        id="run-1",
        inputs=[NodeRef.dataset_version("raw", 4)],
        outputs=[NodeRef.dataset_version("clean", 1)],
        started_at=T0,
        finished_at=T0,
        parameters={"columns": ["a"]},
    )
    assert (record.name, record.version, record.type) == ("clean", "1", TransformationType.CLEAN)
    assert record.code == entry.code
    assert record.code is not None
    assert "pytest" in record.code.library_versions
    assert record.parameters == {"columns": ("a",)}


def test_concurrent_registrations_of_one_version_agree() -> None:
    registry = TransformRegistry()
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def register(function: Callable[..., Any]) -> None:
        barrier.wait()
        try:
            registry.register("race", function, type=TransformationType.MAP, version="1")
            outcomes.append("registered")
        except ConflictError:
            outcomes.append("conflict")

    functions = [drop_nulls, drop_empty] * 4
    threads = [threading.Thread(target=register, args=(function,)) for function in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winner = registry.get("race", "1").fn
    assert outcomes.count("registered") == 4
    assert outcomes.count("conflict") == 4
    assert winner in (drop_nulls, drop_empty)
