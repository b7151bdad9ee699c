"""scikit-learn estimators of the tree ensembles (issue 23, item 5): the same trees as ``fit_trees``, NaN
taken as missing, and scikit-learn's ``check_estimator`` (run for the boosted classifier only: every check
fits several models, 40 s at one tree of depth 1; the others share all of its code but their objective)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.utils.estimator_checks import check_estimator

from mrtrain.storage.dataset import write_dataset
from mrtrain.tree_estimators import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from mrtrain.tree_training import TreeConfig, fit_trees


def test_the_estimators_grow_the_trees_of_fit_trees(tmp_path):
    X, y = make_classification(200, 4, random_state=0)
    X[::9, 2] = np.nan
    estimator = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=1).fit(X, y)
    write_dataset(str(tmp_path / "d"), X, y, missing=True)
    fitted = fit_trees(str(tmp_path / "d"), TreeConfig(objective="logistic", n_trees=3, max_depth=2, seed=1))
    np.testing.assert_array_equal(estimator.predict_proba(X), fitted.predict_proba(X))
    gain = fitted.feature_importance()[0]
    np.testing.assert_allclose(estimator.feature_importances_, gain / gain.sum())
    assert estimator.score(X, y) > 0.8 and estimator.n_estimators_ == 3


@pytest.mark.parametrize("estimator, minimum", [
    (GradientBoostingRegressor(n_estimators=20, learning_rate=0.3), 0.8),
    (RandomForestRegressor(n_estimators=5, max_depth=6), 0.6),
])
def test_regressors(estimator, minimum):
    X, y = make_regression(300, 4, noise=1.0, random_state=0)
    assert estimator.fit(X, y).score(X, y) > minimum


def test_forest_classifier_of_two_and_three_classes():
    X, y = make_classification(200, 4, random_state=0)
    forest = RandomForestClassifier(n_estimators=4, max_depth=3).fit(X, y)
    p = forest.predict_proba(X)
    assert p.shape == (200, 2) and np.allclose(p.sum(axis=1), 1) and forest.score(X, y) > 0.8
    X3, y3 = make_classification(60, 5, n_informative=3, n_classes=3, random_state=0)
    labels = np.array(["a", "b", "c"])[y3]  # string labels: classes_ in sorted order, predict gives them back
    forest = RandomForestClassifier(n_estimators=2, max_depth=3).fit(X3, labels)
    p = forest.predict_proba(X3)
    assert p.shape == (60, 3) and np.allclose(p.sum(axis=1), 1) and list(forest.classes_) == ["a", "b", "c"]
    np.testing.assert_array_equal(forest.predict(X3), forest.classes_[np.argmax(p, axis=1)])
    assert forest.score(X3, labels) > 0.7
    assert GradientBoostingClassifier(n_estimators=3).fit(X3, y3).predict_proba(X3).shape == (60, 3)


def test_check_estimator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(GradientBoostingClassifier(n_estimators=1, max_depth=1), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == []
