"""Random forests of more than two classes (issue 23): trees of vector leaves (the class frequencies of their
bootstrap rows) split by the Gini criterion, against scikit-learn's ``DecisionTreeClassifier`` (each tree,
on its bootstrap weights) and ``RandomForestClassifier`` (held-out accuracy), the same bits on every runner
and after a resume, and the JSON export of vector leaves."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier as ScikitForest
from sklearn.tree import DecisionTreeClassifier

from mrtrain.engine.trees.export import dumps, from_json, to_json
from mrtrain.engine.trees.sampling import bootstrap_weights
from mrtrain.engine.trees.tree import ALL_OUTPUTS, LEAF, route
from mrtrain.storage.dataset import Dataset, write_dataset
from mrtrain.tree_estimators import RandomForestClassifier
from mrtrain.tree_training import TreeConfig, fit_trees

#: Values of every feature: integers 0 .. VALUES − 1, so each value has its own bin (pre-binned data).
VALUES = 12


def _three_classes(n, seed):
    """Pre-binned rows (integers in [0, VALUES)) with three noisy classes driven by features 0 and 1."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, VALUES, size=(n, 4)).astype(np.float64)
    y = np.where(X[:, 0] + rng.normal(0, 1.5, n) < 4, 0, np.where(X[:, 1] + rng.normal(0, 2, n) < 6, 1, 2))
    return X, y.astype(np.float64)


def _bits(model):
    return {name: np.ascontiguousarray(value).tobytes() for name, value in model.ensemble.to_arrays().items()}


def _gini(values):
    return 1.0 - (values ** 2).sum()


def _same_tree(ours, reference, n_trees, a=0, b=0):
    """Tree ``ours`` (a forest tree of vector leaves) is scikit-learn's ``reference`` (a ``tree_``) on the
    same rows: node by node, the same split (feature, and the bin: scikit-learn's threshold is between the
    bin and the next value in the node), weights, class frequencies and the gain, which is the weighted
    Gini decrease."""
    n = reference.weighted_n_node_samples
    np.testing.assert_allclose(ours.value[a] * n_trees, reference.value[b, 0], rtol=0, atol=1e-12)
    assert ours.weight[a] == ours.hess[a] == pytest.approx(n[b], rel=1e-12)
    if reference.children_left[b] == -1:
        assert ours.feature[a] == LEAF, f"node {a}: a leaf in scikit-learn's tree, split in ours"
        return 1
    left, right = reference.children_left[b], reference.children_right[b]
    # scikit-learn's threshold is halfway to the next value present in the node; ours is the bin's value.
    assert ours.feature[a] == reference.feature[b] and ours.bin[a] + 0.5 <= reference.threshold[b], a
    decrease = (n[b] * _gini(reference.value[b, 0]) - n[left] * _gini(reference.value[left, 0])
                - n[right] * _gini(reference.value[right, 0]))
    assert ours.gain[a] == pytest.approx(decrease, rel=1e-12)
    return 1 + (_same_tree(ours, reference, n_trees, ours.left[a], left)
                + _same_tree(ours, reference, n_trees, ours.right[a], right))


def test_each_tree_is_scikit_learns_gini_tree_on_its_bootstrap_weights(tmp_path):
    """Every tree of a forest with all features at every node is ``DecisionTreeClassifier(criterion="gini")``
    fitted on the rows with their weights times their Poisson(1) bootstrap counts as sample weights: the same
    splits, weights and leaf class distributions to 1e-12. The row weights are continuous so that each
    node's best split is unique (with integer weights, ties between features are common, and scikit-learn
    breaks them by a random feature order where we take the first feature)."""
    X, y = _three_classes(240, seed=0)
    weight = np.random.default_rng(9).uniform(0.5, 2.0, len(y))
    uri = str(tmp_path / "d")
    write_dataset(uri, X, y, weight, partitions=2)
    config = TreeConfig(model="random-forest", objective="classification", n_trees=2, max_depth=4, seed=5,
                        min_child_weight=0.0)
    model = fit_trees(uri, config)
    assert model.objective == "onehot_squared_error" and model.ensemble.nodes.value.shape[1] == 3
    assert (model.bins.n_edges == VALUES - 1).all()  # one bin per value: local bin v is the value v
    rows = [part.rows for part in Dataset.open(uri).partitions]
    for t in range(config.n_trees):
        w = weight * np.concatenate([bootstrap_weights(config.seed, t, p, n) for p, n in enumerate(rows)])
        kept = w > 0
        reference = DecisionTreeClassifier(criterion="gini", max_depth=config.max_depth, random_state=0).fit(
            X[kept], y[kept], sample_weight=w[kept])
        ours = model.ensemble.tree(t)
        assert _same_tree(ours, reference.tree_, config.n_trees) == reference.tree_.node_count > 7
        np.testing.assert_allclose(ours.value[route(ours, X[kept])] * config.n_trees,
                                   reference.predict_proba(X[kept]), rtol=0, atol=1e-12)
        # The total gain is scikit-learn's impurity-based importance before it normalises it.
        inner = ours.feature != LEAF
        gain = np.bincount(ours.feature[inner], weights=ours.gain[inner], minlength=X.shape[1])
        np.testing.assert_allclose(gain / gain.sum(), reference.feature_importances_, rtol=0, atol=1e-12)
    # The probability is the trees' average leaf distribution.
    average = sum(model.ensemble.tree(t).value[route(model.ensemble.tree(t), X)] for t in range(2))
    np.testing.assert_allclose(model.predict_proba(X), average, rtol=0, atol=1e-14)  # normalised: ulps


def test_held_out_accuracy_is_scikit_learns_random_forest():
    """Against ``sklearn.ensemble.RandomForestClassifier`` with the same trees, depth and features per node,
    through the estimator. The tolerance is three standard deviations of the difference of two accuracies
    near ``p`` on the same ``n`` held-out rows, ``sqrt(2 p (1 − p) / n)``, an upper bound when the two
    forests' errors are correlated."""
    X, y = make_classification(n_samples=900, n_features=8, n_informative=5, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, random_state=0)
    X_train, y_train, X_test, y_test = X[:500], y[:500], X[500:], y[500:]
    ours = RandomForestClassifier(n_estimators=16, max_depth=6, random_state=0).fit(X_train, y_train)
    p = ours.predict_proba(X_test)
    assert p.shape == (400, 3) and np.allclose(p.sum(axis=1), 1) and list(ours.classes_) == [0, 1, 2]
    theirs = ScikitForest(n_estimators=16, max_depth=6, max_features="sqrt", random_state=0)
    reference = theirs.fit(X_train, y_train).score(X_test, y_test)
    accuracy = ours.score(X_test, y_test)
    tolerance = 3 * np.sqrt(2 * reference * (1 - reference) / len(y_test))
    assert abs(accuracy - reference) < tolerance and reference > 0.7, (accuracy, reference, tolerance)
    assert ours.feature_importances_.sum() == pytest.approx(1.0)


def test_same_bits_on_every_runner_and_after_a_resume(tmp_path):
    X, y = _three_classes(90, seed=1)
    uri = str(tmp_path / "d")
    write_dataset(uri, X, y, partitions=2)
    config = TreeConfig(model="random-forest", objective="classification", n_trees=2, max_depth=2,
                        max_bins=8, max_features="sqrt", seed=3)
    model = fit_trees(uri, config)
    assert _bits(fit_trees(uri, config, runner="local")) == _bits(model)
    assert _bits(fit_trees(uri, config, runner="local", allreduce=True)) == _bits(model)
    # Stopped after the first level's pass (bins, forest start, level 1: the growers are mid-tree), resumed.
    checkpoints = str(tmp_path / "c")
    fit_trees(uri, config, checkpoint_dir=checkpoints, max_passes=3)
    assert _bits(fit_trees(uri, config, checkpoint_dir=checkpoints)) == _bits(model)
    # Each leaf holds its rows' class frequencies over the number of trees.
    leaves = model.ensemble.nodes.feature == LEAF
    np.testing.assert_allclose(model.ensemble.nodes.value[leaves].sum(axis=1), 1 / config.n_trees, rtol=1e-14)
    assert (model.ensemble.tree_output == ALL_OUTPUTS).all()


def test_the_json_export_of_vector_leaves(tmp_path):
    """The export round-trips exactly; its documented rules (each tree of output −1 adds its leaf's list to
    every output) give the margins; a tree whose leaves do not have one number per class is refused."""
    X, y = _three_classes(120, seed=2)
    uri = str(tmp_path / "d")
    write_dataset(uri, X, y, partitions=1)
    model = fit_trees(uri, TreeConfig(model="random-forest", objective="classification", n_trees=2,
                                      max_depth=2))
    document = json.loads(dumps(model.ensemble, model.objective))
    back = from_json(document)
    assert {k: v.tobytes() for k, v in back.to_arrays().items()} == {
        k: v.tobytes() for k, v in model.ensemble.to_arrays().items()}
    margin = np.tile(np.asarray(document["base_score"]), (len(X), 1))
    for exported in document["trees"]:
        assert exported["output"] == -1
        for i, row in enumerate(X):
            node = exported["nodes"][0]
            while "leaf" not in node:
                node = exported["nodes"][node["left"] if row[node["feature"]] <= node["threshold"]
                                         else node["right"]]
            margin[i] += node["leaf"]
    np.testing.assert_allclose(margin, model.predict_margin(X), rtol=0, atol=1e-15)
    broken = to_json(model.ensemble)
    leaf = next(node for node in broken["trees"][0]["nodes"] if "leaf" in node)
    leaf["leaf"] = leaf["leaf"][:2]
    with pytest.raises(ValueError, match="Tree 0 of output -1 must have leaf values that are lists of 3"):
        from_json(broken)
