"""RFC 9457 problem+json responses for every error the API can return."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from synapsenet.errors import (
    ERRORS_BY_CODE,
    InvalidError,
    SynapseNetError,
    UnauthorizedError,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(
    error: SynapseNetError, request: Request, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Render ``error`` as a problem+json response for ``request``."""
    problem = error.to_problem(instance=request.url.path)
    request_id = getattr(request.state, "request_id", None)
    if request_id is not None:
        problem["request_id"] = request_id
    if isinstance(error, UnauthorizedError):
        headers = {**(headers or {}), "WWW-Authenticate": 'ApiKey header="X-API-Key"'}
    return JSONResponse(
        problem, status_code=error.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


async def _on_synapsenet_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SynapseNetError)
    if exc.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
    return problem_response(exc, request)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(err.get("loc", ())), "message": str(err.get("msg", ""))}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    error = InvalidError(
        f"{first['field']}: {first['message']}", field=first["field"], errors=errors
    )
    return problem_response(error, request)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cls = next((c for c in ERRORS_BY_CODE.values() if c.status == exc.status_code), None)
    if cls is None:
        problem = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return JSONResponse(
            problem,
            status_code=exc.status_code,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=getattr(exc, "headers", None),
        )
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    return problem_response(cls(detail), request, headers=getattr(exc, "headers", None))


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(SynapseNetError("internal error; see the server log"), request)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as ``application/problem+json``."""
    app.add_exception_handler(SynapseNetError, _on_synapsenet_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected_error)
