"""Code identity and the registry of named, versioned transformations.

A registered transformation is a Python callable with a name, a version and a
:class:`~synapsenet.services.dataversion.lineage_model.TransformationType`. The registry
records the callable's code identity when it is registered, so that a replay months later
can tell whether it is about to run the same code. Running a transformation on input
versions and committing its outputs is the engine's job; this module is pure.

How code is identified:

* Normally by a BLAKE3 hash of the source text (``inspect.getsource``, line endings
  normalised), so the identity is the same on every machine and Python version.
* When no source is retrievable (a function typed into a REPL or built with ``exec``), by
  a hash of the compiled code object: bytecode, constants and names, without line numbers.
  That hash changes between Python minor versions; the identity's ``note`` says so.
* Builtins and extension functions have neither, so only their qualified name is hashed;
  the recorded library versions are then what pins the behaviour.

Limits worth knowing: closures are identified by their source, not by the values they
captured (pass such values as transformation parameters instead); two lambdas on one source
line share a hash (use ``def``); and the source is read when the identity is computed, so
edit a module on disk while a process runs and the hash describes the edited text.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import platform
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, overload

from blake3 import blake3

from synapsenet.errors import ConflictError, InvalidError, NotFoundError
from synapsenet.services.dataversion.lineage_model import (
    CodeHashBasis,
    CodeIdentity,
    JSONValue,
    NodeRef,
    Transformation,
    TransformationStatus,
    TransformationType,
)

__all__ = [
    "RegisteredTransform",
    "TransformRegistry",
    "code_identity",
    "library_versions",
]

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]*")


def code_identity(fn: Callable[..., Any], *, packages: Iterable[str] = ()) -> CodeIdentity:
    """Identify the code of a callable.

    Functions are identified by their own source; bound methods by their function; other
    callable objects by their class; decorated functions (``functools.wraps``) by the
    function they wrap.

    Args:
        fn: The callable.
        packages: Distribution names whose installed versions to record (``python`` is
            always recorded).

    Returns:
        The qualified name, the hash and what it was computed from, and library versions.

    Raises:
        InvalidError: For a ``functools.partial``, whose bound arguments would escape the
            identity, for something not callable, or for a package that is not installed.
    """
    target = _code_target(fn)
    qualified_name = _qualified_name(target)
    versions = library_versions(packages)
    try:
        source: str | None = inspect.getsource(target)
    except (OSError, TypeError):
        source = None
    if source is not None:
        normalised = source.replace("\r\n", "\n").replace("\r", "\n")
        return CodeIdentity(
            qualified_name, blake3(normalised.encode("utf-8")).hexdigest(), versions
        )
    code = getattr(target, "__code__", None)
    if isinstance(code, types.CodeType):
        fingerprint = repr(_describe_code(code)).encode("utf-8")
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        return CodeIdentity(
            qualified_name,
            blake3(fingerprint).hexdigest(),
            versions,
            CodeHashBasis.BYTECODE,
            note=f"source not retrievable; hashed Python {python} bytecode, constants and "
            "names, which differ between Python versions",
        )
    return CodeIdentity(
        qualified_name,
        blake3(qualified_name.encode("utf-8")).hexdigest(),
        versions,
        CodeHashBasis.NAME,
        note="no source or bytecode (builtin or extension); identified by its qualified "
        "name and library versions only",
    )


def library_versions(packages: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``packages``, plus the Python version under ``python``.

    Args:
        packages: Distribution names, e.g. ``["pandas", "scikit-learn"]``; a single name
            is accepted too.

    Returns:
        Versions by name, sorted by name.

    Raises:
        InvalidError: When a package is not installed (a typo would otherwise record
            nothing, and a replay could not tell what ran).
    """
    names = (packages,) if isinstance(packages, str) else tuple(packages)
    versions = {"python": platform.python_version()}
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidError(f"package names must be strings. Got {name!r}.", field="packages")
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise InvalidError(
                f"package {name!r} is not installed, so its version cannot be recorded",
                field="packages",
            ) from None
    return dict(sorted(versions.items()))


def _code_target(fn: object) -> Any:
    """The object whose source identifies ``fn``."""
    if isinstance(fn, functools.partial):
        raise InvalidError(
            "a functools.partial hides its bound arguments from the code identity; register "
            "the function itself and pass those arguments as parameters",
            field="fn",
        )
    if not callable(fn):
        raise InvalidError(f"expected a callable. Got {type(fn).__name__} instead.", field="fn")
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    if isinstance(fn, types.FunctionType | types.BuiltinFunctionType | type):
        return inspect.unwrap(fn)
    if isinstance(inspect.getattr_static(type(fn), "__call__", None), types.FunctionType):
        # A callable instance: its behaviour is its class's code.
        return type(fn)
    # Natively implemented callables (numpy ufuncs, ...) share a class; only their own
    # name tells them apart.
    return fn


def _qualified_name(target: Any) -> str:
    module = getattr(target, "__module__", None) or type(target).__module__
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return f"{module}.{qualname or type(target).__qualname__}"


def _describe_code(code: types.CodeType) -> tuple[object, ...]:
    # Line numbers and file names are left out on purpose: the same function defined at
    # another place must keep its identity.
    return (
        code.co_code.hex(),
        tuple(_describe_constant(constant) for constant in code.co_consts),
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_flags,
    )


def _describe_constant(value: object) -> object:
    if isinstance(value, types.CodeType):
        return ("code", _describe_code(value))
    if isinstance(value, frozenset):
        # Set iteration order follows string hashing, which is randomised per process.
        return ("frozenset", tuple(sorted(repr(_describe_constant(item)) for item in value)))
    if isinstance(value, tuple):
        return ("tuple", tuple(_describe_constant(item) for item in value))
    return (type(value).__name__, repr(value))


@dataclass(frozen=True, slots=True)
class RegisteredTransform:
    """A callable registered as a named, versioned transformation.

    Attributes:
        name: Registered name, e.g. ``clean_orders``.
        version: Version string chosen by the author, e.g. ``1`` or ``2.1.0``.
        type: The kind of transformation.
        fn: The callable the engine runs.
        code: Its identity at registration.
        description: Free text for people browsing the registry.
    """

    name: str
    version: str
    type: TransformationType
    fn: Callable[..., Any]
    code: CodeIdentity
    description: str | None = None

    @property
    def reference(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def record(
        self,
        *,
        id: str,
        inputs: Sequence[NodeRef],
        outputs: Sequence[NodeRef],
        started_at: datetime,
        finished_at: datetime | None,
        parameters: Mapping[str, JSONValue] | None = None,
        status: TransformationStatus = TransformationStatus.COMPLETED,
    ) -> Transformation:
        """The lineage record of one run of this transformation.

        Args:
            id: Unique id of the run.
            inputs: Versions it read, in argument order.
            outputs: Dataset versions it committed.
            started_at: Aware UTC start time.
            finished_at: Aware UTC end time; None while running.
            parameters: JSON parameters it ran with.
            status: How the run ended.

        Returns:
            The transformation, carrying this entry's name, version, type and code.
        """
        return Transformation(
            id=id,
            type=self.type,
            name=self.name,
            version=self.version,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            started_at=started_at,
            finished_at=finished_at,
            parameters=parameters or {},
            code=self.code,
            status=status,
        )


class TransformRegistry:
    """Named, versioned transformations, looked up by name and version.

    Re-registering a name and version with the same code (a module reloaded) is allowed and
    keeps the newest callable; with different code it is a conflict, since recorded lineage
    would then point at two behaviours under one name. Thread-safe.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], RegisteredTransform] = {}
        self._lock = threading.Lock()

    @overload
    def register(
        self,
        name: str,
        fn: F,
        *,
        type: TransformationType,
        version: str,
        packages: Iterable[str] = (),
        description: str | None = None,
    ) -> F: ...

    @overload
    def register(
        self,
        name: str,
        fn: None = None,
        *,
        type: TransformationType,
        version: str,
        packages: Iterable[str] = (),
        description: str | None = None,
    ) -> Callable[[F], F]: ...

    def register(
        self,
        name: str,
        fn: F | None = None,
        *,
        type: TransformationType,
        version: str,
        packages: Iterable[str] = (),
        description: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register ``fn`` as transformation ``name@version``; usable as a decorator.

        Args:
            name: Letters, digits, ``_``, ``.`` and ``-``, starting with a letter or ``_``.
            fn: The callable; omit it to get a decorator.
            type: The kind of transformation.
            version: Letters, digits, ``_``, ``.``, ``+`` and ``-``.
            packages: Distributions whose versions to record with the code identity.
            description: Free text.

        Returns:
            ``fn`` unchanged, or a decorator that registers and returns its function.

        Raises:
            InvalidError: For a malformed name, version or type, or an unknown package.
            ConflictError: When ``name@version`` is registered with different code or type.
        """
        if fn is None:

            def decorator(function: F) -> F:
                self._add(name, function, type, version, packages, description)
                return function

            return decorator
        self._add(name, fn, type, version, packages, description)
        return fn

    def get(self, name: str, version: str) -> RegisteredTransform:
        """The transformation registered as ``name@version``.

        Raises:
            NotFoundError: When there is none; the message lists the known versions.
        """
        entry = self._entries.get((name, version))
        if entry is None:
            known = self.versions(name)
            hint = f"; registered versions: {', '.join(known)}" if known else ""
            raise NotFoundError(f"no transformation {name}@{version} is registered{hint}")
        return entry

    def latest(self, name: str) -> RegisteredTransform:
        """The version of ``name`` registered last.

        Raises:
            NotFoundError: When no version of ``name`` is registered.
        """
        known = self.versions(name)
        if not known:
            raise NotFoundError(f"no transformation named {name!r} is registered")
        return self._entries[(name, known[-1])]

    def versions(self, name: str) -> tuple[str, ...]:
        """Registered versions of ``name``, in registration order."""
        return tuple(version for entry_name, version in self._entries if entry_name == name)

    def entries(self) -> tuple[RegisteredTransform, ...]:
        """Every registration, by name, then in registration order."""
        ordered = sorted(
            enumerate(self._entries.values()), key=lambda item: (item[1].name, item[0])
        )
        return tuple(entry for _, entry in ordered)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _add(
        self,
        name: str,
        fn: Callable[..., Any],
        kind: TransformationType,
        version: str,
        packages: Iterable[str],
        description: str | None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidError(
                "a transformation name must start with a letter or '_' and use letters, "
                f"digits, '_', '.' or '-'. Got {name!r} instead.",
                field="name",
            )
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise InvalidError(
                "a transformation version must use letters, digits, '_', '.', '+' or '-'. "
                f"Got {version!r} instead.",
                field="version",
            )
        try:
            kind = TransformationType(kind)
        except ValueError:
            raise InvalidError(f"unknown transformation type {kind!r}", field="type") from None
        entry = RegisteredTransform(
            name, version, kind, fn, code_identity(fn, packages=packages), description
        )
        with self._lock:
            existing = self._entries.get((name, version))
            if existing is not None:
                if not existing.code.same_code(entry.code):
                    raise ConflictError(
                        f"transformation {entry.reference} is already registered with other "
                        f"code ({existing.code.qualified_name}, {existing.code.source_hash[:12]}"
                        f"); register the new code as a new version",
                        transformation=entry.reference,
                    )
                if existing.type is not entry.type:
                    raise ConflictError(
                        f"transformation {entry.reference} is already registered as "
                        f"{existing.type.value}, not {entry.type.value}",
                        transformation=entry.reference,
                    )
            self._entries[(name, version)] = entry
