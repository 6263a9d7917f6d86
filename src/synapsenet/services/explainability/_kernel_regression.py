"""The KernelSHAP regression: constrained weighted least squares and its standard errors.

For one design (coalition masks ``z_c`` with kernel weights ``w_c``) and targets
``y_c = v(S_c) - v(empty)``, the Shapley values solve

    minimise  sum_c w_c (y_c - z_c . phi)^2   subject to   sum_j phi_j = v(full) - v(empty),

the efficiency constraint held exactly. With ``A = sum_c w_c z_c z_c^T`` the KKT system
``[[A, 1], [1^T, 0]]`` has the (pseudo-)inverse ``[[G, g], [g^T, .]]`` and
``phi = G (sum_c w_c z_c y_c) + g (v(full) - v(empty))``. ``A``, ``G`` and ``g`` depend only
on the design, so they are computed once and shared by every instance and output.

Standard errors (a stratified sandwich estimator). Linearising the solution around the
population fit gives ``phi_hat - phi = G r`` with ``r = sum_c w_c z_c e_c`` (``e_c`` the
residuals; terms along ``1`` vanish because ``G 1 = 0``). Enumerated strata contribute
nothing random to ``r``. In a sampled stratum ``h`` with ``k_h`` of ``N_h`` units drawn
without replacement, ``r`` is a sum of ``k_h`` unit totals ``U_i = sum_{c in i} w_c z_c
e_c``, so ``Var(phi_hat_j) = sum_h k_h (1 - k_h / N_h) s_h^2`` with ``s_h^2`` the sample
variance of ``(G U_i)_j`` over the stratum's units. A sampled stratum with fewer than two
units has no variance estimate (and one with none leaves part of the kernel mass
unexplored): the standard errors are then NaN. Paired designs on ``M`` features have
``floor(M / 2)`` strata, so about ``4 * floor(M / 2)`` coalitions give every one two units.
Several independent designs (one per background row) combine as ``phi = sum_d omega_d phi_d`` and
``Var = sum_d omega_d^2 Var_d``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from synapsenet.services.explainability._coalitions import BoolArray, CoalitionSelection
from synapsenet.services.explainability.models import FloatArray


@cache
def _controller() -> ThreadpoolController:
    # Scanning the loaded libraries takes milliseconds; limiting through a kept
    # controller takes microseconds.
    return ThreadpoolController()


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread inside the block.

    The regression's matrix products are batches of small matrices that gain nothing from
    threads, and on a busy machine OpenBLAS threads contending with the model's own thread
    pool (LightGBM's OpenMP threads keep spinning after a prediction) made them 5-15x
    slower than on one thread.
    """
    with _controller().limit(limits=1, user_api="blas"):
        yield


class Grams:
    """Unweighted Gram matrices ``sum_c z_c z_c^T`` per design and coalition group.

    Rounds only ever add coalitions, so the Gram matrices are updated with the new columns
    instead of being recomputed; a group's weight changes between rounds, its Gram
    matrix does not. Counts are exact in float32 (below 2^24), which halves the cost.
    """

    def __init__(self, designs: BoolArray, n_groups: int) -> None:
        n_designs, _, n_features = designs.shape
        self.designs = designs
        self.sums = np.zeros((n_designs, n_groups, n_features, n_features))
        self.seen = np.zeros(designs.shape[1], dtype=bool)

    def extend(self, selection: CoalitionSelection) -> FloatArray:
        """Add the selection's new coalitions and return ``A = sum_c w_c z_c z_c^T``."""
        new = ~self.seen[selection.columns]
        for group in np.unique(selection.group[new]):
            columns = selection.columns[new & (selection.group == group)]
            for designs in _design_chunks(self.designs.shape[0], columns.size, self.sums.shape[2]):
                masks = self.designs[designs][:, columns, :].astype(np.float32)
                self.sums[designs, group] += np.matmul(masks.transpose(0, 2, 1), masks)
        self.seen[selection.columns] = True
        weights = selection.group_weights
        return np.asarray(
            np.einsum("g,dgmn->dmn", weights, self.sums[:, : weights.size]), dtype=np.float64
        )


@dataclass(frozen=True)
class DesignSolver:
    """The design-only part of the regression for a batch of designs.

    Attributes:
        designs: All designs, ``(D, C_total, M)``; the solver uses the selected columns.
        selection: Which coalitions are used, their weights and strata.
        gain: ``G`` per design, ``(D, M, M)``.
        offset: ``g`` per design, ``(D, M)``.
    """

    designs: BoolArray
    selection: CoalitionSelection
    gain: FloatArray
    offset: FloatArray

    @classmethod
    def build(
        cls, designs: BoolArray, selection: CoalitionSelection, grams: Grams | None = None
    ) -> DesignSolver:
        """Prepare the regression for ``designs[:, selection.columns]``.

        Args:
            designs: All designs.
            selection: The coalitions used.
            grams: Gram matrices of the previous rounds, extended in place; None starts
                from nothing.
        """
        n_designs, _, n_features = designs.shape
        if grams is None:
            grams = Grams(designs, selection.group_weights.size)
        kkt = np.zeros((n_designs, n_features + 1, n_features + 1))
        with single_threaded_blas():
            kkt[:, :n_features, :n_features] = grams.extend(selection)
            kkt[:, :n_features, n_features] = 1.0
            kkt[:, n_features, :n_features] = 1.0
            inverse = _inverse(kkt)
        return cls(
            designs=designs,
            selection=selection,
            gain=inverse[:, :n_features, :n_features],
            offset=inverse[:, :n_features, n_features],
        )

    def fit(self, targets: FloatArray, totals: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Shapley values and their sampling variances, per design.

        Args:
            targets: ``v(S_c) - v_d(empty)`` for the used coalitions, ``(n, D, C, K)``.
            totals: ``v(full) - v_d(empty)``, ``(n, D, K)``.

        Returns:
            ``(values, variances)``, each ``(n, D, M, K)``. Each design's values sum to its
            total. Variances are zero when every coalition was enumerated and NaN when a
            sampled stratum has fewer than two units.
        """
        n, n_designs, n_coalitions, n_outputs = targets.shape
        n_features = self.gain.shape[1]
        columns = self.selection.columns
        weights = self.selection.weights
        stacked = targets.transpose(1, 2, 0, 3).reshape(n_designs, n_coalitions, n * n_outputs)
        flat_totals = totals.transpose(1, 0, 2).reshape(n_designs, 1, n * n_outputs)
        values = np.empty((n_designs, n_features, n * n_outputs))
        variances = np.empty_like(values)
        with single_threaded_blas():
            # Designs are independent: a chunk at a time bounds the float copy of the masks.
            for chunk in _design_chunks(n_designs, columns.size, n_features):
                masks = self.designs[chunk][:, columns, :].astype(np.float64)
                moments = np.matmul(masks.transpose(0, 2, 1), stacked[chunk] * weights[:, None])
                values[chunk] = np.matmul(self.gain[chunk], moments) + (
                    self.offset[chunk, :, None] * flat_totals[chunk]
                )
                variances[chunk] = self._variances(
                    masks, self.gain[chunk], stacked[chunk], values[chunk]
                )

        def unstack(array: FloatArray) -> FloatArray:
            shaped = array.reshape(n_designs, n_features, n, n_outputs).transpose(2, 0, 1, 3)
            return np.asarray(shaped, dtype=np.float64)

        return unstack(values), unstack(variances)

    def _variances(
        self, masks: FloatArray, gain: FloatArray, targets: FloatArray, values: FloatArray
    ) -> FloatArray:
        """The stratified sandwich estimator, on stacked ``(D, ., n * K)`` arrays."""
        selection = self.selection
        variances = np.zeros_like(values)
        if selection.units.size == 0:
            return variances
        if np.any(selection.units < 2):
            return np.full_like(values, np.nan)
        start = masks.shape[1] - selection.n_sampled
        sampled = masks[:, start:]
        # Per coalition: its weighted residual (a) and its direction G z (projected).
        weighted = (targets[:, start:] - np.matmul(sampled, values)) * selection.weights[
            None, start:, None
        ]
        projected = np.matmul(sampled, gain)  # G is symmetric: rows are (G z_c)^T
        per_unit = selection.per_unit
        start = 0
        for units, population in zip(selection.units, selection.population, strict=True):
            count = int(units) * per_unit
            members_a = [weighted[:, start + m : start + count : per_unit] for m in range(per_unit)]
            members_p = [
                projected[:, start + m : start + count : per_unit] for m in range(per_unit)
            ]
            start += count
            # Unit totals P_i = sum_m p_m a_m (outer products); their sum and sum of
            # squares come out of a few matrix products, without forming every P_i.
            total = sum(
                np.matmul(p.transpose(0, 2, 1), a)
                for p, a in zip(members_p, members_a, strict=True)
            )
            square = sum(
                np.matmul(
                    (members_p[i] * members_p[j]).transpose(0, 2, 1), members_a[i] * members_a[j]
                )
                * (1.0 if i == j else 2.0)
                for i in range(per_unit)
                for j in range(i, per_unit)
            )
            spread = np.maximum(square - total**2 / units, 0.0) / (units - 1.0)
            variances += units * (1.0 - units / population) * spread
        return variances


_CHUNK_ELEMENTS = 1 << 22
"""Mask elements converted to floats at a time: 32 MB as float64."""


def _design_chunks(n_designs: int, n_coalitions: int, n_features: int) -> list[slice]:
    size = max(1, _CHUNK_ELEMENTS // max(1, n_coalitions * n_features))
    return [slice(start, min(start + size, n_designs)) for start in range(0, n_designs, size)]


def _inverse(kkt: FloatArray) -> FloatArray:
    """Inverse of each KKT matrix; the pseudo-inverse where one is (nearly) singular.

    A budget too small to pin every feature down leaves the system singular: the
    pseudo-inverse then gives the minimum-norm values that still satisfy efficiency.
    """
    size = kkt.shape[1]
    identity = np.eye(size)
    try:
        inverse = np.linalg.inv(kkt)
        residual = np.abs(np.matmul(kkt, inverse) - identity).max(axis=(1, 2))
        bad = ~(residual < 1e-9)
    except np.linalg.LinAlgError:
        inverse = np.empty_like(kkt)
        bad = np.ones(kkt.shape[0], dtype=bool)
    if np.any(bad):
        inverse[bad] = np.linalg.pinv(kkt[bad], rcond=1e-12, hermitian=True)
    return np.asarray(inverse, dtype=np.float64)
