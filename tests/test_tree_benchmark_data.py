"""The tree benchmark's data generator (issue 23's targets): seeded, chunked, with its promised shape."""

import numpy as np

from benchmarks import tree_data


def test_seeded_and_independent_of_the_row_count():
    X, y = tree_data.generate(1_000, seed=5)
    X2, y2 = tree_data.generate(1_000, seed=5)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    # The first rows are the same whatever the size asked (chunks of one stream), NaN in the same places.
    big, big_y = tree_data.generate(tree_data.CHUNK + 10, seed=5)
    np.testing.assert_array_equal(big[:1_000], X)
    np.testing.assert_array_equal(big_y[:1_000], y)
    assert not np.array_equal(tree_data.generate(1_000, seed=6)[0], X)


def test_columns_as_described():
    X, y, X_test, y_test = tree_data.make_split(20_000)
    assert X.shape == (20_000, 28) and X_test.shape == (5_000, 28) and set(np.unique(y)) == {0.0, 1.0}
    missing = np.isnan(X)
    assert 0.045 < missing[:, tree_data.MISSING_COLUMN].mean() < 0.055
    assert not np.delete(missing, tree_data.MISSING_COLUMN, axis=1).any()
    codes = X[:, tree_data.CODE_COLUMN]
    np.testing.assert_array_equal(np.unique(codes), np.arange(8))
    skewed = X[:, tree_data.SKEWED_COLUMN]
    assert skewed.min() > 0 and np.mean(skewed) > 1.5 * np.median(skewed)  # a heavy right tail
    # Missingness carries signal: rows with the value missing are more often positive.
    assert y[missing[:, tree_data.MISSING_COLUMN]].mean() > y.mean() + 0.05
