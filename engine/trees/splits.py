"""Split finding on the driver: every node's best split from its histogram, by the second-order gain.

For a node with gradient and Hessian sums ``G, H`` (weighted) split into ``L`` and ``R``::

    gain = G_L²/(H_L + λ) + G_R²/(H_R + λ) − G²/(H + λ)

This is XGBoost's ``loss_chg`` and LightGBM's split gain (both leave out the ½ of the second-order loss
reduction, which is ``gain / 2``, and compare the gain itself with ``γ``). A split is a candidate when

- both children have weight ``Σ w > 0`` and Hessian sum ``>= min_child_weight`` (XGBoost's
  ``min_child_weight``, LightGBM's ``min_sum_hessian_in_leaf``), and
- ``gain > min_split_gain`` (XGBoost's ``gamma``, LightGBM's ``min_gain_to_split``; strictly greater, so a
  split needs a positive gain even when ``γ = 0``).

A leaf's value is ``−G/(H + λ) · learning_rate`` (:func:`leaf_values`).

Trees of vector leaves (a K-class random forest) have ``K`` gradient sums ``G_k`` and one Hessian sum per
node (:mod:`.histograms`' ``K + 2`` channels); their gain is the sum over the outputs,
``Σ_k [G_Lk²/(H_L + λ) + G_Rk²/(H_R + λ) − G_k²/(H + λ)]``, and a leaf holds the vector
``−G_k/(H + λ) · learning_rate``. With the forest's one-hot targets at margin 0 (``g_k = −[y = k]``,
``h = 1``) and λ = 0, ``−G_k/H`` is the weighted frequency of class ``k`` among the node's rows and the gain
is ``Σ_k N_Lk²/H_L + Σ_k N_Rk²/H_R − Σ_k N_k²/H``, which is ``H·gini(parent) − H_L·gini(L) − H_R·gini(R)``
(``gini = 1 − Σ_k p_k²``): scikit-learn's Gini impurity decrease times the node's weight. A vector-leaf
split also needs a gain above :data:`ROUNDING` times the sum of its three scores, so that the rounding of a
pure node's zero gain does not split it (scikit-learn does not split a pure node either).

Candidates: feature ``j`` with ``k`` value bins splits "local bin ``<= b``" left for ``b = 0 … k − 2``; its
missing bin goes right (``default_left`` false) or left (true), whichever gains more: the default
direction is learnt per split as XGBoost and LightGBM do. Ties are broken deterministically: the first
best in the order features ascending, then bins ascending, then missing right before missing left (so a
node without missing values sends future NaN right, XGBoost's choice). The left sums are prefix sums in
bin order; the right sums are the node's sums minus the left ones.
"""

from typing import NamedTuple

import numpy as np

from mrtrain.engine.trees.histograms import GRAD, HESS, N_CHANNELS, WEIGHT

#: Vector leaves: a gain must exceed this fraction of the sum of the three scores it is the difference of,
#: the rounding of that difference (so a pure node, whose gain is 0 but rounds to ±1e-14, is not split).
ROUNDING = 1e-12


class SplitRule(NamedTuple):
    """What makes a split acceptable (see the module docstring)."""

    l2: float = 1.0
    min_child_weight: float = 1.0
    min_split_gain: float = 0.0


class Splits(NamedTuple):
    """The best split of each of ``m`` nodes (``feature == -1``: no acceptable split).

    Attributes
    ----------
    feature, bin : ndarray of int64, shape (m,)
        The feature and the local bin: bins ``<= bin`` go left.
    default_left : ndarray of bool, shape (m,)
        Whether the missing bin goes left.
    gain : ndarray of float64, shape (m,)
        The split's gain (``-inf`` where there is none).
    left, right : ndarray of float64, shape (m, 3) or (m, K + 2)
        ``(Σ w·g, Σ w·h, Σ w)`` of each child (``K`` gradient sums for vector leaves).
    """

    feature: np.ndarray
    bin: np.ndarray
    default_left: np.ndarray
    gain: np.ndarray
    left: np.ndarray
    right: np.ndarray


def leaf_values(sums, l2, learning_rate=1.0):
    """``−G/(H + λ) · learning_rate`` of nodes with sums ``(G, H, W)`` (shape (..., 3)); 0 where
    ``H + λ`` is 0 (a node without rows). Sums of ``K + 2`` channels (vector leaves) give shape (..., K)."""
    sums = np.asarray(sums, dtype=np.float64)
    denominator = sums[..., HESS] + l2
    with np.errstate(divide="ignore", invalid="ignore"):
        if sums.shape[-1] == N_CHANNELS:
            return np.where(denominator > 0, -sums[..., GRAD] / denominator * learning_rate, 0.0)
        denominator = denominator[..., None]
        # + 0.0: a class without rows has frequency 0.0, not −0.0
        return np.where(denominator > 0, -sums[..., :HESS] / denominator * learning_rate + 0.0, 0.0)


def _score(sums, l2):
    """``G²/(H + λ)`` of sums (..., 3), or ``Σ_k G_k²/(H + λ)`` of sums (..., K + 2)."""
    if sums.shape[-1] == N_CHANNELS:
        grad = sums[..., GRAD]
        return grad * grad / (sums[..., HESS] + l2)
    grad = sums[..., :HESS]
    return (grad * grad / (sums[..., HESS, None] + l2)).sum(axis=-1)


def best_splits(histograms, totals, offsets, rule, allowed=None):
    """The best split of every node.

    Parameters
    ----------
    histograms : ndarray of float64, shape (m, total_bins, C)
        The nodes' histograms (:mod:`.histograms`; ``C`` is 3, or ``K + 2`` for vector leaves).
    totals : ndarray of float64, shape (m, C)
        The nodes' ``(G, H, W)`` (``K`` gradient sums for vector leaves).
    offsets : ndarray of int64, shape (F + 1,)
        :attr:`.binning.Bins.offsets`.
    rule : SplitRule
    allowed : ndarray of bool, shape (m, F), optional
        The features each node may split on (all by default).

    Returns
    -------
    Splits
    """
    histograms = np.asarray(histograms, dtype=np.float64)
    totals = np.asarray(totals, dtype=np.float64)
    m, n_features = len(histograms), len(offsets) - 1
    channels = totals.shape[-1] if totals.ndim == 2 else N_CHANNELS
    best = Splits(np.full(m, -1, dtype=np.int64), np.full(m, -1, dtype=np.int64), np.zeros(m, dtype=bool),
                  np.full(m, -np.inf), np.zeros((m, channels)), np.zeros((m, channels)))
    if m == 0:
        return best
    with np.errstate(divide="ignore", invalid="ignore"):
        parent = _score(totals, rule.l2)
    rows = np.arange(m)
    for j in range(n_features):
        k = int(offsets[j + 1] - offsets[j]) - 1
        if k < 2:
            continue
        value_bins = histograms[:, offsets[j]:offsets[j] + k - 1]
        missing = histograms[:, offsets[j] + k]
        prefix = np.cumsum(value_bins, axis=1)
        # Candidates (m, k − 1, 2): axis 2 is missing right, missing left.
        left = np.stack((prefix, prefix + missing[:, None, :]), axis=2)
        right = totals[:, None, None, :] - left
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = _score(left, rule.l2) + _score(right, rule.l2) - parent[:, None, None]
        valid = ((left[..., WEIGHT] > 0) & (right[..., WEIGHT] > 0)
                 & (left[..., HESS] >= rule.min_child_weight) & (right[..., HESS] >= rule.min_child_weight)
                 & (gain > rule.min_split_gain))
        if channels != N_CHANNELS:  # vector leaves: a gain within rounding of 0 (a pure node's) is none
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = _score(left, rule.l2) + _score(right, rule.l2) + parent[:, None, None]
            valid &= gain > ROUNDING * scale
        if allowed is not None:
            valid &= np.asarray(allowed, dtype=bool)[:, j, None, None]
        gain = np.where(valid, gain, -np.inf).reshape(m, -1)
        first = np.argmax(gain, axis=1)
        found = gain[rows, first]
        better = found > best.gain
        if not better.any():
            continue
        b, missing_left = np.divmod(first, 2)
        best.feature[better] = j
        best.bin[better] = b[better]
        best.default_left[better] = missing_left[better] == 1
        best.gain[better] = found[better]
        best.left[better] = left[rows, b, missing_left][better]
        best.right[better] = right[rows, b, missing_left][better]
    return best
