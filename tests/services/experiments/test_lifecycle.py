"""The decisions of run tracking, as pure functions: status changes, logging rules, params."""

from __future__ import annotations

import itertools

import pytest

from synapsenet.errors import ConflictError
from synapsenet.services.experiments.lifecycle import (
    Logging,
    check_accepts,
    check_end,
    new_params,
)
from synapsenet.services.experiments.models import RunStatus

TERMINAL = [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED]


@pytest.mark.parametrize("target", TERMINAL)
def test_a_running_run_can_end_every_terminal_way(target: RunStatus) -> None:
    assert check_end("r1", RunStatus.RUNNING, target) is True


@pytest.mark.parametrize("status", TERMINAL)
def test_ending_again_the_same_way_is_a_no_op(status: RunStatus) -> None:
    assert check_end("r1", status, status) is False


@pytest.mark.parametrize(("current", "target"), list(itertools.permutations(TERMINAL, 2)))
def test_an_ended_run_cannot_end_another_way(current: RunStatus, target: RunStatus) -> None:
    with pytest.raises(ConflictError) as info:
        check_end("r1", current, target)
    assert info.value.detail == (
        f"run r1 already ended as {current.value}; it cannot end as {target.value}"
    )
    assert info.value.extra == {"run_id": "r1", "status": current.value}


@pytest.mark.parametrize("current", list(RunStatus))
def test_nothing_ends_as_running(current: RunStatus) -> None:
    with pytest.raises(ConflictError, match="cannot be ended as running"):
        check_end("r1", current, RunStatus.RUNNING)


def test_terminal_statuses() -> None:
    assert [s for s in RunStatus if s.is_terminal] == TERMINAL


# Expected: which statuses accept what. Written out in full, independently of the module's table.
ACCEPTS = {
    (Logging.PARAMS, RunStatus.RUNNING),
    (Logging.METRICS, RunStatus.RUNNING),
    (Logging.DATASETS, RunStatus.RUNNING),
    (Logging.MODELS, RunStatus.RUNNING),
    (Logging.MODELS, RunStatus.FINISHED),
    (Logging.TAGS, RunStatus.RUNNING),
    (Logging.TAGS, RunStatus.FINISHED),
    (Logging.TAGS, RunStatus.FAILED),
    (Logging.TAGS, RunStatus.KILLED),
}


@pytest.mark.parametrize(("what", "status"), list(itertools.product(Logging, RunStatus)))
def test_what_each_status_accepts(what: Logging, status: RunStatus) -> None:
    if (what, status) in ACCEPTS:
        check_accepts("r1", status, what)
        return
    with pytest.raises(ConflictError) as info:
        check_accepts("r1", status, what)
    assert info.value.detail == f"run r1 is {status.value}; it accepts no more {what.value}"


def test_new_params_are_the_keys_not_logged_yet() -> None:
    logged = {"depth": "6", "lr": "0.1"}
    assert new_params("r1", logged, {"depth": "6", "seed": "42"}) == {"seed": "42"}
    assert new_params("r1", logged, {"depth": "6", "lr": "0.1"}) == {}
    assert new_params("r1", {}, {"a": '"x"'}) == {"a": '"x"'}


def test_changing_params_is_refused_naming_every_changed_key() -> None:
    logged = {"depth": "6", "lr": "0.1", "opt": '"adam"'}
    with pytest.raises(ConflictError) as info:
        new_params("r1", logged, {"opt": '"sgd"', "depth": "7", "lr": "0.1", "new": "1"})
    assert info.value.detail == (
        "params of run r1 are immutable: 'depth' is 6, not 7, 'opt' is \"adam\", not \"sgd\""
    )
    assert info.value.extra == {"run_id": "r1", "keys": ["depth", "opt"]}
