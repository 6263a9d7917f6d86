"""Stage transition rules: what each move does, as a pure decision."""

from __future__ import annotations

import pytest

from synapsenet.errors import ConflictError
from synapsenet.services.registry.models import ModelStage
from synapsenet.services.registry.stages import StageChange, TransitionKind, plan_transition

NONE, STAGING, PRODUCTION, ARCHIVED = (
    ModelStage.NONE,
    ModelStage.STAGING,
    ModelStage.PRODUCTION,
    ModelStage.ARCHIVED,
)


@pytest.mark.parametrize("stage", list(ModelStage))
def test_a_move_to_the_current_stage_changes_nothing(stage: ModelStage) -> None:
    assert plan_transition("3", stage, stage, ("3",)) == StageChange(
        TransitionKind.UNCHANGED, stage, stage
    )


@pytest.mark.parametrize("source", [STAGING, PRODUCTION, ARCHIVED])
def test_no_version_goes_back_to_none(source: ModelStage) -> None:
    with pytest.raises(ConflictError, match="cannot go back to none") as caught:
        plan_transition("2", source, NONE)
    assert caught.value.extra == {"stage": source.value}


def test_promotion_archives_every_other_production_version_in_order() -> None:
    change = plan_transition("12", STAGING, PRODUCTION, ("9", "10", "12"))
    assert change == StageChange(TransitionKind.PROMOTED, STAGING, PRODUCTION, ("9", "10"))


def test_promotion_of_an_archived_version_rolls_back_to_it() -> None:
    change = plan_transition("1", ARCHIVED, PRODUCTION, ("2",))
    assert (change.kind, change.archive) == (TransitionKind.PROMOTED, ("2",))


def test_the_first_promotion_archives_nothing() -> None:
    assert plan_transition("1", NONE, PRODUCTION).archive == ()


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        (PRODUCTION, ARCHIVED, TransitionKind.DEMOTED),
        (PRODUCTION, STAGING, TransitionKind.DEMOTED),
        (STAGING, ARCHIVED, TransitionKind.DEMOTED),
        (NONE, ARCHIVED, TransitionKind.DEMOTED),
        (NONE, STAGING, TransitionKind.STAGE_CHANGED),
        (ARCHIVED, STAGING, TransitionKind.STAGE_CHANGED),
    ],
)
def test_moves_out_of_production_or_into_the_archive_are_demotions(
    source: ModelStage, target: ModelStage, kind: TransitionKind
) -> None:
    change = plan_transition("4", source, target, ("4",) if source is PRODUCTION else ())
    assert (change.kind, change.source, change.target, change.archive) == (
        kind,
        source,
        target,
        (),
    )


def test_non_numeric_production_names_sort_first() -> None:
    # Only numbered versions exist, but the order must not fail on anything else.
    assert plan_transition("2", NONE, PRODUCTION, ("x", "1")).archive == ("x", "1")
