"""The HTTP gateway: one FastAPI app mounting every service under ``/v1``."""

from synapsenet.gateway.app import create_app

__all__ = ["create_app"]
