"""The error hierarchy every SynapseNet component raises.

Each error carries the HTTP status and the RFC 9457 problem type it maps to, so the gateway
can turn any of them into a ``application/problem+json`` response and the service client can
turn such a response back into the same class.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_PREFIX = "urn:synapsenet:problem:"

ERRORS_BY_CODE: dict[str, type[SynapseNetError]] = {}
"""Error classes by problem code, used to map a problem document back to an exception.

Every subclass that declares its own ``code`` registers itself here when it is defined, so
a service's errors (declared next to the code that raises them) map back too.
"""


class SynapseNetError(Exception):
    """Base class of every error SynapseNet raises on purpose.

    Attributes:
        detail: Human-readable explanation of this occurrence.
        extra: Extension members added to the problem document (e.g. ``errors``).
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            ERRORS_BY_CODE.setdefault(cls.code, cls)

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def problem_type(self) -> str:
        """The RFC 9457 ``type`` URI of this error."""
        return PROBLEM_TYPE_PREFIX + self.code

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Render this error as an RFC 9457 problem document.

        Args:
            instance: URI reference identifying this occurrence (usually the request path).

        Returns:
            The problem document as a JSON-ready dict.
        """
        problem: dict[str, Any] = {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            problem["instance"] = instance
        problem.update(self.extra)
        return problem


class InvalidError(SynapseNetError):
    """Input that is well-formed but names something wrong (HTTP 422)."""

    status = 422
    code = "invalid"
    title = "Invalid input"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["field"] = field
        super().__init__(detail, **extra)
        self.field = field


class NotFoundError(SynapseNetError):
    """A named resource does not exist (HTTP 404)."""

    status = 404
    code = "not-found"
    title = "Not found"


class ConflictError(SynapseNetError):
    """The request conflicts with the current state of a resource (HTTP 409)."""

    status = 409
    code = "conflict"
    title = "Conflict"


class UnauthorizedError(SynapseNetError):
    """No credentials, or credentials that match no active API key (HTTP 401)."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class ForbiddenError(SynapseNetError):
    """Valid credentials whose role may not perform the request (HTTP 403)."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class UnavailableError(SynapseNetError):
    """A dependency (database, bus, object store, peer service) cannot be reached (HTTP 503)."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"


class ConfigurationError(SynapseNetError):
    """A setting is missing, malformed or names something unreachable.

    Raised at start-up; the CLI prints it as one line naming the setting.
    """

    code = "configuration"
    title = "Configuration error"

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{setting}: {detail}", setting=setting)
        self.setting = setting


ERRORS_BY_CODE.setdefault(SynapseNetError.code, SynapseNetError)

_BY_STATUS: dict[int, type[SynapseNetError]] = {
    cls.status: cls
    for cls in (
        SynapseNetError,
        InvalidError,
        NotFoundError,
        ConflictError,
        UnauthorizedError,
        ForbiddenError,
        UnavailableError,
    )
}


def error_for_status(status: int) -> type[SynapseNetError]:
    """The generic error class of an HTTP status (the base class for unknown statuses)."""
    return _BY_STATUS.get(status, SynapseNetError)


def error_from_problem(problem: dict[str, Any], status: int) -> SynapseNetError:
    """Rebuild the exception that a problem document describes.

    Args:
        problem: The parsed ``application/problem+json`` body.
        status: The HTTP status of the response, used when the type is unknown.

    Returns:
        An instance of the matching :class:`SynapseNetError` subclass; an unknown type maps
        to the class with the same status, or to the base class.
    """
    problem_type = str(problem.get("type", ""))
    code = problem_type.removeprefix(PROBLEM_TYPE_PREFIX)
    cls = ERRORS_BY_CODE.get(code) if problem_type.startswith(PROBLEM_TYPE_PREFIX) else None
    if cls is None:
        cls = error_for_status(status)
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    reserved = {"type", "title", "status", "detail", "instance"}
    extra = {k: v for k, v in problem.items() if k not in reserved}
    error = cls.__new__(cls)
    SynapseNetError.__init__(error, detail, **extra)
    if isinstance(error, InvalidError):
        error.field = extra.get("field")
    return error
