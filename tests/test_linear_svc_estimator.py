"""mrtrain.LinearSVC against scikit-learn's LinearSVC (binary and one-vs-rest), and scikit-learn's checks.

scikit-learn minimises ``½‖w‖² + C Σᵢ sᵢ max(0, 1 − tᵢ xᵢ·w)²``; mrtrain's objective is that divided by
``C Σsᵢ`` when ``l2 = 1/(C Σsᵢ)``. liblinear penalizes the intercept, so the parity tests fit none and
compare the objective, evaluated by one function at both coefficient vectors: both solvers stop with
gradients near 1e-10 of a strongly convex objective, so both values are within ~1e-15 relative of the
minimum, and 1e-6 leaves room for liblinear's looser own stopping rule.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import svm
from sklearn.utils.estimator_checks import parametrize_with_checks

import mrtrain
from mrtrain.estimators import LinearSVC
from tests.datasets import reference_data, standardized, write

#: Newton converges in few passes, so the ~60 checked fits stay fast.
CHECKED = [LinearSVC(l2=1e-2, optimizer="newton", gtol=1e-10)]
#: Checks that are skipped, with the reason: none (check_array_api_input skips itself without
#: SCIPY_ARRAY_API).
EXPECTED_FAILED_CHECKS = {}
TIGHT = {"optimizer": "newton", "tol": 0.0, "gtol": 1e-10, "fit_intercept": False}


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def liblinear_objective(X, signs, w, coef, C):
    """``½‖coef‖² + C Σ sᵢ max(0, 1 − tᵢ xᵢ·coef)²`` for labels ``signs`` in {−1, +1}."""
    slack = np.maximum(1.0 - signs * (X @ coef), 0.0)
    return 0.5 * coef @ coef + C * (w @ slack**2)


def reference(C):
    return svm.LinearSVC(loss="squared_hinge", penalty="l2", dual=False, C=C, fit_intercept=False, tol=1e-12,
                         max_iter=10_000)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_objective_matches_sklearn(weighted):
    X, y = reference_data("breast_cancer")
    labels = np.where(y == 1, "benign", "malignant")
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y)) if weighted else np.ones(len(y))
    C = 0.5
    ours = LinearSVC(l2=1.0 / (C * w.sum()), partitions=2, **TIGHT).fit(X, labels, sample_weight=w)
    ref = reference(C).fit(X, labels, sample_weight=w)
    assert_array_equal(ours.classes_, ref.classes_)
    assert ours.coef_.shape == ref.coef_.shape == (1, X.shape[1]) and ours.intercept_.shape == (1,)
    signs = np.where(labels == ref.classes_[1], 1.0, -1.0)
    assert liblinear_objective(X, signs, w, ours.coef_[0], C) == pytest.approx(
        liblinear_objective(X, signs, w, ref.coef_[0], C), rel=1e-6)
    assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-4)
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_one_vs_rest_matches_sklearn():
    X, y = reference_data("iris")
    X = standardized(X)
    C = 0.1
    ours = LinearSVC(l2=1.0 / (C * len(y)), **TIGHT).fit(X, y)
    ref = reference(C).fit(X, y)
    assert ours.coef_.shape == ref.coef_.shape == (3, 4)
    for index in range(3):  # each class against the rest: the same binary problem as scikit-learn's
        signs = np.where(y == ref.classes_[index], 1.0, -1.0)
        w = np.ones(len(y))
        assert liblinear_objective(X, signs, w, ours.coef_[index], C) == pytest.approx(
            liblinear_objective(X, signs, w, ref.coef_[index], C), rel=1e-6)
    assert ours.decision_function(X).shape == (150, 3)
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_intercept_is_fitted_unpenalized():
    X, y = reference_data("breast_cancer")
    ours = LinearSVC(l2=1e-2, optimizer="newton", tol=0.0, gtol=1e-10).fit(X, y)
    margins = X @ ours.coef_[0] + ours.intercept_[0]
    assert_allclose(ours.decision_function(X), margins, rtol=1e-12)
    # An unpenalized intercept zeroes the derivative of the mean squared hinge along it.
    signs = np.where(y == 1, 1.0, -1.0)
    slack = np.maximum(1.0 - signs * margins, 0.0)
    assert abs(np.mean(-2.0 * signs * slack)) < 1e-9


def test_one_vs_rest_checkpoints_per_class(tmp_path):
    X, y = reference_data("iris")
    model = LinearSVC(l2=1e-2, optimizer="newton", checkpoint_dir=str(tmp_path / "ckpt")).fit(X, y)
    for index in range(3):
        loaded = mrtrain.FittedModel.load(str(tmp_path / "ckpt" / f"class-{index}"))
        assert_allclose(loaded.coef_, model.coef_[index])


def test_fit_on_dataset_path(tmp_path):
    X, y = reference_data("breast_cancer")
    on_path = LinearSVC(l2=1e-2, **TIGHT).fit(write(tmp_path / "bc", X, y))
    in_memory = LinearSVC(l2=1e-2, **TIGHT).fit(X, y)
    assert_allclose(on_path.coef_, in_memory.coef_, atol=1e-9)
    assert_array_equal(on_path.predict(X), in_memory.predict(X))
    Xi, yi = reference_data("iris")
    with pytest.raises(ValueError, match=r"iris: field 'label': expected 2 class labels for LinearSVC on a "
                                         r"dataset \(one-vs-rest needs the rows in memory\), found 3"):
        LinearSVC().fit(write(tmp_path / "iris", Xi, yi))


def test_exported_from_package():
    assert mrtrain.LinearSVC is LinearSVC


@pytest.mark.parametrize("estimator, match", [
    (LinearSVC(l2=-1.0), r"The 'l2' parameter must be a finite float >= 0\. Got -1\.0 instead\."),
    (LinearSVC(fit_intercept=1), r"The 'fit_intercept' parameter of LinearSVC must be a bool\. Got 1"),
    (LinearSVC(optimizer="sgd"), r"The 'optimizer' parameter must be one of"),
])
def test_bad_settings_are_refused(estimator, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit([[0.0], [1.0]], [0, 1])
