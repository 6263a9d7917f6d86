"""A process that promotes versions of one model over and over (concurrency tests).

Run by ``multiprocessing`` with the spawn method: each process opens its own connections.
"""

from __future__ import annotations

from pathlib import Path

from synapsenet.core.db import Database
from synapsenet.core.storage import LocalObjectStore
from synapsenet.services.registry import ModelRegistry


def promote_many(url: str, store_root: str, name: str, versions: list[str], rounds: int) -> None:
    """Promote each of ``versions`` in turn, ``rounds`` times."""
    database = Database(url)
    try:
        registry = ModelRegistry(database, LocalObjectStore(Path(store_root)))
        for round_index in range(rounds):
            for version in versions:
                registry.promote(name, version, reason=f"round {round_index}")
    finally:
        database.dispose()
