"""Tree ensembles as arrays: routing raw (dense, CSR, NaN) and binned rows, margins, feature importance,
the JSON export's round trip, the objectives' gradients (finite differences) and base scores (closed
forms), and the seeded sampling."""

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, logsumexp

from mrtrain.engine.trees import (
    Ensemble,
    GrowParams,
    Tree,
    TreeGrower,
    bootstrap_weights,
    build_histograms,
    choose_features,
    export,
    make_bins,
    make_objective,
    merge_summaries,
    n_chosen,
    route,
    route_binned,
    subsample_mask,
    summarize,
)


def stump_tree():
    """x0 <= 1 (NaN right) → [x1 <= 0 (NaN left) → 1 | 2] | 3."""
    return Tree.from_lists(feature=[0, 1, -1, -1, -1], bin=[1, 0, -1, -1, -1], threshold=[1.0, 0.0, 0, 0, 0],
                           default_left=[False, True, False, False, False], left=[1, 3, -1, -1, -1],
                           right=[2, 4, -1, -1, -1], value=[0.0, 0.0, 3.0, 1.0, 2.0],
                           gain=[5.0, 2.0, 0, 0, 0], hess=[10.0, 6, 4, 3, 3], weight=[10.0, 6, 4, 3, 3])


def test_routing_follows_thresholds_and_sends_missing_values_the_learnt_way():
    X = np.array([[1.0, 0.0], [1.0, 0.5], [1.5, -9.0], [np.nan, 0.0], [0.0, np.nan], [0.0, 0.0],
                  [-1.0, 7.0]])
    expected = [3, 4, 2, 2, 3, 3, 4]
    tree = stump_tree()
    np.testing.assert_array_equal(route(tree, X), expected)
    sparse = sp.csr_matrix(np.nan_to_num(X, nan=5.0))
    sparse.data[sparse.data == 5.0] = np.nan  # explicit NaN in CSR rows
    np.testing.assert_array_equal(route(tree, sparse), expected)
    np.testing.assert_array_equal(route(tree, X[:0]), [])
    duplicated = sp.csr_matrix((np.array([0.5, 0.75, 2.0]), np.array([0, 0, 0]), np.array([0, 2, 3])),
                               shape=(2, 2))  # row 0 stores x0 twice: 0.5 + 0.75 > 1
    np.testing.assert_array_equal(route(tree, duplicated), route(tree, duplicated.toarray()))
    assert route(tree, duplicated)[0] == 2


def grown_ensemble(seed=0, rounds=3, n=300):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.random(n) < 0.2, 2] = np.nan
    X[:, 3] = np.where(rng.random(n) < 0.6, 0.0, X[:, 3])
    y = (X[:, 0] + np.nan_to_num(X[:, 2], nan=2.0) > 0.5).astype(float)
    bins = make_bins(summarize(X), 32)
    binned = bins.transform(X)
    loss = make_objective("logistic")
    base = loss.base_score(loss.base_stats(y, np.ones(n)))
    trees, margin = [], np.tile(base, (n, 1))
    for t in range(rounds):
        grad, hess = loss.gradients(y, margin)
        grower = TreeGrower(bins, GrowParams(max_depth=3, learning_rate=0.3), t)
        while not grower.finished:
            row_node = route_binned(grower.tree, binned, bins.n_edges + 1)
            grower.update(build_histograms(binned, grad[:, 0], hess[:, 0], np.ones(n), row_node,
                                           grower.build_nodes, bins.offsets))
        trees.append(grower.tree)
        margin = Ensemble.from_trees(trees, [0] * len(trees), base, 4).predict_margin_binned(
            binned, bins.n_edges + 1)
    return Ensemble.from_trees(trees, [0] * len(trees), base, 4), X, bins, margin


def test_margins_of_raw_sparse_and_binned_rows_are_the_same_bits():
    ensemble, X, bins, margin = grown_ensemble()
    np.testing.assert_array_equal(ensemble.predict_margin(X), margin)
    np.testing.assert_array_equal(ensemble.predict_margin_binned(bins.transform(X), bins.n_edges + 1), margin)
    dense = np.nan_to_num(X, nan=0.0)
    np.testing.assert_array_equal(ensemble.predict_margin(sp.csr_matrix(dense)),
                                  ensemble.predict_margin(dense))
    # The margin is the base score plus each tree's leaf, tree after tree.
    expected = np.full(len(X), ensemble.base_score[0])
    for t in range(ensemble.n_trees):
        tree = ensemble.tree(t)
        expected += tree.value[route(tree, X)]
    np.testing.assert_array_equal(margin[:, 0], expected)
    np.testing.assert_array_equal(ensemble.predict_margin(X, n_trees=0)[:, 0], ensemble.base_score[0])
    # A cached margin of the first trees plus the later ones is the same bits.
    first = ensemble.predict_margin_binned(bins.transform(X), bins.n_edges + 1, n_trees=2)
    later = ensemble.predict_margin_binned(bins.transform(X), bins.n_edges + 1, start=2, margin=first)
    np.testing.assert_array_equal(later, margin)
    np.testing.assert_array_equal(ensemble.predict_margin(X, start=1, margin=ensemble.predict_margin(X, 1)),
                                  margin)
    with pytest.raises(ValueError, match="from tree 2 on need the margin"):
        ensemble.predict_margin(X, start=2)


def test_feature_importance_is_the_total_gain_and_count_of_splits():
    ensemble, *_ = grown_ensemble()
    gain, count = ensemble.feature_importance()
    for j in range(4):
        splits = ensemble.nodes.feature == j
        assert count[j] == splits.sum()
        assert gain[j] == pytest.approx(ensemble.nodes.gain[splits].sum(), rel=1e-12)
    assert count.sum() == (ensemble.nodes.feature >= 0).sum() and gain[1] < gain[0]


def test_the_json_export_round_trips_exactly():
    ensemble, X, _, margin = grown_ensemble()
    text = export.dumps(ensemble, objective="logistic", feature_names=["a", "b", "c", "d"])
    document = json.loads(text)
    assert document["format"] == "mrtrain-trees" and document["version"] == 1
    assert document["objective"] == "logistic" and document["n_features"] == 4
    root = document["trees"][0]["nodes"][0]
    assert {"feature", "threshold", "default_left", "left", "right", "gain"} <= set(root)
    again = export.from_json(text)
    for name, value in ensemble.to_arrays().items():
        np.testing.assert_array_equal(again.to_arrays()[name], value, err_msg=name)
    np.testing.assert_array_equal(again.predict_margin(X), margin)
    arrays = Ensemble.from_arrays(ensemble.to_arrays())
    np.testing.assert_array_equal(arrays.predict_margin(X), margin)


@pytest.mark.parametrize("document, message", [
    ({"format": "xgboost", "version": 1}, "format 'mrtrain-trees' and version 1"),
    ({"format": "mrtrain-trees", "version": 1, "base_score": [0.0], "n_features": 1},
     "missing the field 'trees'"),
    ({"format": "mrtrain-trees", "version": 1, "base_score": [0.0], "n_features": 1,
      "trees": [{"output": 0, "nodes": [{"node": 1, "leaf": 0.0, "hess": 1.0, "weight": 1.0}]}]},
     "tree 0's nodes must be numbered"),
])
def test_a_malformed_export_is_refused(document, message):
    with pytest.raises(ValueError, match=message):
        export.from_json(document)


LOSSES = {
    "squared_error": lambda y, f: 0.5 * (f[:, 0] - y) ** 2,
    "logistic": lambda y, f: np.logaddexp(0, f[:, 0]) - y * f[:, 0],
    "poisson": lambda y, f: np.exp(f[:, 0]) - y * f[:, 0],
    "softmax": lambda y, f: logsumexp(f, axis=1) - f[np.arange(len(y)), y.astype(int)],
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_are_the_loss_derivatives(name):
    rng = np.random.default_rng(1)
    n_classes = 3 if name == "softmax" else None
    loss = make_objective(name, n_classes)
    y = {"squared_error": rng.normal(size=50), "logistic": rng.integers(0, 2, 50).astype(float),
         "poisson": rng.poisson(2.0, 50).astype(float), "softmax": rng.integers(0, 3, 50).astype(float)}[name]
    margin = rng.normal(size=(50, loss.n_outputs))
    grad, hess = loss.gradients(y, margin)
    step = 1e-6
    for k in range(loss.n_outputs):
        shift = np.zeros_like(margin)
        shift[:, k] = step
        numeric = (LOSSES[name](y, margin + shift) - LOSSES[name](y, margin - shift)) / (2 * step)
        np.testing.assert_allclose(grad[:, k], numeric, rtol=1e-6, atol=1e-8)
        second = (loss.gradients(y, margin + shift)[0][:, k] - loss.gradients(y, margin - shift)[0][:, k]) / (
            2 * step)
        factor = {"poisson": math.exp(0.7), "softmax": 3 / 2}.get(name, 1.0)
        np.testing.assert_allclose(hess[:, k], factor * second, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_base_score_minimises_the_weighted_loss_of_a_constant_margin(name):
    rng = np.random.default_rng(2)
    n_classes = 3 if name == "softmax" else None
    loss = make_objective(name, n_classes)
    y = {"squared_error": rng.normal(3, 1, 80), "logistic": rng.integers(0, 2, 80).astype(float),
         "poisson": rng.poisson(2.0, 80).astype(float), "softmax": rng.integers(0, 3, 80).astype(float)}[name]
    weight = rng.uniform(0.5, 2, 80)
    stats = loss.base_stats(y[:30], weight[:30]) + loss.base_stats(y[30:], weight[30:])
    base = loss.base_score(stats)
    grad, _ = loss.gradients(y, np.tile(base, (80, 1)))
    np.testing.assert_allclose(weight @ grad, 0.0, atol=1e-10)
    if name == "logistic":
        assert expit(base[0]) == pytest.approx(np.average(y, weights=weight), rel=1e-12)


def test_predictions_are_the_inverse_links():
    margin = np.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    np.testing.assert_allclose(make_objective("logistic").predict(margin[:, :1]), expit(margin[:, 0]))
    np.testing.assert_allclose(make_objective("poisson").predict(margin[:, :1]), np.exp(margin[:, 0]))
    probabilities = make_objective("softmax", 3).predict(margin)
    np.testing.assert_allclose(probabilities, np.exp(margin - logsumexp(margin, axis=1, keepdims=True)))


@pytest.mark.parametrize("name, n_classes, message", [
    ("hinge", None, "'objective' parameter must be one of"),
    ("softmax", 1, "'n_classes' must be an int >= 2")])
def test_bad_objectives_are_refused(name, n_classes, message):
    with pytest.raises(ValueError, match=message):
        make_objective(name, n_classes)


@pytest.mark.parametrize("name, labels, message", [
    ("logistic", [0.0, 1.0, 2.0], r"logistic objective needs every label to be 0 or 1\. Got 2\.0 in row 2"),
    ("poisson", [1.0, -1.0], r"a finite count >= 0\. Got -1\.0 in row 1"),
    ("softmax", [0.0, 2.0, 0.5], r"a class index in 0\.\.2\. Got 0\.5 in row 2"),
    ("squared_error", [1.0, np.nan], r"a finite number\. Got nan in row 1")])
def test_labels_an_objective_cannot_take_are_refused_naming_the_row(name, labels, message):
    loss = make_objective(name, 3 if name == "softmax" else None)
    with pytest.raises(ValueError, match=message):
        loss.check_labels(labels)
    np.testing.assert_array_equal(loss.check_labels(labels[:-1]), labels[:-1])


def test_bootstrap_weights_are_poisson_1_and_depend_only_on_seed_tree_and_row():
    weights = bootstrap_weights(seed=3, tree=0, partition_id=2, n_rows=200_000)
    np.testing.assert_array_equal(weights, bootstrap_weights(3, 0, 2, 200_000))
    np.testing.assert_array_equal(weights[:1000], bootstrap_weights(3, 0, 2, 1000))
    frequencies = np.bincount(weights.astype(int), minlength=6)[:6] / len(weights)
    expected = [math.exp(-1) / math.factorial(k) for k in range(6)]
    np.testing.assert_allclose(frequencies, expected, atol=4 * np.sqrt(0.25 / len(weights)))
    assert weights.mean() == pytest.approx(1.0, abs=0.01)
    assert not np.array_equal(weights, bootstrap_weights(3, 1, 2, 200_000))
    assert not np.array_equal(weights, bootstrap_weights(3, 0, 1, 200_000))
    assert np.corrcoef(weights, bootstrap_weights(4, 0, 2, 200_000))[0, 1] == pytest.approx(0, abs=0.02)


def test_subsamples_keep_the_fraction_by_seed():
    mask = subsample_mask(seed=5, tree=2, partition_id=0, n_rows=100_000, fraction=0.3)
    assert mask.mean() == pytest.approx(0.3, abs=0.01)
    np.testing.assert_array_equal(mask, subsample_mask(5, 2, 0, 100_000, 0.3))
    assert (mask & subsample_mask(5, 3, 0, 100_000, 0.3)).mean() == pytest.approx(0.09, abs=0.01)
    assert subsample_mask(5, 2, 0, 10, 1.0).all()


def test_feature_draws_are_seeded_subsets():
    assert [n_chosen(m, 28) for m in ("sqrt", "log2", 0.5, None, 0.01)] == [5, 4, 14, 28, 1]
    chosen = choose_features(seed=1, tree=4, node=-1, n_features=28, k=5)
    assert len(chosen) == 5 and np.all(np.diff(chosen) > 0)
    np.testing.assert_array_equal(chosen, choose_features(1, 4, -1, 28, 5))
    within = choose_features(1, 4, 7, 28, 2, among=chosen)
    assert set(within) <= set(chosen) and len(within) == 2
    draws = np.array([np.isin(np.arange(28), choose_features(1, t, -1, 28, 7)) for t in range(2000)])
    np.testing.assert_allclose(draws.mean(axis=0), 0.25, atol=0.04)
    with pytest.raises(ValueError, match="'max_features' parameter must be 'sqrt', 'log2' or a number"):
        n_chosen(1.5, 28)


def test_an_empty_partition_gives_empty_sums():
    empty = np.zeros((0, 3))
    X = np.arange(12.0).reshape(4, 3)
    summary = summarize(empty)
    assert summary.n_rows == 0 and summary.sizes.tolist() == [0, 0, 0]
    for name, value in merge_summaries([summary, summarize(X)]).to_arrays().items():
        np.testing.assert_array_equal(value, summarize(X).to_arrays()[name])
    bins = make_bins(summarize(X), 255)
    binned = bins.transform(empty)
    assert binned.shape == (0, 3)
    nothing = np.zeros(0)
    rows = nothing.astype(np.int64)
    vector = build_histograms(binned, nothing, nothing, nothing, rows, [0, 3], bins.offsets)
    np.testing.assert_array_equal(vector, np.zeros(2 * bins.total_bins * 3))
    assert route_binned(stump_tree(), binned, bins.n_edges + 1).shape == (0,)
    assert make_objective("logistic").base_stats(np.zeros(0), np.zeros(0)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("field, value, allowed", [
    ("max_depth", 0, r"an int in \[1, 30\]"), ("max_depth", 31, r"an int in \[1, 30\]"),
    ("max_leaves", 1, "None or an int >= 2"), ("l2", -1.0, "a number >= 0"),
    ("learning_rate", 0.0, "a number > 0"), ("colsample", 0.0, r"a number in \(0, 1\]"),
    ("colsample", 1.5, r"a number in \(0, 1\]"), ("max_features", "auto", "None, 'sqrt', 'log2' or a number"),
    ("min_child_weight", -0.1, "a number >= 0"), ("min_split_gain", float("nan"), "a number >= 0"),
    ("seed", -1, r"an int in \[0, 2\*\*63\)")])
def test_bad_grow_parameters_are_refused_naming_the_parameter(field, value, allowed):
    message = f"The '{field}' parameter must be {allowed}.* Got {value!r} instead"
    with pytest.raises(ValueError, match=message):
        TreeGrower(make_bins(summarize(np.zeros((2, 1))), 255), GrowParams(**{field: value}))
