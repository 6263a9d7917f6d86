"""SynapseNet: safe model rollouts, versioned training data, and explained predictions.

``synapsenet.Client`` (the SDK over every service) and ``synapsenet.start_run`` (run
tracking) are imported on first use, so ``import synapsenet`` stays light.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("synapsenet")
except PackageNotFoundError:  # pragma: no cover  (running from a source tree)
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from synapsenet.sdk import Client
    from synapsenet.services.experiments.active_run import start_run

__all__ = ["Client", "__version__", "start_run"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from synapsenet.sdk import Client

        return Client
    if name == "start_run":
        from synapsenet.services.experiments.active_run import start_run

        return start_run
    raise AttributeError(f"module 'synapsenet' has no attribute {name!r}")
