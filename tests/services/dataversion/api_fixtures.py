"""Data shared by the data versioning API and CLI tests."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable

import blake3


def orders_csv(rows: int, *, start: int = 0, edited: Iterable[int] = ()) -> bytes:
    """A CSV of orders ``start .. start + rows - 1``; ``edited`` ids get another amount."""
    changed = set(edited)
    lines = ["id,customer,amount"]
    for i in range(start, start + rows):
        amount = i * 3 % 1000 + (5000 if i in changed else 0)
        lines.append(f"{i},customer-{i % 97},{amount}")
    return ("\n".join(lines) + "\n").encode()


def digest(data: bytes) -> str:
    """Hex BLAKE3 of ``data``."""
    return str(blake3.blake3(data).hexdigest())


def tar_of(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """An uncompressed tar of ``files`` (path -> bytes) and symbolic ``links`` (path -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()
