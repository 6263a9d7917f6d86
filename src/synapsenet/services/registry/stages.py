"""Stage transitions: which moves are legal, and what each one does to the other versions.

A version starts in ``none``. From there it may go to any other stage, and between
``staging``, ``production`` and ``archived`` in any direction (an archived version can be
promoted again to roll back); nothing returns to ``none``. Moving a version to
``production`` archives the model's current production version in the same transaction, so
a model has at most one production version at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from synapsenet.errors import ConflictError
from synapsenet.services.registry.models import ModelStage

__all__ = ["StageChange", "TransitionKind", "plan_transition"]


class TransitionKind(StrEnum):
    """What a transition means to the model's consumers (names its event)."""

    PROMOTED = "promoted"
    DEMOTED = "demoted"
    STAGE_CHANGED = "stage_changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class StageChange:
    """The plan of one transition.

    Attributes:
        kind: Promoted (to production), demoted (out of production, or archived), stage
            changed (any other move), or unchanged (already there: nothing to do).
        source: The version's stage before.
        target: Its stage after.
        archive: Versions to archive with it: the previous production version, if any.
    """

    kind: TransitionKind
    source: ModelStage
    target: ModelStage
    archive: tuple[str, ...] = ()


def plan_transition(
    version: str,
    source: ModelStage,
    target: ModelStage,
    production: tuple[str, ...] = (),
) -> StageChange:
    """Decide what moving ``version`` from ``source`` to ``target`` does.

    Args:
        version: The version being moved.
        source: Its current stage.
        target: The stage asked for.
        production: The model's versions currently in production (at most one when the
            invariant holds; all are archived by a promotion).

    Returns:
        The plan; ``UNCHANGED`` when the version is already in ``target``.

    Raises:
        ConflictError: ``target`` is ``none`` and the version has left it.
    """
    if source is target:
        return StageChange(TransitionKind.UNCHANGED, source, target)
    if target is ModelStage.NONE:
        raise ConflictError(
            f"version {version} is {source.value}; a version cannot go back to none",
            stage=source.value,
        )
    if target is ModelStage.PRODUCTION:
        others = tuple(sorted((v for v in production if v != version), key=_numeric))
        return StageChange(TransitionKind.PROMOTED, source, target, archive=others)
    if source is ModelStage.PRODUCTION or target is ModelStage.ARCHIVED:
        return StageChange(TransitionKind.DEMOTED, source, target)
    return StageChange(TransitionKind.STAGE_CHANGED, source, target)


def _numeric(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (-1, version)
