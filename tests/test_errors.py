from __future__ import annotations

import pytest

from synapsenet.errors import (
    ERRORS_BY_CODE,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    SynapseNetError,
    UnauthorizedError,
    UnavailableError,
    error_from_problem,
)

GENERIC = [
    SynapseNetError,
    InvalidError,
    NotFoundError,
    ConflictError,
    UnauthorizedError,
    ForbiddenError,
    UnavailableError,
]


@pytest.mark.parametrize("cls", GENERIC)
def test_every_error_round_trips_through_its_problem_document(
    cls: type[SynapseNetError],
) -> None:
    original = cls("something went wrong", hint="look here")
    problem = original.to_problem(instance="/v1/things/1")
    assert problem["type"] == f"urn:synapsenet:problem:{cls.code}"
    assert problem["status"] == cls.status
    assert problem["instance"] == "/v1/things/1"
    rebuilt = error_from_problem(problem, cls.status)
    assert type(rebuilt) is cls
    assert rebuilt.detail == "something went wrong"
    assert rebuilt.extra == {"hint": "look here"}


def test_invalid_error_keeps_its_field() -> None:
    problem = InvalidError("weights must sum to 1", field="variants").to_problem()
    assert problem["field"] == "variants"
    rebuilt = error_from_problem(problem, 422)
    assert isinstance(rebuilt, InvalidError)
    assert rebuilt.field == "variants"


def test_unknown_problem_type_falls_back_to_the_status() -> None:
    rebuilt = error_from_problem({"type": "https://example.com/gone", "title": "Gone!"}, 404)
    assert type(rebuilt) is NotFoundError
    assert rebuilt.detail == "Gone!"


def test_unknown_status_falls_back_to_the_base_class() -> None:
    rebuilt = error_from_problem({"type": "about:blank"}, 418)
    assert type(rebuilt) is SynapseNetError
    assert rebuilt.detail == "HTTP 418"


def test_problem_without_instance_omits_it() -> None:
    assert "instance" not in ConflictError("busy").to_problem()


def test_configuration_error_names_the_setting() -> None:
    error = ConfigurationError("SYNAPSENET_PORT", "must be a number")
    assert str(error) == "SYNAPSENET_PORT: must be a number"
    assert error.setting == "SYNAPSENET_PORT"


class _QuotaError(ConflictError):
    code = "test-quota"
    title = "Quota exceeded"

    def __init__(self, team: str) -> None:
        super().__init__(f"team {team} is over its quota", team=team)


def test_a_service_error_registers_itself_and_maps_back() -> None:
    assert ERRORS_BY_CODE["test-quota"] is _QuotaError
    problem = _QuotaError("ml-platform").to_problem()
    rebuilt = error_from_problem(problem, 409)
    assert type(rebuilt) is _QuotaError
    assert rebuilt.detail == "team ml-platform is over its quota"
    assert rebuilt.extra == {"team": "ml-platform"}


def test_an_internal_error_maps_back_to_the_base_class() -> None:
    rebuilt = error_from_problem({"type": "urn:synapsenet:problem:unknown-code"}, 500)
    assert type(rebuilt) is SynapseNetError
