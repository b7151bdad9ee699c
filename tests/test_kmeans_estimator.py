"""mrtrain.KMeans against scikit-learn's KMeans, on arrays and dataset paths, and scikit-learn's checks.

From the same initial centres both run Lloyd's algorithm with the same assignment rule (nearest centre
by ``‖c‖² − 2x·c``, ties to the lowest index) and the same weighted means, so the centres agree to
rounding: 1e-10 relative leaves room for sums taken in another order (partitions, then rows) over about
a hundred rows of values near 10.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import cluster
from sklearn.datasets import load_iris, load_wine
from sklearn.utils.estimator_checks import parametrize_with_checks

import mrtrain
from mrtrain.estimators import KMeans
from tests.datasets import standardized, write

#: k-means|| with one sampling step keeps each of the ~60 checked fits at a few passes.
CHECKED = [KMeans(init_steps=1)]
#: Checks expected to fail, with the reason (scikit-learn marks the same two for its own KMeans);
#: check_array_api_input skips itself without SCIPY_ARRAY_API. From given centres weights are exact:
#: test_sample_weights_equal_repeated_rows_from_given_centres.
EXPECTED_FAILED_CHECKS = {
    name: ("k-means|| samples each row with its own random draw, so a row of weight 2 and two copies of it "
           "are sampled differently and the initial centres differ")
    for name in ("check_sample_weight_equivalence_on_dense_data",
                 "check_sample_weight_equivalence_on_sparse_data")
}


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def data(name):
    if name == "iris":
        return load_iris(return_X_y=True)[0]
    return standardized(load_wine(return_X_y=True)[0])


@pytest.mark.parametrize("name, weighted", [("iris", False), ("iris", True), ("wine", True)])
def test_lloyd_matches_sklearn_from_the_same_centres(name, weighted):
    X = data(name)
    w = np.random.default_rng(3).uniform(0.2, 3.0, size=len(X)) if weighted else None
    init = X[[0, 1, 2, 3]]  # rows of the data: far from the final centres, so they move for a while
    ours = KMeans(4, init=init, tol=0.0, partitions=3).fit(X, sample_weight=w)
    ref = cluster.KMeans(4, init=init, n_init=1, algorithm="lloyd", tol=0.0).fit(X, sample_weight=w)
    # With tol=0 mrtrain stops at the pass that moves no centre, scikit-learn at the one that changes no
    # label ("strict convergence"): the same final centres, counted one pass apart or not at all.
    assert abs(ours.n_iter_ - ref.n_iter_) <= 1 and ours.n_iter_ > 2
    assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_array_equal(ours.labels_, ref.labels_)
    assert ours.labels_.dtype == np.int32
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)
    assert_array_equal(ours.predict(X[::7]), ref.predict(X[::7]))
    assert_allclose(ours.transform(X[::7]), ref.transform(X[::7]), rtol=1e-10)
    assert ours.score(X, sample_weight=w) == pytest.approx(ref.score(X, sample_weight=w), rel=1e-10)
    assert ours.score(X[::5]) == pytest.approx(ref.score(X[::5]), rel=1e-10)
    assert_array_equal(ours.get_feature_names_out(), ref.get_feature_names_out())


def test_sample_weights_equal_repeated_rows_from_given_centres():
    X = data("iris")
    counts = np.random.default_rng(4).integers(0, 4, size=len(X))
    init = X[[0, 60, 120]]
    weighted = KMeans(3, init=init, tol=0.0).fit(X, sample_weight=counts.astype(float))
    repeated = KMeans(3, init=init, tol=0.0).fit(np.repeat(X, counts, axis=0))
    assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)


def test_kmeans_parallel_is_seeded_and_near_sklearn_best():
    X = data("wine")
    first = KMeans(3, random_state=0).fit(X)
    again = KMeans(3).fit(X)  # random_state=None is seed 0
    assert_array_equal(first.cluster_centers_, again.cluster_centers_)  # bitwise: the same seed
    best = cluster.KMeans(3, n_init=10, random_state=0).fit(X).inertia_
    # k-means|| then Lloyd to tol: within 1% of scikit-learn's best of 10 k-means++ starts (as the
    # Trainer's tests check on these data).
    assert first.inertia_ <= 1.01 * best
    assert first.n_iter_ >= 1 and first.cluster_centers_.shape == (3, X.shape[1])


def test_sparse_input_equals_dense():
    X = data("iris")
    X = np.where(X < 1.0, 0.0, X)
    init = X[[0, 60, 120]]
    dense = KMeans(3, init=init, tol=0.0).fit(X)
    sparse = KMeans(3, init=init, tol=0.0).fit(sp.csr_matrix(X))
    assert_allclose(sparse.cluster_centers_, dense.cluster_centers_, rtol=1e-12)
    assert_array_equal(sparse.labels_, dense.labels_)
    assert_allclose(sparse.transform(sp.csr_matrix(X[:5])), dense.transform(X[:5]), rtol=1e-9)


def test_fit_on_dataset_path_equals_fit_on_arrays(tmp_path):
    X = data("iris")
    uri = write(tmp_path / "iris", X, np.zeros(len(X)), partitions=2)
    init = X[[0, 60, 120]]
    on_path = KMeans(3, init=init).fit(uri)
    in_memory = KMeans(3, init=init).fit(X)
    assert_allclose(on_path.cluster_centers_, in_memory.cluster_centers_, rtol=1e-12)
    # The evaluate pass's inertia, from the same centres.
    assert on_path.inertia_ == pytest.approx(in_memory.inertia_, rel=1e-10)
    assert on_path.n_features_in_ == 4 and not hasattr(on_path, "labels_")
    with pytest.raises(ValueError, match=r"iris: KMeans.fit on a dataset takes its labels and weights from "
                                         r"the dataset; expected sample_weight=None, found ndarray"):
        KMeans(3).fit(uri, sample_weight=np.ones(len(X)))


def test_exported_from_package():
    assert mrtrain.KMeans is KMeans


@pytest.mark.parametrize("estimator, match", [
    (KMeans(init="k-means++"), r"The 'init' parameter of KMeans must be 'k-means\|\|' or an array of shape "
                               r"\(n_clusters, n_features\)\. Got 'k-means\+\+' instead\."),
    (KMeans(2, init=np.zeros((3, 2))), r"The 'init' parameter of KMeans must be 'k-means\|\|' or an array of "
                                       r"shape \(n_clusters, n_features\) = \(2, 2\)\. Got shape \(3, 2\)"),
    (KMeans(5), r"The 'n_clusters' parameter of KMeans must be at most the number of samples, n_samples=4\. "
                r"Got 5 instead\."),
    (KMeans(0), r"The 'n_clusters' parameter must be an int >= 1\. Got 0 instead\."),
    (KMeans(2, random_state=-1), r"The 'random_state' parameter of KMeans must be None, an int >= 0 or a "
                                 r"numpy RandomState\. Got -1 instead\."),
    (KMeans(2, random_state=np.random.default_rng(0)), r"The 'random_state' parameter of KMeans must be "),
    (KMeans(2, tol=-1.0), r"The 'tol' parameter must be a finite float >= 0\. Got -1\.0 instead\."),
])
def test_bad_settings_are_refused(estimator, match):
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match=match):
        estimator.fit(X)
