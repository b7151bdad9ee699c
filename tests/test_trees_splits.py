"""Histograms and split finding against brute force on small data, the grower against a recursive
brute-force tree builder, sibling subtraction, feature subsets, and exact resume of a grower."""

import itertools

import numpy as np
import pytest

from mrtrain.engine.trees import (
    GrowParams,
    SplitRule,
    TreeGrower,
    best_splits,
    bootstrap_weights,
    build_histograms,
    make_bins,
    route,
    route_binned,
    subtract_histograms,
    summarize,
    update_growers,
)
from mrtrain.engine.trees.histograms import node_totals


def small_data(seed, n=60, n_features=3, missing=0.15):
    """Rows with few distinct values and some NaN, random gradients, Hessians and weights."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 6, size=(n, n_features)).astype(float) * 0.5
    X[rng.random((n, n_features)) < missing] = np.nan
    grad = rng.normal(size=n)
    hess = rng.uniform(0.2, 1.0, size=n)
    weight = rng.choice([0.0, 1.0, 2.0, 0.5], size=n)
    return X, grad, hess, weight


def brute_force_histogram(binned, grad, hess, weight, row_node, nodes, bins):
    out = np.zeros((len(nodes), bins.total_bins, 3))
    for slot, node in enumerate(nodes):
        for i in np.flatnonzero(row_node == node):
            for j in range(binned.shape[1]):
                cell = bins.offsets[j] + binned[i, j]
                out[slot, cell] += (weight[i] * grad[i], weight[i] * hess[i], weight[i])
    return out.ravel()


def brute_force_split(X, grad, hess, weight, rows, rule, features):
    """The best (gain, feature, threshold, default_left) over every threshold between distinct values
    and both directions of the missing rows, sums taken from the rows themselves."""
    g, h, w = weight * grad, weight * hess, weight
    rows = rows[w[rows] != 0]

    def score(mask):
        return g[mask].sum() ** 2 / (h[mask].sum() + rule.l2)

    best = (-np.inf, -1, None, None)
    for j in features:
        x = X[rows, j]
        values = np.unique(x[~np.isnan(x)])
        for low, missing_left in itertools.product(values[:-1], (False, True)):
            left = (x <= low) | (np.isnan(x) & missing_left)
            L, R = rows[left], rows[~left]
            if w[L].sum() <= 0 or w[R].sum() <= 0 or h[L].sum() < rule.min_child_weight or (
                    h[R].sum() < rule.min_child_weight):
                continue
            gain = score(L) + score(R) - score(rows)
            if gain > rule.min_split_gain and gain > best[0] + 1e-9:
                best = (gain, j, low, missing_left)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_histograms_are_the_per_node_feature_bin_sums(seed):
    X, grad, hess, weight = small_data(seed)
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(X)
    row_node = np.random.default_rng(seed).choice([1, 2, 5], size=len(X))
    vector = build_histograms(binned, grad, hess, weight, row_node, [5, 1], bins.offsets)
    reference = brute_force_histogram(binned, grad, hess, weight, row_node, [5, 1], bins)
    np.testing.assert_allclose(vector, reference, rtol=1e-13, atol=1e-13)
    ones = np.ones(len(X))  # rows all weighing 1: the weight channel is a count
    np.testing.assert_allclose(build_histograms(binned, grad, hess, ones, row_node, [5, 1], bins.offsets),
                               brute_force_histogram(binned, grad, hess, ones, row_node, [5, 1], bins),
                               rtol=1e-13, atol=1e-13)
    # Sibling subtraction: the parent (both nodes) minus one child is the other.
    parent = build_histograms(binned, grad, hess, weight, np.where(row_node == 2, 9, 0), [0], bins.offsets)
    one, other = vector.reshape(2, -1)
    np.testing.assert_allclose(subtract_histograms(parent, other), one, atol=1e-12)
    # A partition's vectors add: two halves sum to the whole.
    halves = [build_histograms(binned[part], grad[part], hess[part], weight[part], row_node[part], [5, 1],
                               bins.offsets) for part in (slice(0, 25), slice(25, None))]
    np.testing.assert_allclose(halves[0] + halves[1], vector, atol=1e-12)


@pytest.mark.parametrize("seed, rule", [(0, SplitRule(1.0, 0.0, 0.0)), (1, SplitRule(0.0, 2.0, 0.0)),
                                        (2, SplitRule(0.5, 1.0, 0.3)), (3, SplitRule(2.0, 0.0, 0.0)),
                                        (4, SplitRule(0.0, 0.0, 0.0))])
def test_best_split_matches_brute_force(seed, rule):
    X, grad, hess, weight = small_data(seed)
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(X)
    rows = np.arange(len(X))
    histogram = build_histograms(binned, grad, hess, weight, np.zeros(len(X)), [0], bins.offsets)
    histogram = histogram.reshape(1, bins.total_bins, 3)
    totals = node_totals(histogram[0], bins.offsets)[None]
    found = best_splits(histogram, totals, bins.offsets, rule)
    gain, feature, low, missing_left = brute_force_split(X, grad, hess, weight, rows, rule, range(X.shape[1]))
    assert gain > 0
    assert found.feature[0] == feature
    assert found.gain[0] == pytest.approx(gain, rel=1e-12)
    assert found.default_left[0] == missing_left
    threshold = bins.threshold(feature, found.bin[0])
    values = np.unique(X[~np.isnan(X[:, feature]), feature])
    assert low <= threshold < values[values > low][0]
    # Only feature subsets: the best among the allowed features.
    allowed = np.ones((1, X.shape[1]), dtype=bool)
    allowed[0, feature] = False
    found = best_splits(histogram, totals, bins.offsets, rule, allowed)
    gain, feature, _, _ = brute_force_split(X, grad, hess, weight, rows, rule,
                                            [j for j in range(X.shape[1]) if allowed[0, j]])
    assert found.feature[0] == feature and found.gain[0] == pytest.approx(gain, rel=1e-12)


def test_no_split_when_the_gain_is_not_above_min_split_gain():
    X, grad, hess, weight = small_data(0)
    bins = make_bins(summarize(X), 255)
    histogram = build_histograms(bins.transform(X), grad, hess, weight, np.zeros(len(X)), [0], bins.offsets)
    histogram = histogram.reshape(1, bins.total_bins, 3)
    totals = node_totals(histogram[0], bins.offsets)[None]
    gain = best_splits(histogram, totals, bins.offsets, SplitRule(1.0, 0.0, 0.0)).gain[0]
    assert best_splits(histogram, totals, bins.offsets, SplitRule(1.0, 0.0, gain)).feature[0] == -1
    assert best_splits(histogram, totals, bins.offsets, SplitRule(1.0, 0.0, gain * 0.999)).feature[0] >= 0


def brute_force_tree(X, grad, hess, weight, params, rows, depth, nodes):
    """Recursive depth-wise builder: appends ``(feature, threshold, default_left, leaf value)``."""
    rule = params.rule
    split = (brute_force_split(X, grad, hess, weight, rows, rule, range(X.shape[1]))
             if depth < params.max_depth else (-np.inf, -1, None, None))
    w = weight[rows]
    value = -(w * grad[rows]).sum() / ((w * hess[rows]).sum() + rule.l2) * params.learning_rate
    nodes.append((split[1], split[2], split[3], value))
    if split[1] >= 0:
        x = X[rows, split[1]]
        left = (x <= split[2]) | (np.isnan(x) & split[3])
        brute_force_tree(X, grad, hess, weight, params, rows[left], depth + 1, nodes)
        brute_force_tree(X, grad, hess, weight, params, rows[~left], depth + 1, nodes)
    return nodes


def grow(X, grad, hess, weight, params, bins, resume_after=None):
    binned = bins.transform(X)
    grower = TreeGrower(bins, params)
    passes = 0
    while not grower.finished:
        row_node = route_binned(grower.tree, binned, bins.n_edges + 1)
        grower.update(build_histograms(binned, grad, hess, weight, row_node, grower.build_nodes,
                                       bins.offsets))
        passes += 1
        if passes == resume_after:
            grower = TreeGrower.from_arrays(bins, params, grower.to_arrays())
    return grower.tree, passes


def preorder(tree, node=0):
    """``(feature, bin-threshold's value, default_left, value)`` of the nodes in depth-first order."""
    yield tree.feature[node], tree.threshold[node], tree.default_left[node], tree.value[node]
    if tree.feature[node] >= 0:
        yield from preorder(tree, tree.left[node])
        yield from preorder(tree, tree.right[node])


@pytest.mark.parametrize("seed", range(3))
def test_a_grown_tree_is_the_brute_force_tree(seed):
    X, grad, hess, weight = small_data(seed, n=120)
    params = GrowParams(max_depth=3, l2=0.5, min_child_weight=1.0, learning_rate=0.3)
    bins = make_bins(summarize(X), 255)
    tree, passes = grow(X, grad, hess, weight, params, bins)
    assert passes <= 3
    reference = brute_force_tree(X, grad, hess, weight, params, np.arange(len(X)), 0, [])
    ours = list(preorder(tree))
    assert len(ours) == len(reference)
    for (feature, threshold, default_left, value), (ref_feature, low, ref_left, ref_value) in zip(
            ours, reference, strict=True):
        assert feature == ref_feature
        assert value == pytest.approx(ref_value, rel=1e-10, abs=1e-12)
        if feature >= 0:
            assert default_left == ref_left
            assert low <= threshold < np.unique(X[X[:, feature] > low, feature])[0]
    # Rows reach the same leaves routed by bins and by raw values.
    np.testing.assert_array_equal(route(tree, X), route_binned(tree, bins.transform(X), bins.n_edges + 1))


@pytest.mark.parametrize("params", [GrowParams(max_depth=4, learning_rate=0.3),
                                    GrowParams(max_depth=4, max_leaves=5, learning_rate=0.3),
                                    GrowParams(max_depth=4, colsample=0.5, max_features="sqrt", seed=7)])
def test_a_grower_resumed_from_its_arrays_grows_the_same_tree(params):
    X, grad, hess, weight = small_data(5, n=200, n_features=4)
    bins = make_bins(summarize(X), 255)
    whole, passes = grow(X, grad, hess, weight, params, bins)
    assert passes >= 2
    for after in range(1, passes):
        resumed, _ = grow(X, grad, hess, weight, params, bins, resume_after=after)
        for a, b in zip(whole, resumed, strict=True):
            np.testing.assert_array_equal(a, b)


def test_best_first_growth_stops_at_max_leaves_and_always_splits_the_best_leaf():
    X, grad, hess, weight = small_data(6, n=300, n_features=4)
    bins = make_bins(summarize(X), 255)
    tree, passes = grow(X, grad, hess, weight, GrowParams(max_depth=6, max_leaves=4, l2=1.0), bins)
    assert tree.is_leaf.sum() == 4 and passes == 4
    deep, _ = grow(X, grad, hess, weight, GrowParams(max_depth=6, max_leaves=12, l2=1.0), bins)
    assert deep.is_leaf.sum() == 12
    # The small tree is the start of the larger one (best-first numbers nodes in the order of splits).
    for name in ("feature", "threshold", "default_left", "gain"):
        split = ~tree.is_leaf
        np.testing.assert_array_equal(getattr(tree, name)[split], getattr(deep, name)[:tree.n_nodes][split])
    # Split k creates nodes 2k+1 and 2k+2; its parent had the largest gain among the leaves of the moment.
    parent = {int(child): node for node in range(deep.n_nodes)
              for child in (deep.left[node], deep.right[node]) if child >= 0}
    for k in range(11):
        chosen = parent[2 * k + 1]
        leaves = set(range(2 * k + 1)) - {parent[c] for c in range(1, 2 * k + 1)}
        assert chosen in leaves
        assert deep.gain[chosen] == max(deep.gain[node] for node in leaves)


def test_feature_subsets_are_seeded_and_respected():
    X, grad, hess, weight = small_data(8, n=300, n_features=6, missing=0.0)
    bins = make_bins(summarize(X), 255)
    params = GrowParams(max_depth=3, colsample=0.5, seed=11)
    grower = TreeGrower(bins, params, tree_index=2)
    assert len(grower.tree_features) == 3
    np.testing.assert_array_equal(grower.tree_features, TreeGrower(bins, params, tree_index=2).tree_features)
    tree, _ = grow(X, grad, hess, weight, params, bins)
    first = TreeGrower(bins, params, tree_index=0).tree_features
    assert set(tree.feature[~tree.is_leaf]) <= set(first)


def test_a_forest_grown_in_shared_passes_is_its_trees_grown_alone():
    """Random-forest style: per-tree bootstrap weights from two partitions, all trees in the same passes."""
    X, grad, hess, _ = small_data(9, n=240, n_features=5, missing=0.05)
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(X)
    parts = [np.arange(0, 100), np.arange(100, 240)]
    params = GrowParams(max_depth=3, max_features="sqrt", learning_rate=1.0, l2=0.0, seed=4)

    def weights(tree):
        return np.concatenate([bootstrap_weights(4, tree, p, len(rows)) for p, rows in enumerate(parts)])

    def partition_vector(growers, rows):
        vectors = []
        for grower in growers:
            if not grower.finished:
                row_node = route_binned(grower.tree, binned[rows], bins.n_edges + 1)
                w = weights(grower.tree_index)[rows]
                vectors.append(build_histograms(binned[rows], grad[rows], hess[rows], w,
                                                row_node, grower.build_nodes, bins.offsets))
        return np.concatenate(vectors)

    forest = [TreeGrower(bins, params, t) for t in range(3)]
    while not update_growers(forest, sum(partition_vector(forest, rows) for rows in parts)):
        pass
    for t, grower in enumerate(forest):
        alone = [TreeGrower(bins, params, t)]
        while not update_growers(alone, sum(partition_vector(alone, rows) for rows in parts)):
            pass
        for a, b in zip(grower.tree, alone[0].tree, strict=True):
            np.testing.assert_array_equal(a, b)
    assert len({tuple(g.tree.feature) for g in forest}) == 3  # different bootstraps, different trees


def test_only_the_lighter_child_of_each_split_is_built():
    """Sibling subtraction asks the next pass for the child of smaller weight only (ties: the left one), and
    for no child at ``max_depth``: the histogram pass builds half the nodes of a level or fewer."""
    X, grad, hess, weight = small_data(1, n=300)
    params = GrowParams(max_depth=3, l2=0.5, min_child_weight=0.0)
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(X)
    grower = TreeGrower(bins, params)
    depth, lighter_right = 0, 0
    while not grower.finished:
        before, depth = grower.n_nodes, depth + 1
        row_node = route_binned(grower.tree, binned, bins.n_edges + 1)
        grower.update(build_histograms(binned, grad, hess, weight, row_node, grower.build_nodes,
                                       bins.offsets))
        tree = grower.tree
        split = [node for node in range(before) if tree.feature[node] >= 0 and tree.left[node] >= before]
        assert split, depth  # the level was split, so the check below is not vacuous
        expected = []
        for node in split:
            left, right = tree.left[node], tree.right[node]
            lighter_right += tree.weight[right] < tree.weight[left]
            if depth < params.max_depth:
                expected.append(left if tree.weight[left] <= tree.weight[right] else right)
        assert grower.build_nodes == expected, depth
    assert depth == params.max_depth and lighter_right > 0
