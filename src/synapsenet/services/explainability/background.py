"""The background of interventional Shapley values, and the model evaluated against it.

Interventional Shapley values explain ``f(x)`` against a background distribution: the value
of a coalition ``S`` of features is ``v(S) = sum_b w_b f(x_S, b_notS)``, the model with the
features in ``S`` taken from ``x`` and the others from background row ``b``. This module
holds that distribution (:class:`Background`, weighted, duplicates merged), its k-means
summary (:func:`summarize_background`), and the batched, chunked model evaluations every
estimator is built on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import blake3
import numpy as np
import numpy.typing as npt

from synapsenet.errors import InvalidError
from synapsenet.services.explainability._shapley_inputs import (
    ModelFunction,
    as_rows,
    call_model,
    check_int,
    invalid,
)
from synapsenet.services.explainability.models import FloatArray

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Background:
    """A weighted background distribution with distinct rows.

    Build it with :meth:`from_arrays`, which merges repeated rows (summing their weights)
    so that a background with repeated rows and the same rows with weights are the same
    distribution to every estimator, down to the random coalitions KernelSHAP draws.

    Attributes:
        data: Distinct rows, ``(n_rows, n_features)``, in order of first occurrence.
        weights: Probability of each row; positive, sums to 1.
    """

    data: FloatArray
    weights: FloatArray

    @classmethod
    def from_arrays(
        cls, data: npt.ArrayLike, weights: npt.ArrayLike | None = None, *, owner: str
    ) -> Background:
        """Validate a background and its optional weights.

        Args:
            data: Background rows, ``(n_rows, n_features)``.
            weights: Non-negative weight per row (need not sum to 1); uniform when None.
            owner: The class or function validating, for error messages.

        Returns:
            The background with duplicate and zero-weight rows merged or dropped.

        Raises:
            InvalidError: If the background is empty or the weights are malformed.
        """
        rows = as_rows(data, "background", owner)
        if weights is None:
            raw = np.ones(rows.shape[0])
        else:
            raw = np.asarray(weights, dtype=np.float64)
            if raw.shape != (rows.shape[0],) or not np.all(np.isfinite(raw)):
                raise invalid(
                    "weights", owner, f"{rows.shape[0]} finite numbers", f"shape {raw.shape}"
                )
            if np.any(raw < 0.0) or raw.sum() <= 0.0:
                raise invalid(
                    "weights", owner, "non-negative with a positive sum", "negative or zero"
                )
        keep = raw > 0.0
        rows, raw = rows[keep], raw[keep]
        keys = _row_keys(rows)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        # np.unique sorts by key; renumber groups by first occurrence to keep the user's order.
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        merged = np.zeros(order.size)
        np.add.at(merged, rank[inverse.ravel()], raw)
        return cls(data=rows[first[order]], weights=merged / merged.sum())

    @property
    def n_rows(self) -> int:
        """Number of distinct rows."""
        return int(self.data.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features."""
        return int(self.data.shape[1])

    def row_seeds(self, seed: int) -> list[list[int]]:
        """A seed per row derived from ``seed`` and the row's bytes (not its position).

        KernelSHAP draws its coalitions for each background row from these, so its result
        does not depend on the order of the background rows.
        """
        seeds = []
        for row in self.data:
            digest = blake3.blake3(row.astype("<f8").tobytes()).digest(length=16)
            words = np.frombuffer(digest, dtype="<u4").tolist()
            seeds.append([seed, *words])
        return seeds


def _row_keys(rows: FloatArray) -> npt.NDArray[np.void]:
    # One opaque key per row, so np.unique compares whole rows by their bytes; -0.0 is
    # normalised to 0.0 so that equal numbers always share a key.
    canonical = np.ascontiguousarray(rows + 0.0, dtype="<f8")
    return canonical.view(np.dtype((np.void, 8 * rows.shape[1]))).ravel()


def summarize_background(
    X: npt.ArrayLike,  # noqa: N803 - scikit-learn's name for a data matrix
    k: int,
    seed: int = 0,
    *,
    weights: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Summarise a background as ``k`` weighted k-means centres.

    Every estimator's cost grows linearly with the number of background rows; ``k`` centres
    weighted by the (weighted) share of rows they represent keep the mean of the background
    and most of its spread. Fewer distinct rows than ``k`` are returned as they are.

    Args:
        X: Background rows, ``(n, M)``.
        k: Number of centres.
        seed: Seed of the k-means initialisation.
        weights: Weight per row; uniform when None.

    Returns:
        ``(centres, weights)``: ``(k, M)`` centres and their weights, which sum to 1.

    Raises:
        InvalidError: If ``k`` is not a positive int, or the background or weights are
            malformed.
    """
    owner = "summarize_background"
    clusters = check_int(k, "k", owner)
    background = Background.from_arrays(X, weights, owner=owner)
    if background.n_rows <= clusters:
        return background.data, background.weights
    from sklearn.cluster import KMeans

    kmeans = KMeans(
        n_clusters=clusters, n_init=4, random_state=check_int(seed, "seed", owner, minimum=0)
    )
    labels = kmeans.fit_predict(background.data, sample_weight=background.weights)
    mass = np.bincount(labels, weights=background.weights, minlength=clusters)
    centres = np.asarray(kmeans.cluster_centers_, dtype=np.float64)
    # k-means++ never leaves a centre without points, but a zero-mass centre would be
    # harmless noise for the estimators, so drop it rather than trust that.
    used = mass > 0.0
    return centres[used], mass[used] / mass[used].sum()


def _chunks(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def expected_outputs(
    f: ModelFunction,
    instances: FloatArray,
    masks: BoolArray,
    background: Background,
    *,
    batch_size: int,
    n_outputs: int,
) -> FloatArray:
    """Background-averaged model outputs ``sum_b w_b f(x_S, b_notS)`` for every coalition.

    Masked rows for many (instance, coalition) pairs are built at once and the model is
    called on at most ``max(batch_size, n_background)`` rows at a time, so memory stays
    bounded whatever the number of coalitions.

    Args:
        f: The vectorised model.
        instances: Rows to explain, ``(n, M)``.
        masks: Coalitions, ``(C, M)``; True takes the feature from the instance.
        background: The background.
        batch_size: Model rows per call.
        n_outputs: The model's output count ``K``.

    Returns:
        ``(n, C, K)`` averages (on the model's scale; the caller applies the link).
    """
    n, n_coalitions = instances.shape[0], masks.shape[0]
    result = np.empty((n, n_coalitions, n_outputs))
    flat = result.reshape(n * n_coalitions, n_outputs)
    pairs_per_call = max(1, batch_size // background.n_rows)
    for chunk in _chunks(n * n_coalitions, pairs_per_call):
        pair = np.arange(chunk.start, chunk.stop)
        rows = np.where(
            masks[pair % n_coalitions][:, None, :],
            instances[pair // n_coalitions][:, None, :],
            background.data[None, :, :],
        )
        outputs = call_model(f, rows.reshape(-1, rows.shape[-1]), n_outputs)
        flat[chunk] = np.einsum(
            "pbk,b->pk",
            outputs.reshape(pair.size, background.n_rows, n_outputs),
            background.weights,
        )
    return result


def per_row_outputs(
    f: ModelFunction,
    instances: FloatArray,
    masks: BoolArray,
    background: Background,
    *,
    batch_size: int,
    n_outputs: int,
) -> FloatArray:
    """Model outputs ``f(x_S, b_notS)`` where each background row has its own coalitions.

    Args:
        f: The vectorised model.
        instances: Rows to explain, ``(n, M)``.
        masks: Coalitions per background row, ``(n_background, C, M)``.
        background: The background.
        batch_size: Model rows per call.
        n_outputs: The model's output count ``K``.

    Returns:
        ``(n, n_background, C, K)`` outputs.
    """
    n = instances.shape[0]
    n_rows, n_coalitions, _ = masks.shape
    per_instance = n_rows * n_coalitions
    result = np.empty((n * per_instance, n_outputs))
    for chunk in _chunks(n * per_instance, max(1, batch_size)):
        flat = np.arange(chunk.start, chunk.stop)
        within = flat % per_instance
        row, coalition = within // n_coalitions, within % n_coalitions
        data = np.where(
            masks[row, coalition], instances[flat // per_instance], background.data[row]
        )
        result[chunk] = call_model(f, data, n_outputs)
    return result.reshape(n, n_rows, n_coalitions, n_outputs)


def check_background(
    instances: npt.ArrayLike, background: npt.ArrayLike, weights: npt.ArrayLike | None, owner: str
) -> tuple[FloatArray, Background]:
    """Validate the rows to explain against a background.

    Returns:
        The rows as ``(n, M)`` float64 and the :class:`Background`.

    Raises:
        InvalidError: On empty inputs, mismatched feature counts or malformed weights.
    """
    rows = as_rows(instances, "X", owner)
    prepared = Background.from_arrays(background, weights, owner=owner)
    if rows.shape[1] != prepared.n_features:
        raise InvalidError(
            f"The 'X' parameter of {owner} must have as many features as the background "
            f"({prepared.n_features}). Got {rows.shape[1]} instead.",
            field="X",
        )
    return rows, prepared
