"""Sticky assignment of units (users, requests) to experiment variants.

A unit is hashed with the experiment's salt into one of ``NUM_BUCKETS`` buckets; a
:class:`BucketLayout` says which variant owns each bucket. The layout keeps every treatment arm
in a fixed *slot* of the bucket space and only grows or shrinks the start of that slot as the
treatment share changes, so raising a canary from 5% to 20% keeps every unit already in it.

The hash is xxHash3 (64-bit): a C implementation with a cheap single call and a well-studied
uniform output. A unit's bucket is ``xxh3_64(utf8(unit_id), seed=xxh3_64(utf8(salt)))`` modulo
``NUM_BUCKETS``. The salt only picks the seed (an :class:`Assigner` or a batch computes it once)
and the id is hashed as it is, so no per-id bytes are built by concatenation. The coverage
hash is the same with the seed of :func:`coverage_salt`. The hash is chosen for speed on the
request path, not for security: a salt is not a secret and nothing here resists an adversary
who picks unit ids. (Content addresses and cache keys elsewhere use BLAKE3; this is
deliberately not one of them.)

The weight helpers live in :mod:`synapsenet.services.abtesting.weights` and are re-exported
here.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import xxhash

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.weights import (
    WEIGHT_DECIMALS,
    normalize_weights,
    validate_variant_weights,
    validate_weights,
)

__all__ = [
    "NUM_BUCKETS",
    "WEIGHT_DECIMALS",
    "Assigner",
    "BucketLayout",
    "assign",
    "assign_batch",
    "bucket",
    "build_layout",
    "coverage_salt",
    "normalize_weights",
    "validate_variant_weights",
    "validate_weights",
]

NUM_BUCKETS: Final = 10_000
"""Buckets a unit hashes into; one bucket is 0.01% of traffic."""

_COVERAGE_SUFFIX: Final = ":coverage"
_hash: Final = xxhash.xxh3_64_intdigest


def bucket(salt: str, unit_id: str) -> int:
    """Hash a unit into a bucket of an experiment.

    Salt and id are separate inputs (seed and data), so ``("ab", "c")`` and ``("a", "bc")``
    stay apart without a separator.

    Args:
        salt: The experiment's salt (usually its key); hashed as UTF-8 into the seed.
        unit_id: The unit's id; hashed as UTF-8.

    Returns:
        A bucket in ``[0, NUM_BUCKETS)``.
    """
    return _hash(unit_id.encode("utf-8"), _salt_seed(salt)) % NUM_BUCKETS


def _salt_seed(salt: str) -> int:
    return _hash(salt.encode("utf-8"))


def coverage_salt(salt: str) -> str:
    """The salt of the coverage hash, independent of the variant hash.

    Args:
        salt: The experiment's salt.

    Returns:
        The salt used to decide whether a unit is inside the experiment's coverage.
    """
    return salt + _COVERAGE_SUFFIX


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True, slots=True)
class BucketLayout:
    """Which variant owns each bucket, as contiguous ranges.

    Range ``k`` covers buckets ``[starts[k], starts[k + 1])`` (the last one runs to
    ``NUM_BUCKETS``) and belongs to ``variants[k]``. Units whose coverage bucket is not below
    ``coverage_buckets`` get the control regardless of their range.

    Attributes:
        starts: Sorted first bucket of each range; ``starts[0] == 0``.
        variants: Variant index owning each range.
        num_variants: Number of variants in the experiment.
        control_index: Index of the control variant.
        coverage_buckets: Coverage-hash buckets that are inside the experiment.
    """

    starts: tuple[int, ...]
    variants: tuple[int, ...]
    num_variants: int
    control_index: int
    coverage_buckets: int = NUM_BUCKETS

    def __post_init__(self) -> None:
        if not self.starts or self.starts[0] != 0 or len(self.starts) != len(self.variants):
            raise ValueError("a layout needs one variant per range and a range starting at 0")
        if any(b <= a for a, b in itertools.pairwise(self.starts)):
            raise ValueError("range starts must be strictly increasing")
        if self.starts[-1] >= NUM_BUCKETS:
            raise ValueError(f"range starts must be below {NUM_BUCKETS}")
        if not 0 <= self.control_index < self.num_variants or any(
            not 0 <= v < self.num_variants for v in self.variants
        ):
            raise ValueError("variant indices must be in [0, num_variants)")
        if not 0 <= self.coverage_buckets <= NUM_BUCKETS:
            raise ValueError(f"coverage_buckets must be in [0, {NUM_BUCKETS}]")

    def variant_of_bucket(self, bucket_: int) -> int:
        """The variant owning a bucket, ignoring coverage.

        Args:
            bucket_: A bucket in ``[0, NUM_BUCKETS)``.

        Returns:
            The variant index.
        """
        return self.variants[bisect.bisect_right(self.starts, bucket_) - 1]

    def bucket_counts(self) -> tuple[int, ...]:
        """Buckets owned by each variant, ignoring coverage.

        Returns:
            One count per variant; they sum to ``NUM_BUCKETS``.
        """
        counts = [0] * self.num_variants
        ends = (*self.starts[1:], NUM_BUCKETS)
        for start, end, variant in zip(self.starts, ends, self.variants, strict=True):
            counts[variant] += end - start
        return tuple(counts)

    def effective_weights(self) -> tuple[Decimal, ...]:
        """Each variant's expected share of all traffic, coverage included.

        Returns:
            One share per variant, summing exactly to 1.
        """
        coverage = Fraction(self.coverage_buckets, NUM_BUCKETS)
        shares = [coverage * Fraction(c, NUM_BUCKETS) for c in self.bucket_counts()]
        shares[self.control_index] += 1 - coverage
        # Exact: bucket counts are integers over 10^4, so the shares have at most 8 places.
        return tuple(Decimal(s.numerator) / Decimal(s.denominator) for s in shares)


def build_layout(
    weights: Sequence[Decimal],
    control_index: int,
    *,
    treatment_share: Decimal | None = None,
    coverage: Decimal = Decimal(1),
) -> BucketLayout:
    """Lay variants out over the buckets so that ramps keep units sticky.

    Each treatment arm ``i`` owns a fixed slot of the bucket space, of size proportional to
    ``w_i / W`` where ``W`` is the total treatment weight, laid out in variant order. At
    treatment share ``p`` the arm gets the first ``round(p * slot_size)`` buckets of its slot
    and the control gets every other bucket. Growing ``p`` therefore only extends treatment
    ranges: every unit already in a treatment stays there.

    Args:
        weights: Target weights of every variant, in variant order, summing exactly to 1.
        control_index: Index of the control variant.
        treatment_share: Fraction of traffic that goes to all treatments together (a ramp
            step's traffic). Defaults to ``W``, the plain percentage split.
        coverage: Fraction of units inside the experiment; the others get the control.

    Returns:
        The layout.

    Raises:
        InvalidError: If the weights are invalid, the control index is out of range, or the
            share or coverage is not a ``Decimal`` in [0, 1] (or the share is positive while
            every treatment weight is 0).
    """
    validate_weights(weights)
    if not 0 <= control_index < len(weights):
        raise InvalidError(
            f"The control index must be in [0, {len(weights)}). Got {control_index} instead.",
            field="variants",
        )
    treatment_total = sum((w for i, w in enumerate(weights) if i != control_index), Decimal(0))
    share = treatment_total if treatment_share is None else treatment_share
    _check_fraction(share, "treatment_share")
    _check_fraction(coverage, "coverage")
    if share > 0 and treatment_total == 0:
        raise InvalidError(
            f"A treatment share of {share} needs a treatment with a positive weight.",
            field="treatment_share",
        )

    owners: list[tuple[int, int, int]] = []  # (start, end, variant) of treatment ranges
    if treatment_total > 0:
        p = Fraction(share)
        cumulative = Fraction(0)
        slot_start = 0
        for i, weight in enumerate(weights):
            if i == control_index:
                continue
            cumulative += Fraction(weight) / Fraction(treatment_total)
            # Slot edges come from cumulative weights so rounding never drifts past the end.
            slot_end = round(cumulative * NUM_BUCKETS)
            taken = round(p * (slot_end - slot_start))
            if taken > 0:
                owners.append((slot_start, slot_start + taken, i))
            slot_start = slot_end

    starts: list[int] = []
    variants: list[int] = []

    position = 0
    # Treatment ranges never touch another range of the same variant, so no merging is needed.
    for start, end, variant in owners:
        if start > position:
            starts.append(position)
            variants.append(control_index)
        starts.append(start)
        variants.append(variant)
        position = end
    if position < NUM_BUCKETS:
        starts.append(position)
        variants.append(control_index)

    return BucketLayout(
        starts=tuple(starts),
        variants=tuple(variants),
        num_variants=len(weights),
        control_index=control_index,
        coverage_buckets=round(Fraction(coverage) * NUM_BUCKETS),
    )


def _check_fraction(value: Decimal, field: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 1:
        raise InvalidError(
            f"The '{field}' must be a Decimal in [0, 1]. Got {value!r} instead.", field=field
        )


# --------------------------------------------------------------------------- assigning


def assign(layout: BucketLayout, salt: str, unit_id: str) -> int:
    """Assign one unit to a variant.

    For many calls on one experiment, an :class:`Assigner` avoids re-hashing the salt into its
    seed on every call.

    Args:
        layout: The experiment's bucket layout.
        salt: The experiment's salt.
        unit_id: The unit's id.

    Returns:
        The variant index.
    """
    if layout.coverage_buckets < NUM_BUCKETS and (
        bucket(coverage_salt(salt), unit_id) >= layout.coverage_buckets
    ):
        return layout.control_index
    return layout.variant_of_bucket(bucket(salt, unit_id))


def assign_batch(
    layout: BucketLayout, salt: str, unit_ids: npt.NDArray[np.generic] | Sequence[str]
) -> npt.NDArray[np.int64]:
    """Assign many units at once; agrees exactly with :func:`assign` on each id.

    Integer ids are hashed in their decimal string form, so ``42`` and ``"42"`` are the same
    unit. Byte-string arrays are hashed as they are (they are taken to be UTF-8 already).

    Args:
        layout: The experiment's bucket layout.
        salt: The experiment's salt.
        unit_ids: A 1-D numpy array of str, bytes, integers (or objects holding str or int), or
            a sequence of str (ints in it are taken in decimal form too).

    Returns:
        The variant index of each unit.

    Raises:
        InvalidError: If the ids are not strings or integers, or not one-dimensional.
    """
    kind, values = _prepare_ids(unit_ids)
    try:
        return _assign_encoded(layout, salt, _encode_ids(kind, values), len(values))
    except TypeError:
        if kind != "str":  # pragma: no cover - numpy's tolist() gives ints and bytes only
            raise
        # A plain sequence holding something other than str: check each id, then retry.
        return _assign_encoded(layout, salt, [_encode_id(u) for u in values], len(values))


_IdKind = Literal["str", "int", "bytes"]


def _prepare_ids(
    unit_ids: npt.NDArray[np.generic] | Sequence[str],
) -> tuple[_IdKind, Sequence[Any]]:
    if not isinstance(unit_ids, np.ndarray):
        return "str", unit_ids
    if unit_ids.ndim != 1:
        raise InvalidError(
            f"Unit ids must be one-dimensional. Got shape {unit_ids.shape}.", field="unit_ids"
        )
    kind = unit_ids.dtype.kind
    if kind == "U":
        return "str", unit_ids.tolist()
    if kind in "iu":
        return "int", unit_ids.tolist()
    if kind == "S":
        return "bytes", unit_ids.tolist()
    if kind == "O":
        return "bytes", [_encode_id(u) for u in unit_ids.tolist()]
    raise InvalidError(
        f"Unit ids must be strings or integers. Got dtype {unit_ids.dtype}.", field="unit_ids"
    )


def _encode_ids(kind: _IdKind, values: Sequence[Any]) -> Iterable[bytes]:
    # Lazy map()s: the per-id loop stays in C and no list of a million bytes is built.
    if kind == "int":
        return map(b"%d".__mod__, values)
    if kind == "bytes":
        return values
    return map(str.encode, values)  # UTF-8, strict: the same bytes as bucket()


def _assign_encoded(
    layout: BucketLayout, salt: str, encoded: Iterable[bytes], count: int
) -> npt.NDArray[np.int64]:
    covered_only = layout.coverage_buckets < NUM_BUCKETS
    if covered_only:
        encoded = list(encoded)  # hashed twice below: encode the ids once
    buckets = _hash_batch(_salt_seed(salt), encoded, count)
    starts = np.asarray(layout.starts, dtype=np.int64)
    variants = np.asarray(layout.variants, dtype=np.int64)
    result = variants[np.searchsorted(starts, buckets, side="right") - 1]
    if covered_only:
        covered = _hash_batch(_salt_seed(coverage_salt(salt)), encoded, count)
        result[covered >= layout.coverage_buckets] = layout.control_index
    return result


def _hash_batch(seed: int, encoded: Iterable[bytes], count: int) -> npt.NDArray[np.int64]:
    # This loop is the whole cost of a batch. The seed goes in positionally through repeat():
    # map(partial(_hash, seed=seed), ...) builds a kwargs dict per id and runs at half the rate.
    # fromiter never builds a list of a million Python ints.
    hashes = np.fromiter(map(_hash, encoded, itertools.repeat(seed)), np.uint64, count)
    return (hashes % np.uint64(NUM_BUCKETS)).astype(np.int64)


def _encode_id(unit_id: object) -> bytes:
    if isinstance(unit_id, str):
        return unit_id.encode("utf-8")
    if isinstance(unit_id, int | np.integer) and not isinstance(unit_id, bool):
        return b"%d" % int(unit_id)
    raise InvalidError(
        f"Unit ids must be strings or integers. Got {type(unit_id).__name__} {unit_id!r}.",
        field="unit_ids",
    )


class Assigner:
    """Fast assignment for one experiment: the salt's seed is computed once, not per call.

    ``assign`` is the hot path of routing. It is a closure over local names (no attribute
    lookups, no salt hashing), so a call costs one encode, one hash, one modulo and one
    ``bisect``.

    Attributes:
        layout: The experiment's bucket layout.
        salt: The experiment's salt.
        assign: Assign one unit id to a variant index; same result as :func:`assign`.

    Example:
        >>> layout = build_layout([Decimal("0.5"), Decimal("0.5")], control_index=0)
        >>> Assigner(layout, "exp-42").assign("user-1") in (0, 1)
        True
    """

    __slots__ = ("assign", "layout", "salt")

    def __init__(self, layout: BucketLayout, salt: str) -> None:
        self.layout = layout
        self.salt = salt
        self.assign: Callable[[str], int] = _compile(layout, salt)

    def assign_batch(
        self, unit_ids: npt.NDArray[np.generic] | Sequence[str]
    ) -> npt.NDArray[np.int64]:
        """Assign many units; see :func:`assign_batch`.

        Args:
            unit_ids: The units' ids.

        Returns:
            The variant index of each unit.
        """
        return assign_batch(self.layout, self.salt, unit_ids)


def _compile(layout: BucketLayout, salt: str) -> Callable[[str], int]:
    # Defaults bind everything the call needs as fast locals. The seed is passed positionally:
    # a keyword argument costs more than the hash of a short id.
    seed = _salt_seed(salt)
    starts, variants = layout.starts, layout.variants

    if layout.coverage_buckets == NUM_BUCKETS:

        def assign_covered(
            unit_id: str,
            seed: int = seed,
            starts: tuple[int, ...] = starts,
            variants: tuple[int, ...] = variants,
            hash_: Callable[[bytes, int], int] = _hash,
            locate: Callable[[Sequence[int], int], int] = bisect.bisect_right,
        ) -> int:
            return variants[locate(starts, hash_(unit_id.encode(), seed) % NUM_BUCKETS) - 1]

        return assign_covered

    def assign_partly_covered(
        unit_id: str,
        seed: int = seed,
        coverage_seed: int = _salt_seed(coverage_salt(salt)),
        cutoff: int = layout.coverage_buckets,
        control: int = layout.control_index,
        starts: tuple[int, ...] = starts,
        variants: tuple[int, ...] = variants,
        hash_: Callable[[bytes, int], int] = _hash,
        locate: Callable[[Sequence[int], int], int] = bisect.bisect_right,
    ) -> int:
        encoded = unit_id.encode()
        if hash_(encoded, coverage_seed) % NUM_BUCKETS >= cutoff:
            return control
        return variants[locate(starts, hash_(encoded, seed) % NUM_BUCKETS) - 1]

    return assign_partly_covered
