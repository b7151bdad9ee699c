"""Gradient-boosted trees against LightGBM at depth 1–3 on data whose best splits are unique: the same
splits (feature, threshold, default direction of missing values; the gain to LightGBM's float32 report) and
the same leaf values and margins to 1e-10.

The data keep every quantity LightGBM computes in float32 (its per-row gradients and Hessians) exact:
small-integer features and labels, 64 rows on an 8 × 8 grid, leaves of 16 rows, margins that stay dyadic
(``λ = 0`` over several rounds, or one round with ``λ = 1``). LightGBM runs with one bin per distinct value
(``min_data_in_bin=1``), no minimum leaf size (``min_data_in_leaf=1``) and a zero initial score
(``boost_from_average=False``); its ``num_leaves = 2**depth`` tree equals our depth-wise one, and
``num_leaves=3`` tests our best-first growth. LightGBM's thresholds are its bin bounds, the midpoint one ulp
up; LightGBM adds 1e-15 to Hessian sums, hence the 1e-10 tolerance rather than bitwise equality.
"""

import lightgbm as lgb
import numpy as np
import pytest

from mrtrain.engine.trees import (
    Ensemble,
    GrowParams,
    TreeGrower,
    build_histograms,
    make_bins,
    make_objective,
    route_binned,
    summarize,
)

LIGHTGBM_FIXED = dict(min_data_in_leaf=1, min_gain_to_split=0.0, max_bin=255, min_data_in_bin=1,
                      boost_from_average=False, num_threads=1, deterministic=True, force_row_wise=True,
                      verbose=-1, feature_pre_filter=False, min_sum_hessian_in_leaf=0.0)


def grid_data():
    """64 rows: features x0, x1 on an 8 × 8 grid and a seeded noise column x2, all small integers."""
    rng = np.random.default_rng(3)
    x0, x1 = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    X = np.column_stack((x0.ravel(), x1.ravel(), rng.integers(0, 8, 64).astype(float)))
    regression = 10.0 * (X[:, 0] > 3) + 3.0 * (X[:, 1] > 3) + X[:, 0]
    binary = ((X[:, 0] > 3) ^ (X[:, 1] > 5) ^ (rng.random(64) < 0.15)).astype(float)
    return X, regression, binary


def fit_ours(X, y, objective, rounds, params):
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(X)
    loss = make_objective(objective)
    margin = np.zeros((len(y), 1))
    trees = []
    for t in range(rounds):
        grad, hess = loss.gradients(y, margin)
        grower = TreeGrower(bins, params, t)
        while not grower.finished:
            row_node = route_binned(grower.tree, binned, bins.n_edges + 1)
            grower.update(build_histograms(binned, grad[:, 0], hess[:, 0], np.ones(len(y)), row_node,
                                           grower.build_nodes, bins.offsets))
        trees.append(grower.tree)
        ensemble = Ensemble.from_trees(trees, [0] * len(trees), [0.0], X.shape[1])
        margin = ensemble.predict_margin(X)
    return ensemble, margin[:, 0]


def lightgbm_nodes(node, tree):
    """Our tree's nodes and LightGBM's dumped nodes, paired by walking both from the root."""
    pairs = []

    def walk(ours, theirs):
        pairs.append((ours, theirs))
        if "split_feature" in theirs and tree.feature[ours] >= 0:
            walk(tree.left[ours], theirs["left_child"])
            walk(tree.right[ours], theirs["right_child"])

    walk(0, node)
    return pairs


def assert_same_trees(ensemble, booster, rounds):
    dumped = booster.dump_model()["tree_info"]
    assert len(dumped) == rounds == ensemble.n_trees
    for t in range(rounds):
        tree = ensemble.tree(t)
        pairs = lightgbm_nodes(dumped[t]["tree_structure"], tree)
        assert len(pairs) == tree.n_nodes
        for ours, theirs in pairs:
            if "split_feature" in theirs:
                assert tree.feature[ours] == theirs["split_feature"]
                assert tree.threshold[ours] == pytest.approx(theirs["threshold"], rel=1e-10)
                # LightGBM reports its gain as a float32 diagnostic (off by ~1e-6 on the logistic case).
                assert tree.gain[ours] == pytest.approx(theirs["split_gain"], rel=1e-5)
                if theirs["missing_type"] == "NaN":
                    assert tree.default_left[ours] == theirs["default_left"]
            else:
                assert tree.feature[ours] == -1
                assert tree.value[ours] == pytest.approx(theirs["leaf_value"], abs=1e-10, rel=1e-10)


def settings(depth, l2=0.0, min_child_weight=0.0, learning_rate=0.5, leaves=None):
    """Our :class:`GrowParams` and LightGBM's parameters for the same trees."""
    ours = GrowParams(max_depth=depth, max_leaves=leaves, l2=l2, min_child_weight=min_child_weight,
                      learning_rate=learning_rate)
    theirs = dict(num_leaves=leaves or 2**depth, max_depth=depth, lambda_l2=l2, learning_rate=learning_rate,
                  min_sum_hessian_in_leaf=min_child_weight)
    return ours, theirs


#: case -> (our objective, LightGBM's, label, rounds, settings)
CASES = {
    "regression, depth 1, 3 rounds": ("squared_error", "regression", "regression", 3, settings(1)),
    "regression, depth 2, 3 rounds": ("squared_error", "regression", "regression", 3, settings(2)),
    "regression, best-first 3 leaves": ("squared_error", "regression", "regression", 2,
                                        settings(3, leaves=3)),
    "regression, min child weight": ("squared_error", "regression", "regression", 1,
                                     settings(2, min_child_weight=20.0)),
    "logistic, depth 2, l2 = 1": ("logistic", "binary", "binary", 1, settings(2, l2=1.0, learning_rate=1.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trees_match_lightgbm(case):
    objective, lightgbm_objective, label, rounds, (params, lightgbm_params) = CASES[case]
    X, regression, binary = grid_data()
    y = regression if label == "regression" else binary
    ensemble, margin = fit_ours(X, y, objective, rounds, params)
    booster = lgb.train({**LIGHTGBM_FIXED, "objective": lightgbm_objective, **lightgbm_params},
                        lgb.Dataset(X, y), num_boost_round=rounds)
    np.testing.assert_allclose(margin, booster.predict(X, raw_score=True), rtol=0, atol=1e-10)
    assert_same_trees(ensemble, booster, rounds)


def test_the_missing_value_direction_matches_lightgbm():
    """x1 is missing on rows whose x1 was small: each x1 split must learn to send NaN left, as LightGBM."""
    X, regression, _ = grid_data()
    X[(X[:, 1] < 2) & (X[:, 0] % 2 == 0), 1] = np.nan
    params, lightgbm_params = settings(2)
    ensemble, margin = fit_ours(X, regression, "squared_error", 2, params)
    booster = lgb.train({**LIGHTGBM_FIXED, "objective": "regression", **lightgbm_params},
                        lgb.Dataset(X, regression), num_boost_round=2)
    np.testing.assert_allclose(margin, booster.predict(X, raw_score=True), rtol=0, atol=1e-10)
    assert_same_trees(ensemble, booster, 2)
    first = ensemble.tree(0)
    assert (first.feature == 1).sum() == 2 and first.default_left[first.feature == 1].all()
