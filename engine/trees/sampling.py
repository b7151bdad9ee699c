"""Seeded, runner-independent randomness of tree ensembles: row subsampling, bootstrap weights, features.

Every draw is a SplitMix64 hash (:mod:`mrtrain.engine.folds`) of the user's seed, a stream tag, the tree
and the row's id ``(partition id, row index)`` (or the node and feature), so it depends on nothing a runner
chooses: not the task that reads the partition, not the order partitions are read in, not the number of
reducers. A hash's top 53 bits give a uniform number ``u`` in [0, 1).

- :func:`subsample_mask`: row in the tree's sample when ``u < fraction`` (GBT's ``--subsample``).
- :func:`bootstrap_weights`: the random forest's per-tree bootstrap, a Poisson(1) count per row by the
  inverse CDF of ``u`` (the smallest ``k`` with ``P(K <= k) > u``), as Spark MLlib's
  ``RandomForest`` does with its Poisson-weighted bagging.
- :func:`choose_features`: ``k`` of ``F`` features, the ``k`` with the smallest hash of
  ``(seed, tree, node, feature)``; ``node = -1`` for the per-tree subset (``--colsample``), the node's
  index for the per-node subset (``--max-features``). :func:`n_chosen` turns ``sqrt``/``log2``/a fraction
  into ``k`` as scikit-learn does.
"""

import math

import numpy as np

from mrtrain.engine.folds import row_hash, splitmix64

#: Stream tags, so that draws for different purposes are independent.
SUBSAMPLE, BOOTSTRAP, FEATURES = 1, 2, 3
#: P(K <= k) of Poisson(1) for k = 0, 1, …, up to where it reaches 1 in float64.
_POISSON_CDF = np.array([math.fsum(math.exp(-1.0) / math.factorial(i) for i in range(k + 1))
                         for k in range(20)])


def stream_seed(seed, stream, tree):
    """The 64-bit seed of one tree's draws of one stream, as a Python int."""
    with np.errstate(over="ignore"):
        mixed = splitmix64(splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(stream))) ^ np.uint64(tree))
    return int(mixed)


def row_uniform(seed, stream, tree, partition_id, n_rows):
    """Uniform numbers in [0, 1) for rows ``0 .. n_rows − 1`` of a partition, shape (n_rows,)."""
    hashes = row_hash(partition_id, n_rows, stream_seed(seed, stream, tree))
    return (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53


def subsample_mask(seed, tree, partition_id, n_rows, fraction):
    """Whether each row is in tree ``tree``'s subsample of ``fraction`` (all rows when it is 1)."""
    if fraction >= 1:
        return np.ones(n_rows, dtype=bool)
    return row_uniform(seed, SUBSAMPLE, tree, partition_id, n_rows) < fraction


def bootstrap_weights(seed, tree, partition_id, n_rows):
    """Tree ``tree``'s Poisson(1) bootstrap count of every row, as float64, shape (n_rows,)."""
    u = row_uniform(seed, BOOTSTRAP, tree, partition_id, n_rows)
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64)


def n_chosen(max_features, n_features):
    """Features per draw: ``"sqrt"`` → ``max(1, ⌊√F⌋)``, ``"log2"`` → ``max(1, ⌊log₂ F⌋)``, a fraction
    ``f`` in (0, 1] → ``max(1, ⌊f·F⌋)``, ``None`` → ``F``."""
    if max_features is None:
        return n_features
    if max_features == "sqrt":
        return max(1, math.isqrt(n_features))
    if max_features == "log2":
        return max(1, int(math.log2(n_features))) if n_features else 1
    if isinstance(max_features, bool) or not isinstance(max_features, float | int) or not (
            0 < max_features <= 1):
        raise ValueError(f"The 'max_features' parameter must be 'sqrt', 'log2' or a number in (0, 1]. Got "
                         f"{max_features!r} instead.")
    return max(1, int(max_features * n_features))


def choose_features(seed, tree, node, n_features, k, among=None):
    """The ``k`` features with the smallest hash of ``(seed, tree, node, feature)``, ascending.

    Parameters
    ----------
    seed, tree, node : int
        ``node = -1`` for a per-tree draw.
    n_features, k : int
    among : ndarray of int, optional
        Draw from these features only (the tree's subset); all by default.

    Returns
    -------
    ndarray of int64, shape (min(k, candidates),)
    """
    among = np.arange(n_features, dtype=np.int64) if among is None else np.asarray(among, dtype=np.int64)
    if k >= len(among):
        return among.copy()
    with np.errstate(over="ignore"):
        key = splitmix64(np.uint64(stream_seed(seed, FEATURES, tree)) ^ splitmix64(np.uint64(node + 1)))
        hashes = splitmix64(key ^ among.astype(np.uint64))
    return np.sort(among[np.argsort(hashes, kind="stable")[:k]])
