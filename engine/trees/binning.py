"""Feature binning: a mergeable per-partition value summary, bin edges from it, and the binned matrix.

Summary (map side, :func:`summarize`). For every feature, the exact count of each distinct non-missing value
(``-0.0`` counted as ``0.0``; a CSR column's implicit zeros count as ``0.0``) and the count of NaN. When a
feature has more than ``capacity`` distinct values, the values are made coarser by truncating their
float64 mantissa to ``p`` bits (clearing the low ``52 − p`` bits, rounding toward zero, which is monotone)
for the largest ``p`` that leaves at most ``capacity`` distinct values; counts of equal truncated values
are added. ``p = 0`` leaves at most 4095 values (signed powers of two, 0 and the infinities), so any
``capacity >= 4096`` is reached.

Merge (reduce side, :func:`merge_summaries`). Truncation composes (truncating to ``p`` then to ``q < p`` is
truncating to ``q``), so merging brings every summary to the smallest precision among them, adds the counts
of equal values and coarsens again if needed. The result is exactly the summary of all the rows at once:
the largest precision that fits the union, with exact integer counts. It does not depend on how rows fall
into partitions nor on the order of merging (the tests check this bitwise).

Edges (driver side, :func:`make_bins`). For a feature with ``m`` summary values ``v₀ < … < v_{m−1}``:
``m <= max_bins`` gives one bin per value, edges at the midpoints ``(vᵢ + vᵢ₊₁)/2`` (LightGBM's choice);
otherwise equal-count quantile bins, greedily from the smallest value: a bin's share is the rows not yet
binned divided by the bins left; it closes before the value that would overfill it when that is nearer
the share, else after the value that fills it; so at most ``max_bins`` bins,
and a value heavier than a bin (say the zeros of a sparse column) gets a bin of its own without taking
the other bins' share (LightGBM's ``GreedyFindBin`` works the same way). A value
``x`` is in bin ``#{edges < x}`` (so ``x <= edges[b]`` ⇔ bin ``<= b``), NaN in the feature's *missing bin*,
the last of its ``n_edges + 2`` bins, present whether or not the training data had NaN.

Layout. Feature ``j`` owns the bins ``offsets[j] .. offsets[j+1] − 1`` of a histogram (local bin ``b`` is
``offsets[j] + b``; the missing bin is ``offsets[j+1] − 1``); ``total_bins = offsets[-1]``.

Both :class:`BinSummary` and :class:`Bins` serialise to a dict of flat numpy arrays (``to_arrays`` /
``from_arrays``), for checkpoints and task files without pickle; a summary also to one float64 vector
(``to_vector`` / ``from_vector``), the shape map tasks emit.
"""

from typing import NamedTuple

import numpy as np

#: Default, smallest and largest ``max_bins`` (non-missing bins per feature).
DEFAULT_MAX_BINS, MIN_MAX_BINS, MAX_MAX_BINS = 255, 2, 65535
#: Default and smallest summary capacity (distinct values kept per feature).
DEFAULT_CAPACITY, MIN_CAPACITY = 8192, 4096
#: Mantissa bits of a float64.
MANTISSA_BITS = 52


def check_max_bins(max_bins):
    """Return ``max_bins`` if it is an int in ``[2, 65535]``, else raise ValueError naming it."""
    if isinstance(max_bins, bool) or not isinstance(max_bins, int | np.integer) or not (
            MIN_MAX_BINS <= max_bins <= MAX_MAX_BINS):
        raise ValueError(f"The 'max_bins' parameter must be an int in [{MIN_MAX_BINS}, {MAX_MAX_BINS}]. "
                         f"Got {max_bins!r} instead.")
    return int(max_bins)


def _is_sparse(X):
    import scipy.sparse as sp

    return sp.issparse(X)


def truncate(values, precision):
    """``values`` (finite or infinite float64, no NaN) with the mantissa truncated to ``precision`` bits,
    ``-0.0`` made ``0.0``. Monotone (non-decreasing) in the value."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if precision < MANTISSA_BITS:
        mask = ~np.uint64((1 << (MANTISSA_BITS - precision)) - 1)
        values = (values.view(np.uint64) & mask).view(np.float64)
    return values + 0.0


def _group(values, counts):
    """Add the counts of equal values of the sorted ``values``: ``(distinct values, counts)``."""
    if len(values) == 0:
        return values, counts
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    return values[starts], np.add.reduceat(counts, starts)


def _coarsen(values, counts, precision, capacity):
    """Sorted distinct ``values`` with ``counts`` at ``precision`` bits, coarsened to the largest precision
    ``<= precision`` that leaves at most ``capacity`` values: ``(values, counts, precision)``."""
    if len(values) <= capacity:
        return values, counts, precision
    low, high = 0, precision - 1
    while low < high:
        middle = (low + high + 1) // 2
        truncated = truncate(values, middle)
        if 1 + np.count_nonzero(truncated[1:] != truncated[:-1]) <= capacity:
            low = middle
        else:
            high = middle - 1
    values, counts = _group(truncate(values, low), counts)
    return values, counts, low


class BinSummary(NamedTuple):
    """Per-feature value counts of some rows (see the module docstring).

    Attributes
    ----------
    n_rows : int
        Rows summarised.
    capacity : int
        Most distinct values kept per feature.
    precision : ndarray of int64, shape (F,)
        Mantissa bits the values of each feature are truncated to (52: exact).
    sizes : ndarray of int64, shape (F,)
        Distinct values of each feature.
    values : ndarray of float64, shape (sizes.sum(),)
        Each feature's ascending distinct values, feature after feature.
    counts : ndarray of int64, shape (sizes.sum(),)
        The number of rows with each value.
    missing : ndarray of int64, shape (F,)
        Rows with NaN in each feature.
    """

    n_rows: int
    capacity: int
    precision: np.ndarray
    sizes: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    missing: np.ndarray

    @property
    def n_features(self):
        return len(self.sizes)

    def feature(self, j):
        """``(values, counts)`` of feature ``j``."""
        start = int(self.sizes[:j].sum())
        return self.values[start:start + self.sizes[j]], self.counts[start:start + self.sizes[j]]

    def to_arrays(self):
        """The summary as a dict of flat numpy arrays (:meth:`from_arrays` inverts it)."""
        return {"header": np.array([self.n_rows, self.capacity], dtype=np.int64),
                "precision": self.precision, "sizes": self.sizes, "values": self.values,
                "counts": self.counts, "missing": self.missing}

    def to_vector(self):
        """The summary as one float64 vector (every integer is below 2**53, so exact):
        ``[F, n_rows, capacity, precision (F), sizes (F), missing (F), values, counts]``."""
        return np.concatenate(([self.n_features, self.n_rows, self.capacity], self.precision, self.sizes,
                               self.missing, self.values, self.counts)).astype(np.float64)

    @classmethod
    def from_vector(cls, vector):
        """The summary :meth:`to_vector` gave."""
        vector = np.asarray(vector, dtype=np.float64)
        n_features, n_rows, capacity = (int(x) for x in vector[:3])
        precision, sizes, missing = (vector[3 + k * n_features:3 + (k + 1) * n_features].astype(np.int64)
                                     for k in range(3))
        start, size = 3 + 3 * n_features, int(sizes.sum())
        if len(vector) != start + 2 * size:
            raise ValueError(f"A bin summary vector of {n_features} features and {size} values must have "
                             f"{start + 2 * size} entries. Got {len(vector)} instead.")
        return cls(n_rows, capacity, precision, sizes, vector[start:start + size].copy(),
                   vector[start + size:].astype(np.int64), missing)

    @classmethod
    def from_arrays(cls, arrays):
        """The summary :meth:`to_arrays` gave."""
        n_rows, capacity = (int(x) for x in arrays["header"])
        return cls(n_rows, capacity, *(np.asarray(arrays[name], dtype=dtype) for name, dtype in (
            ("precision", np.int64), ("sizes", np.int64), ("values", np.float64), ("counts", np.int64),
            ("missing", np.int64))))


def _summary(n_rows, capacity, columns):
    """Build a :class:`BinSummary` from ``(values, counts, precision, missing)`` per feature."""
    n_features = len(columns)
    return BinSummary(
        n_rows, capacity, np.array([c[2] for c in columns], dtype=np.int64).reshape(n_features),
        np.array([len(c[0]) for c in columns], dtype=np.int64).reshape(n_features),
        np.concatenate([c[0] for c in columns]) if columns else np.zeros(0),
        np.concatenate([c[1] for c in columns]).astype(np.int64) if columns else np.zeros(0, np.int64),
        np.array([c[3] for c in columns], dtype=np.int64).reshape(n_features))


def _column_summary(data, n_zeros, capacity):
    """``(values, counts, precision, missing)`` of one column's explicit ``data`` plus ``n_zeros`` zeros."""
    data = np.asarray(data, dtype=np.float64)
    nan = np.isnan(data)
    present = data[~nan] + 0.0
    if n_zeros:
        present = np.concatenate((present, np.zeros(1)))
    values, counts = np.unique(present, return_counts=True)
    counts = counts.astype(np.int64)
    if n_zeros:
        counts[np.searchsorted(values, 0.0)] += n_zeros - 1
    values, counts, precision = _coarsen(values, counts, MANTISSA_BITS, capacity)
    return values, counts, precision, int(np.count_nonzero(nan))


def summarize(X, capacity=DEFAULT_CAPACITY):
    """The :class:`BinSummary` of the rows of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n, F) or scipy.sparse matrix
        Rows; NaN is a missing value; a sparse matrix's implicit entries are 0.0.
    capacity : int
        Most distinct values kept per feature (>= 4096).

    Returns
    -------
    BinSummary
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < MIN_CAPACITY:
        raise ValueError(f"The 'capacity' parameter must be an int >= {MIN_CAPACITY}. Got {capacity!r} "
                         "instead.")
    if _is_sparse(X):
        X = X.tocsc(copy=True)
        X.sum_duplicates()
        n_rows, n_features = X.shape
        columns = []
        for j in range(n_features):
            data = X.data[X.indptr[j]:X.indptr[j + 1]]
            columns.append(_column_summary(data, n_rows - len(data), capacity))
    else:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"Binning needs a 2-D array of rows. Got shape {X.shape} instead.")
        n_rows, n_features = X.shape
        columns = [_column_summary(X[:, j], 0, capacity) for j in range(n_features)]
    return _summary(n_rows, capacity, columns)


def merge_summaries(summaries):
    """The summary of the union of the rows of ``summaries`` (a non-empty sequence, in partition order;
    the result is the same in any order). They must have the same features and capacity."""
    summaries = list(summaries)
    if not summaries:
        raise ValueError("merge_summaries needs at least one summary. Got none.")
    first = summaries[0]
    for other in summaries[1:]:
        if other.n_features != first.n_features or other.capacity != first.capacity:
            raise ValueError(f"Bin summaries must have the same features and capacity to merge. Got "
                             f"{first.n_features} features (capacity {first.capacity}) and "
                             f"{other.n_features} (capacity {other.capacity}) instead.")
    columns = []
    for j in range(first.n_features):
        precision = min(int(s.precision[j]) for s in summaries)
        parts = [s.feature(j) for s in summaries]
        values = np.concatenate([truncate(v, precision) for v, _ in parts])
        counts = np.concatenate([c for _, c in parts])
        order = np.argsort(values, kind="stable")
        values, counts = _group(values[order], counts[order])
        values, counts, precision = _coarsen(values, counts, precision, first.capacity)
        columns.append((values, counts, precision, sum(int(s.missing[j]) for s in summaries)))
    return _summary(sum(s.n_rows for s in summaries), first.capacity, columns)


def _midpoints(values):
    """Edges between consecutive sorted distinct ``values``: the midpoint, or the lower value where the
    midpoint rounds onto the upper one or overflows (adjacent floats, infinities)."""
    low, high = values[:-1], values[1:]
    with np.errstate(invalid="ignore", over="ignore"):
        middle = low * 0.5 + high * 0.5
    return np.where((low <= middle) & (middle < high), middle, low)


def _feature_edges(values, counts, max_bins):
    """Ascending bin edges of one feature's summary."""
    if len(values) <= max_bins:
        return _midpoints(values)
    after = []
    rest_count, rest_bins, filled = int(counts.sum()), max_bins, 0
    for i, count in enumerate(counts[:-1].tolist()):
        # Close the bin before value i when that is nearer the bin's share than closing after it.
        if filled and (filled + count) * rest_bins > rest_count and (
                2 * filled * rest_bins > 2 * rest_count - count * rest_bins):
            after.append(i - 1)
            rest_count, rest_bins, filled = rest_count - filled, rest_bins - 1, 0
        filled += count
        if rest_bins > 1 and filled * rest_bins >= rest_count:
            after.append(i)
            rest_count, rest_bins, filled = rest_count - filled, rest_bins - 1, 0
        if rest_bins == 1:
            break
    return _midpoints(values)[np.asarray(after, dtype=np.int64)]


class Bins(NamedTuple):
    """Bin edges of every feature (see the module docstring).

    Attributes
    ----------
    n_edges : ndarray of int64, shape (F,)
        Edges of each feature: it has ``n_edges + 1`` value bins and one missing bin.
    edges : ndarray of float64, shape (n_edges.sum(),)
        Each feature's ascending edges, feature after feature.
    """

    n_edges: np.ndarray
    edges: np.ndarray

    @property
    def n_features(self):
        return len(self.n_edges)

    @property
    def n_bins(self):
        """Bins of each feature, the missing bin included: ``n_edges + 2``."""
        return self.n_edges + 2

    @property
    def offsets(self):
        """Start of each feature's bins in a histogram, then ``total_bins``: shape (F + 1,)."""
        return np.concatenate(([0], np.cumsum(self.n_bins))).astype(np.int64)

    @property
    def total_bins(self):
        return int(self.n_bins.sum())

    @property
    def dtype(self):
        """The binned matrix's dtype: uint8 when every feature has at most 256 bins, else uint16."""
        return np.uint8 if self.n_features == 0 or self.n_bins.max() <= 256 else np.uint16

    def feature_edges(self, j):
        start = int(self.n_edges[:j].sum())
        return self.edges[start:start + self.n_edges[j]]

    def missing_bin(self, j):
        """Local index of feature ``j``'s missing bin."""
        return int(self.n_edges[j]) + 1

    def threshold(self, j, b):
        """The real threshold of the split "bin ``<= b``" of feature ``j``: ``x <= threshold`` goes left."""
        return float(self.feature_edges(j)[b])

    def transform(self, X):
        """The binned matrix of ``X``: local bin indices, shape (n, F), :attr:`dtype`.

        Parameters
        ----------
        X : ndarray of shape (n, F) or scipy.sparse matrix
            Rows; NaN goes to the missing bin; a sparse matrix's implicit entries are 0.0.
        """
        n_features = self.n_features
        if X.ndim != 2 or X.shape[1] != n_features:
            raise ValueError(f"Binning needs rows of {n_features} features. Got shape {X.shape} instead.")
        binned = np.empty(X.shape, dtype=self.dtype)
        if _is_sparse(X):
            X = X.tocsc(copy=True)
            X.sum_duplicates()
            for j in range(n_features):
                edges = self.feature_edges(j)
                binned[:, j] = np.searchsorted(edges, 0.0, side="left")
                rows = X.indices[X.indptr[j]:X.indptr[j + 1]]
                binned[rows, j] = self._bin(j, edges, X.data[X.indptr[j]:X.indptr[j + 1]])
        else:
            X = np.asarray(X, dtype=np.float64)
            for j in range(n_features):
                binned[:, j] = self._bin(j, self.feature_edges(j), X[:, j])
        return binned

    def _bin(self, j, edges, column):
        column = np.asarray(column, dtype=np.float64)
        local = np.searchsorted(edges, column, side="left")
        local[np.isnan(column)] = self.missing_bin(j)
        return local

    def to_arrays(self):
        """The bins as a dict of flat numpy arrays (:meth:`from_arrays` inverts it)."""
        return {"n_edges": self.n_edges, "edges": self.edges}

    @classmethod
    def from_arrays(cls, arrays):
        return cls(np.asarray(arrays["n_edges"], dtype=np.int64), np.asarray(arrays["edges"], np.float64))


def make_bins(summary, max_bins=DEFAULT_MAX_BINS):
    """The :class:`Bins` of a (merged) summary: at most ``max_bins`` value bins per feature.

    Parameters
    ----------
    summary : BinSummary
    max_bins : int in [2, 65535]

    Returns
    -------
    Bins
    """
    max_bins = check_max_bins(max_bins)
    edges = [_feature_edges(*summary.feature(j), max_bins) for j in range(summary.n_features)]
    return Bins(np.array([len(e) for e in edges], dtype=np.int64).reshape(summary.n_features),
                np.concatenate(edges) if edges else np.zeros(0))
