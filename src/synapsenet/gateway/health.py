"""Liveness, readiness and Prometheus metrics endpoints (no API key needed)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from synapsenet.gateway.deps import PlatformDep
from synapsenet.gateway.problems import PROBLEM_MEDIA_TYPE

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    """Every backend answered."""

    status: Literal["ready"] = "ready"
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> Health:
    """Liveness: the process answers HTTP."""
    return Health(version=request.app.version)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"description": "A backend is unreachable (problem+json)."}},
)
def readyz(platform: PlatformDep, request: Request) -> Readiness | JSONResponse:
    """Readiness: the database, object store, event bus and cache all answer."""
    checks = platform.readiness()
    failing = sorted(name for name, status in checks.items() if status != "ok")
    if failing:
        return JSONResponse(
            {
                "type": "urn:synapsenet:problem:unavailable",
                "title": "Service unavailable",
                "status": 503,
                "detail": "not ready: " + ", ".join(f"{n} ({checks[n]})" for n in failing),
                "instance": request.url.path,
                "checks": checks,
            },
            status_code=503,
            media_type=PROBLEM_MEDIA_TYPE,
        )
    return Readiness(checks=checks)


@router.get("/metrics", response_class=Response)
def metrics(platform: PlatformDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(platform.metrics), media_type=CONTENT_TYPE_LATEST)
