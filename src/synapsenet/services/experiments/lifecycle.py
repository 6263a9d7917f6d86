"""The decisions of run tracking.

Which status changes are legal, what a run still accepts, and when a parameter may be logged
again.

Pure functions over plain values, so the rules are tested on their own; the tracker calls
them inside its locked transactions.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from synapsenet.errors import ConflictError
from synapsenet.services.experiments.models import RunStatus


class Logging(StrEnum):
    """What can be logged to a run (each has its own rule for ended runs)."""

    PARAMS = "params"
    METRICS = "metrics"
    DATASETS = "datasets"
    MODELS = "models"
    TAGS = "tags"


# A run's inputs and measurements are fixed once it ends, so the record cannot drift from what
# the training saw. A model version may still be attributed to a finished run (registering
# a model from a run after it ended is the usual workflow), never to a failed or killed one.
# Tags are annotations (notes, review outcome) and stay writable.
_ACCEPTS: Mapping[Logging, frozenset[RunStatus]] = {
    Logging.PARAMS: frozenset({RunStatus.RUNNING}),
    Logging.METRICS: frozenset({RunStatus.RUNNING}),
    Logging.DATASETS: frozenset({RunStatus.RUNNING}),
    Logging.MODELS: frozenset({RunStatus.RUNNING, RunStatus.FINISHED}),
    Logging.TAGS: frozenset(RunStatus),
}


def check_accepts(run_id: str, status: RunStatus, what: Logging) -> None:
    """Refuse logging ``what`` to a run in ``status``.

    Raises:
        ConflictError: Naming the run, its status and what was refused.
    """
    if status not in _ACCEPTS[what]:
        raise ConflictError(
            f"run {run_id} is {status.value}; it accepts no more {what.value}",
            run_id=run_id,
            status=status.value,
        )


def check_end(run_id: str, current: RunStatus, target: RunStatus) -> bool:
    """Whether ending the run with ``target`` changes anything.

    ``running`` ends as ``finished``, ``failed`` or ``killed``. Ending an ended run again with
    the status it has is a no-op (a retried request must not fail); with another status it
    is a conflict, since a run ends once.

    Returns:
        True when the run must move to ``target``; False for the no-op.

    Raises:
        ConflictError: ``target`` is ``running``, or the run already ended otherwise.
    """
    if not target.is_terminal:
        raise ConflictError(
            f"run {run_id} cannot be ended as running; end it as finished, failed or killed",
            run_id=run_id,
            status=current.value,
        )
    if current is target:
        return False
    if current.is_terminal:
        raise ConflictError(
            f"run {run_id} already ended as {current.value}; it cannot end as {target.value}",
            run_id=run_id,
            status=current.value,
        )
    return True


def new_params(
    run_id: str, logged: Mapping[str, str], incoming: Mapping[str, str]
) -> dict[str, str]:
    """The parameters of ``incoming`` not logged yet, refusing any that would change.

    Parameters are immutable: logging the value a key already has is a no-op (so a retried
    request succeeds), logging another value is a conflict. Values are compared by their
    canonical JSON text.

    Args:
        run_id: The run (named in the error).
        logged: Canonical JSON texts already logged, by key.
        incoming: Canonical JSON texts to log, by key.

    Returns:
        The keys to store, with their values.

    Raises:
        ConflictError: Naming every key whose value would change, with both values; nothing
            is logged then.
    """
    changed = sorted(k for k, v in incoming.items() if k in logged and logged[k] != v)
    if changed:
        described = ", ".join(f"{k!r} is {logged[k]}, not {incoming[k]}" for k in changed)
        raise ConflictError(
            f"params of run {run_id} are immutable: {described}",
            run_id=run_id,
            keys=changed,
        )
    return {k: v for k, v in incoming.items() if k not in logged}
