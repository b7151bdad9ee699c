"""scikit-learn estimators of the tree ensembles (issue 23, item 5): the same trees as ``fit_trees``, NaN
taken as missing, and scikit-learn's estimator checks for all four.

The checks fit several hundred small models (about 30 s an estimator at one or two trees of depth 1 or 2,
most of it the inline runner's per-pass overhead), so the suite runs every check of
``GradientBoostingClassifier`` and, of the other three, the checks that depend on what sets them apart
(:data:`SUITE_CHECKS`: their objective, their scores, their sample weights, their targets). All checks
of all four: ``MRTRAIN_TREE_CHECKS=all python -m pytest tests/test_tree_estimators.py -k sklearn_checks``.
"""

import os
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.utils.estimator_checks import estimator_checks_generator

from mrtrain.storage.dataset import write_dataset
from mrtrain.tree_estimators import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from mrtrain.tree_training import TreeConfig, fit_trees

#: Instances for scikit-learn's checks: the fewest trees and levels that pass the checks' score bounds
#: (``check_regressors_train``: R² > 0.5 on one informative feature of ten; ``check_classifiers_train``:
#: accuracy > 0.83), each level one pass.
CHECKED = [
    GradientBoostingClassifier(n_estimators=1, max_depth=1),
    GradientBoostingRegressor(n_estimators=1, max_depth=2, learning_rate=1.0),
    RandomForestClassifier(n_estimators=2, max_depth=2),
    RandomForestRegressor(n_estimators=2, max_depth=2),
]
_BOOTSTRAP = ("each tree's bootstrap draws a Poisson(1) count per row (seeded by the row): a row of weight 2 "
              "is one draw times 2, two copies of it are two draws, so the trees differ (scikit-learn marks "
              "the same checks for its own forests)")
#: Checks expected to fail, by estimator, with the reason (strict: a check that passes fails the test).
#: check_array_api_input skips itself without SCIPY_ARRAY_API.
EXPECTED_FAILED_CHECKS = {
    "RandomForestClassifier": {"check_sample_weight_equivalence_on_dense_data": _BOOTSTRAP,
                               "check_sample_weight_equivalence_on_sparse_data": _BOOTSTRAP},
    "RandomForestRegressor": {"check_sample_weight_equivalence_on_dense_data": _BOOTSTRAP,
                              "check_sample_weight_equivalence_on_sparse_data": _BOOTSTRAP},
}
#: The checks the suite runs for the three estimators besides GradientBoostingClassifier, whose every check
#: the suite runs: those that depend on the objective (scores, predictions' shapes and types, integer and 2-d
#: targets, sample weights), not on the shared fitting and validation.
SUITE_CHECKS = {"check_classifiers_train", "check_regressors_train", "check_regressors_int",
                "check_supervised_y_2d", "check_sample_weight_equivalence_on_dense_data"}
ALL_CHECKS = os.environ.get("MRTRAIN_TREE_CHECKS") == "all"


def _name(check):
    return check.func.__name__


def _sklearn_checks():
    for estimator in CHECKED:
        name = type(estimator).__name__
        expected = EXPECTED_FAILED_CHECKS.get(name)
        for param in estimator_checks_generator(estimator, expected_failed_checks=expected, mark="xfail",
                                                xfail_strict=True):
            values = getattr(param, "values", param)
            if ALL_CHECKS or name == "GradientBoostingClassifier" or _name(values[1]) in SUITE_CHECKS:
                marks = getattr(param, "marks", ())
                yield pytest.param(*values, id=f"{name}-{_name(values[1])}", marks=marks)


@pytest.mark.parametrize("estimator, check", list(_sklearn_checks()))
def test_sklearn_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


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
    (GradientBoostingRegressor(n_estimators=5, learning_rate=0.7), 0.9),
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
