"""Gradient histograms: per (node, feature, bin) sums of weighted gradient, Hessian and weight.

A map task routes its rows to the nodes of the tree being grown and calls :func:`build_histograms` for the
nodes the driver asked for; the result is one flat float64 vector laid out as the C-order array
``(len(nodes), total_bins, 3)`` whose last axis holds ``Σ w·g``, ``Σ w·h`` and ``Σ w`` over the node's rows
in that bin (bins laid out as in :mod:`.binning`: feature ``j`` owns ``offsets[j] .. offsets[j+1] − 1``,
its missing bin last).

A tree of vector leaves (a K-class random forest: one gradient per class, one Hessian) has ``K + 2``
channels: ``Σ w·g_0 … Σ w·g_{K−1}``, ``Σ w·h``, ``Σ w``, so the cells are ``(len(nodes), total_bins, K + 2)``;
the gradient channels come first and the Hessian and weight are always the last two (:data:`HESS`,
:data:`WEIGHT`), so a one-gradient tree's layout, and its bits, are the three channels above.

Vectors of partitions are added elementwise in partition order, like every other pass's sums.

Every sum is sequential in row order (``np.bincount`` adds its weights one by one in input order), so a
partition's vector is the same bits wherever it is computed. Rows of weight 0 add nothing and are skipped.
Each feature takes one ``np.bincount`` per channel over its own (bin, node) cells only; the weight channel
of rows all weighing 1 is a count (exact), without adding weights.

The sibling subtraction trick: the driver asks only for the smaller child of each split and gets the other
as ``parent − child`` (:func:`subtract_histograms`), as XGBoost's and LightGBM's ``hist`` methods do.
"""

import numpy as np

#: Channels of a one-gradient histogram cell: weighted gradient, weighted Hessian, weight. Of a cell of
#: ``K + 2`` channels, the Hessian and the weight are the last two (``HESS``, ``WEIGHT`` count from the end).
GRAD, HESS, WEIGHT = 0, -2, -1
N_CHANNELS = 3


def n_channels(n_gradients=1):
    """Channels of a histogram cell of a tree with ``n_gradients`` gradients per row (its leaves' width)."""
    return int(n_gradients) + 2


def build_histograms(binned, grad, hess, weight, row_node, nodes, offsets):
    """The histograms of ``nodes`` over the rows of one partition, as a flat vector.

    Parameters
    ----------
    binned : ndarray of uint8 or uint16, shape (n, F)
        Local bin of every row and feature (:meth:`.binning.Bins.transform`).
    grad : ndarray of float64, shape (n,) or (n, K)
        Gradient of the loss at every row's margin: one output, or ``K`` of a tree of vector leaves.
    hess : ndarray of float64, shape (n,)
        Hessian of the loss at every row's margin.
    weight : ndarray of float64, shape (n,)
        Sample weight of every row (user weight × subsample or bootstrap weight).
    row_node : ndarray of int, shape (n,)
        The node every row is in (:func:`.tree.route_binned`).
    nodes : sequence of int
        The nodes to build, in the order of the vector.
    offsets : ndarray of int64, shape (F + 1,)
        :attr:`.binning.Bins.offsets`.

    Returns
    -------
    ndarray of float64, shape (len(nodes) * total_bins * (K + 2),)
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    total_bins = int(offsets[-1])
    nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
    grad = np.asarray(grad, dtype=np.float64)
    channel_count = n_channels(1 if grad.ndim == 1 else grad.shape[1])
    out = np.zeros((len(nodes), total_bins, channel_count))
    if len(nodes) == 0 or len(row_node) == 0:
        return out.ravel()
    row_node = np.asarray(row_node, dtype=np.int64)
    slot_of = np.full(max(int(nodes.max()), int(row_node.max())) + 1, -1, dtype=np.int64)
    slot_of[nodes] = np.arange(len(nodes))
    weight = np.asarray(weight, dtype=np.float64)
    rows = np.flatnonzero((slot_of[row_node] >= 0) & (weight != 0))
    if len(rows) == 0:
        return out.ravel()
    w = weight[rows]
    gradients = (grad[rows],) if grad.ndim == 1 else tuple(grad[rows, k] for k in range(grad.shape[1]))
    channels = (*(w * g for g in gradients), w * np.asarray(hess, dtype=np.float64)[rows], w)
    counted = bool((w == 1.0).all())  # Σw of ones is the count (exact below 2**53): no weights to add
    slot = slot_of[row_node[rows]]
    selected = binned if len(rows) == len(binned) else binned[rows]
    n_nodes = len(nodes)
    for j in range(binned.shape[1]):  # each feature's cells: one bincount per channel, bin-major
        low, width = int(offsets[j]), int(offsets[j + 1] - offsets[j])
        index = selected[:, j] * np.int64(n_nodes) + slot
        cells = out[:, low:low + width]
        for channel, values in enumerate(channels):
            if channel == channel_count - 1 and counted:  # the weight channel
                sums = np.bincount(index, minlength=n_nodes * width).astype(np.float64)
            else:
                sums = np.bincount(index, weights=values, minlength=n_nodes * width)
            cells[:, :, channel] = sums.reshape(width, n_nodes).T
    return out.ravel()


def subtract_histograms(parent, child):
    """The sibling's histogram: ``parent − child`` (arrays of the same shape)."""
    return np.asarray(parent, dtype=np.float64) - np.asarray(child, dtype=np.float64)


def node_totals(histogram, offsets):
    """``(Σ w·g, Σ w·h, Σ w)`` (or ``K + 2`` channels) of the node of ``histogram`` (shape
    (total_bins, channels)), read from its first feature's bins (every row is in exactly one bin of each
    feature), summed in bin order."""
    histogram = np.asarray(histogram)
    first = histogram[offsets[0]:offsets[1]]
    return np.cumsum(first, axis=0)[-1] if len(first) else np.zeros(histogram.shape[-1])
