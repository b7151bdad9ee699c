"""mrtrain.MultinomialNB, BernoulliNB and GaussianNB against scikit-learn's, and scikit-learn's checks.

The parameters are closed forms of class-wise sums (counts, weights, means, variances), so they agree
with scikit-learn's to rounding: 1e-10 relative allows for sums taken in another order (per partition,
then merged) over a few hundred rows; the probabilities follow by the same formula.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import naive_bayes
from sklearn.utils.estimator_checks import parametrize_with_checks

import mrtrain
from mrtrain.estimators import BernoulliNB, GaussianNB, MultinomialNB
from tests.datasets import reference_data, write

CHECKED = [MultinomialNB(), BernoulliNB(), GaussianNB()]
#: Checks that are skipped, with the reason: none (check_array_api_input skips itself without
#: SCIPY_ARRAY_API).
EXPECTED_FAILED_CHECKS = {}
PAIRS = {
    "multinomial": (MultinomialNB, naive_bayes.MultinomialNB, "alpha"),
    "bernoulli": (BernoulliNB, naive_bayes.BernoulliNB, "alpha"),
    "gaussian": (GaussianNB, naive_bayes.GaussianNB, "var_smoothing"),
}


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def counts(seed=0, n=240, d=12):
    """Word-count-like rows of three classes, each class with its own feature rates; seeded."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    rates = rng.uniform(0.1, 3.0, size=(3, d))
    return rng.poisson(rates[y]).astype(float), np.array(["ham", "spam", "eggs"])[y]


def assert_same_model(ours, ref, X):
    assert_array_equal(ours.classes_, ref.classes_)
    assert_allclose(ours.predict_log_proba(X), ref.predict_log_proba(X), rtol=1e-10, atol=1e-10)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-10, atol=1e-12)
    assert_allclose(ours.predict_joint_log_proba(X), ref.predict_joint_log_proba(X), rtol=1e-10)
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.score(X, ref.predict(X)) == 1.0


@pytest.mark.parametrize("kind", ["multinomial", "bernoulli"])
@pytest.mark.parametrize("weighted", [False, True])
def test_discrete_models_match_sklearn(kind, weighted):
    X, y = counts()
    w = np.random.default_rng(1).uniform(0.2, 3.0, size=len(y)) if weighted else None
    ours_class, ref_class, smoothing = PAIRS[kind]
    ours = ours_class(**{smoothing: 0.5}, partitions=3).fit(X, y, sample_weight=w)
    ref = ref_class(**{smoothing: 0.5}).fit(X, y, sample_weight=w)
    assert_allclose(ours.feature_log_prob_, ref.feature_log_prob_, rtol=1e-10)
    assert_allclose(ours.class_log_prior_, ref.class_log_prior_, rtol=1e-10)
    assert_same_model(ours, ref, X)
    sparse = ours_class(**{smoothing: 0.5}).fit(sp.csr_matrix(X), y, sample_weight=w)
    assert_allclose(sparse.feature_log_prob_, ours.feature_log_prob_, rtol=1e-12)
    assert_allclose(sparse.predict_proba(sp.csr_matrix(X[:20])), ref.predict_proba(X[:20]), rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_gaussian_matches_sklearn(weighted):
    X, y = reference_data("breast_cancer")
    X = X * 10.0 + 100.0  # a mean that dwarfs the spread: the variances must not lose digits
    w = np.random.default_rng(2).uniform(0.2, 3.0, size=len(y)) if weighted else None
    ours = GaussianNB(var_smoothing=1e-6, partitions=4).fit(X, y, sample_weight=w)
    ref = naive_bayes.GaussianNB(var_smoothing=1e-6).fit(X, y, sample_weight=w)
    assert_allclose(ours.theta_, ref.theta_, rtol=1e-10)
    assert_allclose(ours.var_, ref.var_, rtol=1e-10)
    assert_allclose(ours.class_prior_, ref.class_prior_, rtol=1e-10)
    assert_same_model(ours, ref, X)


@pytest.mark.parametrize("kind", ["multinomial", "gaussian"])
def test_fit_on_dataset_path(tmp_path, kind):
    X, y = reference_data("iris")
    uri = write(tmp_path / "iris", X, y, partitions=2)
    ours_class, ref_class, _ = PAIRS[kind]
    on_path = ours_class().fit(uri)
    ref = ref_class().fit(X, y)
    assert on_path.n_features_in_ == 4
    assert_same_model(on_path, ref, X)


def test_exported_from_package():
    assert (mrtrain.MultinomialNB, mrtrain.BernoulliNB, mrtrain.GaussianNB) == (
        MultinomialNB, BernoulliNB, GaussianNB)


@pytest.mark.parametrize("estimator, X, y, match", [
    (MultinomialNB(), [[1.0, -1.0], [2.0, 0.0]], [0, 1], r"Negative values in data passed to MultinomialNB"),
    (MultinomialNB(alpha=0.0), [[1.0], [2.0]], [0, 1], r"The 'alpha' parameter must be a finite float > 0\. "
                                                       r"Got 0\.0 instead\."),
    (BernoulliNB(alpha=-1), [[1.0], [2.0]], [0, 1], r"The 'alpha' parameter must be a finite float > 0"),
    (GaussianNB(var_smoothing="a"), [[1.0], [2.0]], [0, 1], r"The 'var_smoothing' parameter must be a "
                                                            r"finite float > 0\. Got 'a' instead\."),
    (BernoulliNB(), [[1.0], [2.0]], [3, 3], r"BernoulliNB needs samples of at least 2 classes .* only one "
                                            r"class: 3"),
])
def test_bad_input_is_refused(estimator, X, y, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit(X, y)


def test_gaussian_refuses_sparse_input_as_sklearn_does():
    # scikit-learn's convention (and check_estimator's) for estimators without sparse support: TypeError.
    with pytest.raises(TypeError, match=r"Sparse data was passed for X, but dense data is required"):
        GaussianNB().fit(sp.csr_matrix([[1.0], [2.0]]), [0, 1])
