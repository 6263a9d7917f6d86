"""Assignment: hashing, bucket layouts, stickiness under ramps, weights."""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, chisquare

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting import assignment, weights
from synapsenet.services.abtesting.assignment import (
    NUM_BUCKETS,
    Assigner,
    BucketLayout,
    assign,
    assign_batch,
    bucket,
    build_layout,
    coverage_salt,
)
from synapsenet.services.abtesting.weights import (
    normalize_weights,
    validate_variant_weights,
    validate_weights,
)

D = Decimal
IDS = [f"user-{i}" for i in range(200_000)]


def buckets_of(salt: str, ids: list[str]) -> npt.NDArray[np.int64]:
    return np.array([bucket(salt, u) for u in ids], dtype=np.int64)


@st.composite
def variant_weights(draw: st.DrawFn) -> tuple[list[Decimal], int]:
    """Weights of 2..5 variants in units of 0.0001 summing to 1, and a control index."""
    k = draw(st.integers(2, 5))
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=k - 1, max_size=k - 1)))
    edges = [0, *cuts, 10_000]
    weights = [D(b - a).scaleb(-4) for a, b in itertools.pairwise(edges)]
    return weights, draw(st.integers(0, k - 1))


shares = st.integers(0, 10_000).map(lambda u: D(u).scaleb(-4))
unit_ids = st.text(min_size=0, max_size=20)


# --------------------------------------------------------------------------- hashing


def test_bucket_is_xxh3_of_utf8_id_seeded_with_xxh3_of_utf8_salt() -> None:
    seed = xxhash.xxh3_64_intdigest("exp-ü".encode())
    expected = xxhash.xxh3_64_intdigest("ünï-ид".encode(), seed=seed) % NUM_BUCKETS
    assert bucket("exp-ü", "ünï-ид") == expected


def test_bucket_is_pinned_so_existing_assignments_never_move() -> None:
    # Changing the hash silently would reshuffle every running experiment.
    assert bucket("exp-1", "user-42") == 241
    assert bucket(coverage_salt("exp-1"), "user-42") == 9545
    assert bucket("", "") == 3
    # Salt and id are separate inputs, so moving a character across them changes the bucket.
    assert (bucket("ab", "c"), bucket("a", "bc")) == (7184, 1390)


def test_single_batch_and_assigner_assignments_are_pinned() -> None:
    # Half coverage. user-4's variant bucket (4472) is in the treatment but its coverage bucket
    # (5274) is not, so it gets the control.
    layout = build_layout([D("0.5"), D("0.5")], control_index=0, coverage=D("0.5"))
    ids = [f"user-{i}" for i in range(8)]
    expected = [0, 0, 1, 0, 0, 0, 0, 1]
    assert [assign(layout, "pin", u) for u in ids] == expected
    assert [Assigner(layout, "pin").assign(u) for u in ids] == expected
    assert assign_batch(layout, "pin", ids).tolist() == expected
    assert assign_batch(layout, "pin", np.array(ids)).tolist() == expected


def test_buckets_are_uniform_chi_square() -> None:
    counts = np.bincount(buckets_of("exp-uniform", IDS), minlength=NUM_BUCKETS)
    assert chisquare(counts).pvalue > 0.001


def test_coverage_hash_is_independent_of_variant_hash() -> None:
    ids = IDS[:50_000]
    variant_half = buckets_of("exp-ind", ids) < NUM_BUCKETS // 2
    coverage_half = buckets_of(coverage_salt("exp-ind"), ids) < NUM_BUCKETS // 2
    table = [
        [np.sum(variant_half & coverage_half), np.sum(variant_half & ~coverage_half)],
        [np.sum(~variant_half & coverage_half), np.sum(~variant_half & ~coverage_half)],
    ]
    assert chi2_contingency(table).pvalue > 0.001


def test_different_salts_split_independently() -> None:
    ids = IDS[:50_000]
    a = buckets_of("exp-a", ids) < NUM_BUCKETS // 2
    b = buckets_of("exp-b", ids) < NUM_BUCKETS // 2
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert chi2_contingency(table).pvalue > 0.001


def test_variant_shares_match_weights() -> None:
    weights = [D("0.5"), D("0.3"), D("0.2")]
    layout = build_layout(weights, control_index=0)
    shares_seen = np.bincount(assign_batch(layout, "exp-shares", IDS), minlength=3) / len(IDS)
    np.testing.assert_allclose(shares_seen, [0.5, 0.3, 0.2], atol=0.005)


# --------------------------------------------------------------------------- layout


def test_percentage_split_layout_gives_each_variant_its_weight() -> None:
    layout = build_layout([D("0.5"), D("0.3"), D("0.2")], control_index=0)
    assert layout.bucket_counts() == (5_000, 3_000, 2_000)
    assert layout.effective_weights() == (D("0.5"), D("0.3"), D("0.2"))
    assert layout.starts == (0, 3_000, 6_000, 8_000)
    assert layout.variants == (1, 0, 2, 0)


@given(variant_weights())
def test_percentage_split_bucket_counts_track_weights(case: tuple[list[Decimal], int]) -> None:
    weights, control = case
    counts = build_layout(weights, control).bucket_counts()
    assert sum(counts) == NUM_BUCKETS
    for i, (count, weight) in enumerate(zip(counts, weights, strict=True)):
        # Slot edges and the share are each rounded once: at most one bucket off per rounding.
        tolerance = 2 * (len(weights) - 1) if i == control else 2
        assert abs(count - weight * NUM_BUCKETS) <= tolerance


def test_ramp_share_gives_treatments_their_fraction_of_their_slots() -> None:
    layout = build_layout(
        [D("0.5"), D("0.25"), D("0.25")], control_index=0, treatment_share=D("0.05")
    )
    assert layout.bucket_counts() == (9_500, 250, 250)


def test_zero_share_sends_everything_to_the_control() -> None:
    layout = build_layout([D("0.5"), D("0.5")], control_index=1, treatment_share=D(0))
    assert layout.starts == (0,)
    assert layout.variants == (1,)


def test_full_share_leaves_the_control_nothing() -> None:
    layout = build_layout([D("0.9"), D("0.1")], control_index=0, treatment_share=D(1))
    assert layout.bucket_counts() == (0, NUM_BUCKETS)


@settings(max_examples=60, deadline=None)
@given(variant_weights(), shares, shares, st.text(max_size=12))
def test_raising_the_share_keeps_every_bucket_already_in_a_treatment(
    case: tuple[list[Decimal], int], a: Decimal, b: Decimal, salt: str
) -> None:
    weights, control = case
    if all(w == 0 for i, w in enumerate(weights) if i != control):
        return
    low, high = sorted((a, b))
    before = build_layout(weights, control, treatment_share=low)
    after = build_layout(weights, control, treatment_share=high)
    everything = np.arange(NUM_BUCKETS)
    old = np.array([before.variant_of_bucket(int(x)) for x in everything])
    new = np.array([after.variant_of_bucket(int(x)) for x in everything])
    in_treatment = old != control
    np.testing.assert_array_equal(new[in_treatment], old[in_treatment])


@settings(max_examples=100, deadline=None)
@given(variant_weights(), shares, shares, st.text(max_size=12), st.lists(unit_ids, max_size=30))
def test_ramp_keeps_existing_canary_users(
    case: tuple[list[Decimal], int], a: Decimal, b: Decimal, salt: str, ids: list[str]
) -> None:
    weights, control = case
    if all(w == 0 for i, w in enumerate(weights) if i != control):
        return
    low, high = sorted((a, b))
    before = build_layout(weights, control, treatment_share=low, coverage=D("0.8"))
    after = build_layout(weights, control, treatment_share=high, coverage=D("0.8"))
    for unit_id in ids:
        variant = assign(before, salt, unit_id)
        if variant != control:
            assert assign(after, salt, unit_id) == variant


def test_canary_from_5_to_20_percent_keeps_its_users() -> None:
    weights = [D("0.5"), D("0.5")]
    five = build_layout(weights, 0, treatment_share=D("0.05"))
    twenty = build_layout(weights, 0, treatment_share=D("0.20"))
    ids = IDS[:20_000]
    at_five = assign_batch(five, "canary", ids)
    at_twenty = assign_batch(twenty, "canary", ids)
    assert np.all(at_twenty[at_five == 1] == 1)
    assert 0.04 < at_five.mean() < 0.06
    assert 0.18 < at_twenty.mean() < 0.22


def test_units_outside_coverage_get_the_control() -> None:
    layout = build_layout([D("0.5"), D("0.5")], control_index=0, coverage=D("0.3"))
    ids = IDS[:50_000]
    variants = assign_batch(layout, "cov", ids)
    covered = buckets_of(coverage_salt("cov"), ids) < layout.coverage_buckets
    assert np.all(variants[~covered] == 0)
    assert abs(variants[covered].mean() - 0.5) < 0.02
    assert abs(variants.mean() - 0.15) < 0.01
    assert layout.effective_weights() == (D("0.85"), D("0.15"))


def test_zero_coverage_assigns_everyone_the_control() -> None:
    layout = build_layout([D("0.1"), D("0.9")], control_index=1, coverage=D(0))
    assert set(assign_batch(layout, "none", IDS[:1_000]).tolist()) == {1}
    assert {Assigner(layout, "none").assign(u) for u in IDS[:1_000]} == {1}


def test_layout_rejects_malformed_ranges() -> None:
    with pytest.raises(ValueError, match="start"):
        BucketLayout(starts=(5,), variants=(0,), num_variants=1, control_index=0)
    with pytest.raises(ValueError, match="increasing"):
        BucketLayout(starts=(0, 10, 10), variants=(0, 1, 0), num_variants=2, control_index=0)
    with pytest.raises(ValueError, match="below"):
        BucketLayout(starts=(0, NUM_BUCKETS), variants=(0, 1), num_variants=2, control_index=0)
    with pytest.raises(ValueError, match="variant indices"):
        BucketLayout(starts=(0,), variants=(2,), num_variants=2, control_index=0)
    with pytest.raises(ValueError, match="coverage"):
        BucketLayout(
            starts=(0,), variants=(0,), num_variants=1, control_index=0, coverage_buckets=-1
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"treatment_share": D("1.1")}, "treatment_share"),
        ({"treatment_share": 0.5}, "treatment_share"),
        ({"coverage": D("-0.1")}, "coverage"),
        ({"coverage": D("NaN")}, "coverage"),
    ],
)
def test_build_layout_rejects_shares_outside_0_1(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidError) as info:
        build_layout([D("0.5"), D("0.5")], 0, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_build_layout_rejects_share_without_any_treatment_weight() -> None:
    with pytest.raises(InvalidError, match="positive weight"):
        build_layout([D(1), D(0)], 0, treatment_share=D("0.1"))
    assert build_layout([D(1), D(0)], 0).bucket_counts() == (NUM_BUCKETS, 0)


def test_build_layout_rejects_control_index_out_of_range() -> None:
    with pytest.raises(InvalidError, match="control index"):
        build_layout([D("0.5"), D("0.5")], 2)


# --------------------------------------------------------------------------- single vs batch


@settings(max_examples=50, deadline=None)
@given(variant_weights(), shares, shares, st.text(max_size=12), st.lists(unit_ids, max_size=50))
def test_batch_single_and_assigner_agree_on_str_ids(
    case: tuple[list[Decimal], int], share: Decimal, coverage: Decimal, salt: str, ids: list[str]
) -> None:
    weights, control = case
    if all(w == 0 for i, w in enumerate(weights) if i != control):
        share = D(0)
    layout = build_layout(weights, control, treatment_share=share, coverage=coverage)
    single = [assign(layout, salt, u) for u in ids]
    assigner = Assigner(layout, salt)
    assert [assigner.assign(u) for u in ids] == single
    assert assign_batch(layout, salt, ids).tolist() == single
    assert assigner.assign_batch(np.array(ids, dtype=object)).tolist() == single
    if ids and all("\x00" not in u for u in ids):  # numpy's U dtype strips trailing NULs
        assert assign_batch(layout, salt, np.array(ids)).tolist() == single


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50),
    shares,
    st.sampled_from(["ints", "50%d-off", "%%s", ""]),
)
def test_integer_ids_are_assigned_as_their_decimal_strings(
    ids: list[int], coverage: Decimal, salt: str
) -> None:
    layout = build_layout([D("0.4"), D("0.35"), D("0.25")], 1, coverage=coverage)
    single = [assign(layout, salt, str(u)) for u in ids]
    assert assign_batch(layout, salt, np.array(ids, dtype=np.int64)).tolist() == single
    assert assign_batch(layout, salt, np.array(ids, dtype=object)).tolist() == single


def test_batch_agrees_with_single_on_random_ids() -> None:
    rng = np.random.default_rng(7)
    layout = build_layout([D("0.6"), D("0.2"), D("0.2")], 0, treatment_share=D("0.3"))
    ints = rng.integers(0, 2**63, size=5_000, dtype=np.uint64)
    strs = [f"{x:x}-é" for x in rng.integers(0, 2**62, size=5_000)]
    assert assign_batch(layout, "r", ints).tolist() == [assign(layout, "r", str(x)) for x in ints]
    assert assign_batch(layout, "r", strs).tolist() == [assign(layout, "r", s) for s in strs]
    fast = Assigner(layout, "r").assign
    assert [fast(s) for s in strs] == [assign(layout, "r", s) for s in strs]
    as_bytes = np.array([s.encode() for s in strs])
    assert assign_batch(layout, "r", as_bytes).tolist() == [assign(layout, "r", s) for s in strs]


def test_batch_returns_int64_and_handles_empty_input() -> None:
    layout = build_layout([D("0.5"), D("0.5")], 0)
    assert assign_batch(layout, "e", []).dtype == np.int64
    assert assign_batch(layout, "e", np.array([], dtype=np.int64)).shape == (0,)


@pytest.mark.parametrize(
    "ids",
    [
        np.zeros((2, 2), dtype=np.int64),
        np.array([1.5, 2.5]),
        np.array([True, False]),
        np.array(["a", 1.5], dtype=object),
        ["a", 1.5],
    ],
)
def test_batch_rejects_ids_that_are_not_strings_or_integers(ids: object) -> None:
    layout = build_layout([D("0.5"), D("0.5")], 0)
    with pytest.raises(InvalidError) as info:
        assign_batch(layout, "bad", ids)  # type: ignore[arg-type]
    assert info.value.field == "unit_ids"


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("weights", "controls", "message"),
    [
        ([D("0.5"), D("0.4")], [True, False], "sum exactly to 1. Got 0.9"),
        ([D("1.2"), D("-0.2")], [True, False], "Weight 1 must be >= 0"),
        ([D("0.5"), D("0.5")], [False, False], "Exactly one variant must be the control. Got 0"),
        ([D("0.5"), D("0.5")], [True, True], "Exactly one variant must be the control. Got 2"),
        ([D(1)], [True], "at least 2 variants"),
        ([0.5, 0.5], [True, False], "Weight 0 must be a finite Decimal"),
        ([D("Infinity"), D(0)], [True, False], "finite Decimal"),
        ([D("0.5"), D("0.5")], [True], "2 weights for 1 variants"),
    ],
)
def test_variant_weights_are_refused_with_a_message_naming_the_problem(
    weights: list[Decimal], controls: list[bool], message: str
) -> None:
    with pytest.raises(InvalidError, match=message) as info:
        validate_variant_weights(weights, controls)
    assert info.value.field == "variants"


def test_weight_helpers_are_still_importable_from_assignment() -> None:
    for name in weights.__all__:
        assert getattr(assignment, name) is getattr(weights, name)
        assert name in assignment.__all__


def test_valid_variant_weights_return_the_control_index() -> None:
    assert validate_variant_weights([D("0.3"), D("0.7")], [False, True]) == 1
    validate_weights([D(1)])
    with pytest.raises(InvalidError, match="At least one weight"):
        validate_weights([])


def test_normalize_weights_uses_largest_remainder() -> None:
    assert normalize_weights([1 / 3, 1 / 3, 1 / 3]) == (D("0.3334"), D("0.3333"), D("0.3333"))
    assert normalize_weights([2.0, 1.0, 1.0]) == (D("0.5"), D("0.25"), D("0.25"))
    assert normalize_weights([0.0, 0.0]) == (D("0.5"), D("0.5"))


def test_normalize_weights_applies_floor_and_eligibility() -> None:
    result = normalize_weights([0.0, 1.0, 5.0], floor=D("0.01"), eligible=[True, True, False])
    assert result == (D("0.01"), D("0.99"), D(0))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=8),
    st.integers(0, 1_000).map(lambda u: D(u).scaleb(-4)),
    st.data(),
)
def test_normalized_weights_sum_exactly_to_one_and_keep_floors(
    raw: list[float], floor: Decimal, data: st.DataObject
) -> None:
    eligible = data.draw(st.lists(st.booleans(), min_size=len(raw), max_size=len(raw)))
    if not any(eligible):
        eligible[0] = True
    if floor * sum(eligible) > 1:
        floor = D(0)
    result = normalize_weights(raw, floor=floor, eligible=eligible)
    assert sum(result) == 1
    for weight, ok in zip(result, eligible, strict=True):
        assert weight.as_tuple().exponent == -4
        assert weight >= floor if ok else weight == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": [0.5, -0.1]}, "Weight 1 must be a finite number >= 0"),
        ({"weights": [0.5, float("nan")]}, "finite number"),
        ({"weights": [0.5, 0.5], "eligible": [False, False]}, "At least one arm"),
        ({"weights": [0.5, 0.5], "eligible": [True]}, "2 weights but 1"),
        ({"weights": [0.5, 0.5], "floor": D("0.6")}, "exceeds 1"),
        ({"weights": [0.5, 0.5], "floor": D("0.00001")}, "at most 4 decimal places"),
        ({"weights": [0.5, 0.5], "floor": 0.1}, "must be a Decimal"),
    ],
)
def test_normalize_weights_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidError, match=message):
        normalize_weights(**kwargs)  # type: ignore[arg-type]
