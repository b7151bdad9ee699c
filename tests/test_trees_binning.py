"""Binning: the summary does not depend on partitioning or merge order (bitwise), few distinct values get
one bin each, many get equal-count quantile bins (against numpy's quantiles), NaN gets its own bin, CSR
equals dense, and everything round-trips through flat arrays."""

import numpy as np
import pytest
import scipy.sparse as sp

from mrtrain.engine.trees import Bins, BinSummary, make_bins, merge_summaries, summarize
from mrtrain.engine.trees.binning import truncate


def mixed_columns(n, seed):
    """A continuous column with many distinct values (coarsened by the summary), a skewed one, a code column
    of 5 values, and a column with 10% NaN."""
    rng = np.random.default_rng(seed)
    X = np.column_stack((rng.normal(size=n), rng.lognormal(0, 2, size=n), rng.integers(0, 5, n) * 1.5,
                         rng.normal(size=n)))
    X[rng.random(n) < 0.1, 3] = np.nan
    return X


def assert_same_summary(a, b):
    for name, x in a.to_arrays().items():
        np.testing.assert_array_equal(x, b.to_arrays()[name], err_msg=name)


def test_the_summary_is_the_same_for_any_partitioning_and_merge_order():
    X = mixed_columns(12_000, 0)
    whole = summarize(X, capacity=4096)
    assert whole.precision[0] < 52 and whole.sizes[0] <= 4096  # coarsened: 12,000 distinct values
    assert whole.precision[2] == 52 and whole.sizes[2] == 5  # exact
    rng = np.random.default_rng(1)
    for _ in range(3):
        cuts = np.sort(rng.choice(np.arange(1, len(X)), size=6, replace=False))
        order = rng.permutation(len(X))
        parts = [summarize(X[order][part], capacity=4096) for part in np.split(np.arange(len(X)), cuts)]
        assert_same_summary(merge_summaries(parts), whole)
        assert_same_summary(merge_summaries(parts[::-1]), whole)
        assert_same_summary(merge_summaries([merge_summaries(parts[:3]), merge_summaries(parts[3:])]), whole)


def test_counts_are_exact_and_missing_values_are_counted_apart():
    X = mixed_columns(3000, 2)
    summary = summarize(X)
    for j in range(X.shape[1]):
        values, counts = summary.feature(j)
        assert counts.sum() + summary.missing[j] == len(X)
        assert summary.missing[j] == np.isnan(X[:, j]).sum()
    np.testing.assert_array_equal(summary.feature(2)[0], [0.0, 1.5, 3.0, 4.5, 6.0])
    np.testing.assert_array_equal(summary.feature(2)[1], np.unique(X[:, 2], return_counts=True)[1])


def test_truncation_is_monotone_and_composes():
    values = np.sort(np.random.default_rng(3).normal(scale=1e3, size=2000))
    for precision in (0, 5, 20):
        truncated = truncate(values, precision)
        assert np.all(np.diff(truncated) >= 0)
        np.testing.assert_array_equal(truncate(truncate(values, precision + 7), precision), truncated)
        assert np.all(np.abs(truncated) <= np.abs(values))
        assert np.all(np.abs(values - truncated) <= np.abs(values) * 2.0**-precision)


def test_few_distinct_values_get_one_bin_each_with_midpoint_edges():
    X = np.array([[0.0, -1.0], [1.0, -1.0], [3.0, np.nan], [1.0, 2.0], [-0.0, 2.0]])
    bins = make_bins(summarize(X), 255)
    np.testing.assert_array_equal(bins.feature_edges(0), [0.5, 2.0])
    np.testing.assert_array_equal(bins.feature_edges(1), [0.5])
    np.testing.assert_array_equal(bins.n_bins, [4, 3])  # value bins + the missing bin
    np.testing.assert_array_equal(bins.offsets, [0, 4, 7])
    np.testing.assert_array_equal(bins.transform(X), [[0, 0], [1, 0], [2, 2], [1, 1], [0, 1]])
    # Unseen values fall between the edges; x <= edge goes to the lower bin.
    np.testing.assert_array_equal(bins.transform(np.array([[0.5, 0.5], [0.51, 100.0]])), [[0, 0], [1, 1]])


@pytest.mark.parametrize("max_bins", [2, 16, 255])
def test_many_distinct_values_get_equal_count_quantile_bins(max_bins):
    x = np.random.default_rng(4).normal(size=(20_000, 1))
    summary = summarize(x)
    bins = make_bins(summary, max_bins)
    assert bins.n_edges[0] == max_bins - 1
    reference = np.quantile(x[:, 0], np.arange(1, max_bins) / max_bins)
    # Off by up to a bin's width in the middle of the distribution, plus the summary's truncation.
    spacing = np.diff(np.quantile(x[:, 0], [0.25, 0.75]))[0] / max_bins
    truncation = 2 * np.abs(x).max() * 2.0 ** -summary.precision[0]
    np.testing.assert_allclose(bins.feature_edges(0), reference, atol=spacing + truncation)
    # Each bin is off the ideal count by at most the summary's coarsest value (rows truncated together)
    # on each side.
    counts = np.bincount(bins.transform(x)[:, 0], minlength=max_bins + 1)
    assert summary.precision[0] < 52 and counts[-1] == 0
    assert np.abs(counts[:-1] - len(x) / max_bins).max() <= 2 * summary.feature(0)[1].max() + 1


def test_a_heavy_value_keeps_its_own_bin_and_edges_increase():
    rng = np.random.default_rng(5)
    x = np.where(rng.random(10_000) < 0.6, 0.0, rng.exponential(size=10_000))[:, None]
    bins = make_bins(summarize(x), 32)
    edges = bins.feature_edges(0)
    assert np.all(np.diff(edges) > 0) and len(edges) <= 31
    binned = bins.transform(x)[:, 0]
    assert len(np.unique(binned[x[:, 0] == 0.0])) == 1
    assert not np.any(binned[x[:, 0] > 0] == binned[x[:, 0] == 0.0][0])
    # The zeros take one bin, not their 60% share of the 32: the other rows get the other 31.
    assert len(edges) == 31
    counts = np.bincount(binned, minlength=bins.n_bins[0])[1:-1]
    assert np.abs(counts - (x > 0).sum() / 31).max() <= 0.1 * (x > 0).sum() / 31


def test_sparse_rows_are_binned_as_the_same_dense_rows():
    rng = np.random.default_rng(6)
    dense = np.where(rng.random((400, 5)) < 0.7, 0.0, rng.normal(size=(400, 5)))
    dense[3, 1] = np.nan
    rows, columns = np.nonzero(dense)
    zero_row = np.flatnonzero(dense[:, 2] == 0)[0]  # stored as an explicit zero
    sparse = sp.coo_matrix((np.append(dense[rows, columns], 0.0), (np.append(rows, zero_row),
                                                                   np.append(columns, 2))),
                           shape=dense.shape).tocsr()
    assert sparse.nnz == len(rows) + 1
    assert_same_summary(summarize(sparse), summarize(dense))
    bins = make_bins(merge_summaries([summarize(sparse[:150]), summarize(sparse[150:])]), 8)
    np.testing.assert_array_equal(bins.transform(sparse), bins.transform(dense))
    assert bins.transform(dense)[3, 1] == bins.missing_bin(1)


def test_summaries_and_bins_round_trip_through_flat_arrays():
    summary = summarize(mixed_columns(500, 7))
    arrays = summary.to_arrays()
    assert all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays.values())
    assert_same_summary(BinSummary.from_arrays(arrays), summary)
    vector = summary.to_vector()
    assert vector.dtype == np.float64 and vector.ndim == 1
    assert_same_summary(BinSummary.from_vector(vector), summary)
    with pytest.raises(ValueError, match="bin summary vector of 4 features"):
        BinSummary.from_vector(vector[:-1])
    bins = make_bins(summary, 10)
    again = Bins.from_arrays({name: np.array(a) for name, a in bins.to_arrays().items()})
    np.testing.assert_array_equal(again.edges, bins.edges)
    np.testing.assert_array_equal(again.n_edges, bins.n_edges)


@pytest.mark.parametrize("max_bins", [1, 65536, 2.5, True, "255"])
def test_max_bins_outside_2_to_65535_is_refused(max_bins):
    with pytest.raises(ValueError, match=r"'max_bins' parameter must be an int in \[2, 65535\]\. Got"):
        make_bins(summarize(np.zeros((3, 1))), max_bins)


def test_more_than_256_bins_use_uint16():
    x = np.arange(1000.0)[:, None]
    assert make_bins(summarize(x), 255).dtype == np.uint8
    bins = make_bins(summarize(x), 300)
    assert bins.dtype == np.uint16 and bins.transform(x).max() == 299


def test_duplicate_sparse_entries_are_summed_as_scipy_does():
    # Row 0 stores column 0 twice (1.0 + 2.0): the value is 3.0, as in scipy's toarray().
    sparse = sp.csr_matrix((np.array([1.0, 2.0, 5.0]), np.array([0, 0, 1]), np.array([0, 2, 3, 3])),
                           shape=(3, 2))
    assert not sparse.has_canonical_format
    dense = sparse.toarray()
    assert_same_summary(summarize(sparse), summarize(dense))
    bins = make_bins(summarize(dense), 255)
    np.testing.assert_array_equal(bins.transform(sparse), bins.transform(dense))
