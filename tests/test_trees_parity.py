"""Gradient-boosted trees against LightGBM at depth 1–3 on data whose best splits are unique: the same
splits (feature, threshold, default direction of missing values; the gain to LightGBM's float32 report) and
the same leaf values and margins to 1e-10.

The data keep every quantity LightGBM computes in float32 (its per-row gradients and Hessians) exact:
small-integer features and labels, 64 rows on an 8 × 8 grid, leaves of 16 rows, margins that stay dyadic
(``λ = 0`` over several rounds, or one round with ``λ = 1``). LightGBM runs with one bin per distinct value
(``min_data_in_bin=1``), no minimum leaf size (``min_data_in_leaf=1``) and a zero initial score
(``boost_from_average=False``); its ``num_leaves = 2**depth`` tree equals our depth-wise one, and
``num_leaves=3`` tests our best-first growth. LightGBM adds 1e-15 to Hessian sums, hence the 1e-10
tolerance rather than bitwise equality. Softmax and Poisson gradients are not exact in float32, so those
two objectives agree to 1e-6 (the last test).
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


def fit_ours(X, y, objective, rounds, params, n_classes=None):
    """Boost ``rounds`` rounds from a zero margin, one tree per output a round: (ensemble, margins)."""
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(X)
    loss = make_objective(objective, n_classes)
    margin = np.zeros((len(y), loss.n_outputs))
    trees, outputs = [], []
    for _ in range(rounds):
        grad, hess = loss.gradients(y, margin)
        for k in range(loss.n_outputs):
            grower = TreeGrower(bins, params, len(trees))
            while not grower.finished:
                row_node = route_binned(grower.tree, binned, bins.n_edges + 1)
                grower.update(build_histograms(binned, grad[:, k], hess[:, k], np.ones(len(y)), row_node,
                                               grower.build_nodes, bins.offsets))
            trees.append(grower.tree)
            outputs.append(k)
        ensemble = Ensemble.from_trees(trees, outputs, np.zeros(loss.n_outputs), X.shape[1])
        margin = ensemble.predict_margin(X)
    return ensemble, margin[:, 0] if loss.n_outputs == 1 else margin


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


def assert_same_trees(ensemble, booster, n_trees, X, tolerance=1e-10):
    """The same splits (feature, which training values go left, where missing values go), gains and leaf
    values. A threshold may differ between the same two training values: LightGBM puts the one above 0 at
    1e-35 (its zero bin) and the others one ulp above the midpoint."""
    dumped = booster.dump_model()["tree_info"]
    assert len(dumped) == n_trees == ensemble.n_trees
    for t in range(n_trees):
        tree = ensemble.tree(t)
        pairs = lightgbm_nodes(dumped[t]["tree_structure"], tree)
        assert len(pairs) == tree.n_nodes
        for ours, theirs in pairs:
            if "split_feature" in theirs:
                assert tree.feature[ours] == theirs["split_feature"]
                values = np.unique(X[:, theirs["split_feature"]])
                assert (np.searchsorted(values, tree.threshold[ours], side="right")
                        == np.searchsorted(values, theirs["threshold"], side="right"))
                # LightGBM reports its gain as a float32 diagnostic (off by ~1e-6 on the logistic case).
                assert tree.gain[ours] == pytest.approx(theirs["split_gain"], rel=1e-5)
                if theirs["missing_type"] == "NaN":
                    assert tree.default_left[ours] == theirs["default_left"]
            else:
                assert tree.feature[ours] == -1
                assert tree.value[ours] == pytest.approx(theirs["leaf_value"], abs=tolerance, rel=tolerance)


def settings(depth, l2=0.0, min_child_weight=0.0, learning_rate=0.5, leaves=None, min_split_gain=0.0):
    """Our :class:`GrowParams` and LightGBM's parameters for the same trees."""
    ours = GrowParams(max_depth=depth, max_leaves=leaves, l2=l2, min_child_weight=min_child_weight,
                      learning_rate=learning_rate, min_split_gain=min_split_gain)
    theirs = dict(num_leaves=leaves or 2**depth, max_depth=depth, lambda_l2=l2, learning_rate=learning_rate,
                  min_sum_hessian_in_leaf=min_child_weight, min_gain_to_split=min_split_gain)
    return ours, theirs


#: case -> (our objective, LightGBM's, label, rounds, settings)
CASES = {
    "regression, depth 1, 3 rounds": ("squared_error", "regression", "regression", 3, settings(1)),
    "regression, depth 2, 3 rounds": ("squared_error", "regression", "regression", 3, settings(2)),
    "regression, best-first 3 leaves": ("squared_error", "regression", "regression", 2,
                                        settings(3, leaves=3)),
    "regression, min child weight": ("squared_error", "regression", "regression", 1,
                                     settings(2, min_child_weight=20.0)),
    # The second level's gains are 72 (first round), 32 and 18: γ = 40 keeps only the first round's.
    "regression, min split gain": ("squared_error", "regression", "regression", 3,
                                   settings(2, min_split_gain=40.0)),
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
    assert_same_trees(ensemble, booster, rounds, X)


def test_the_missing_value_direction_matches_lightgbm():
    """x1 is missing on rows whose x1 was small: each x1 split must learn to send NaN left, as LightGBM."""
    X, regression, _ = grid_data()
    X[(X[:, 1] < 2) & (X[:, 0] % 2 == 0), 1] = np.nan
    params, lightgbm_params = settings(2)
    ensemble, margin = fit_ours(X, regression, "squared_error", 2, params)
    booster = lgb.train({**LIGHTGBM_FIXED, "objective": "regression", **lightgbm_params},
                        lgb.Dataset(X, regression), num_boost_round=2)
    np.testing.assert_allclose(margin, booster.predict(X, raw_score=True), rtol=0, atol=1e-10)
    assert_same_trees(ensemble, booster, 2, X)
    first = ensemble.tree(0)
    assert (first.feature == 1).sum() == 2 and first.default_left[first.feature == 1].all()


def test_softmax_and_poisson_trees_match_lightgbm_to_its_float32_gradients():
    """LightGBM keeps per-row gradients and Hessians in float32, and softmax's (1/3 …) and Poisson's
    (e^0.7 …) are not exact there, so these agree to 1e-6 rather than 1e-10. This checks the conventions:
    softmax's Hessian factor K/(K−1) and one tree per class per round, Poisson's max_delta_step 0.7.

    The softmax labels are chosen so that no tree meets LightGBM's shortcut of never splitting a node on a
    feature that had no positive-gain split in its parent (``is_splittable``), which exact greedy growth
    does not take."""
    X, _, _ = grid_data()
    params, lightgbm_params = settings(2, l2=1.0, learning_rate=0.5)
    classes = (X[:, 0] > 3) + 1.0 * (X[:, 1] > 5) - (X[:, 0] > 5) * (X[:, 1] > 5)
    ensemble, margin = fit_ours(X, classes, "softmax", 3, params, n_classes=3)
    booster = lgb.train({**LIGHTGBM_FIXED, "objective": "multiclass", "num_class": 3, **lightgbm_params},
                        lgb.Dataset(X, classes), num_boost_round=3)
    np.testing.assert_allclose(margin, booster.predict(X, raw_score=True), rtol=0, atol=1e-6)
    assert_same_trees(ensemble, booster, 9, X, tolerance=1e-6)
    counts = np.random.default_rng(0).poisson(np.exp(0.3 * X[:, 0] - 0.5)).astype(float)
    ensemble, margin = fit_ours(X, counts, "poisson", 3, params)
    booster = lgb.train({**LIGHTGBM_FIXED, "objective": "poisson", **lightgbm_params},
                        lgb.Dataset(X, counts), num_boost_round=3)
    np.testing.assert_allclose(margin, booster.predict(X, raw_score=True), rtol=0, atol=1e-6)
    assert_same_trees(ensemble, booster, 3, X, tolerance=1e-6)
