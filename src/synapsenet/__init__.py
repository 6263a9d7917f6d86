"""SynapseNet: safe model rollouts, versioned training data, and explained predictions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synapsenet")
except PackageNotFoundError:  # pragma: no cover  (running from a source tree)
    __version__ = "0.0.0"

__all__ = ["__version__"]
