"""The scikit-learn estimators (mrtrain.LogisticRegression, LinearRegression, PoissonRegressor).

Parity with scikit-learn at matching penalties (and PoissonRegressor.score as its D²), model selection
tools, dataset paths, sparse input, input refusal, temporary data clean-up, scikit-learn's own estimator
checks, and no mrjob notice per pass from Python. LinearSVC, the naive Bayes models and KMeans have their
own files (test_linear_svc_estimator.py, test_naive_bayes_estimators.py, test_kmeans_estimator.py).
"""

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import linear_model
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import mrtrain
from mrtrain.estimators import LinearRegression, LogisticRegression, PoissonRegressor
from tests.datasets import poisson_data, reference_data, write

#: Instances for scikit-learn's checks: Newton converges in few passes, so the ~180 checked fits stay
#: fast; the default parameters pass the same checks (about four times slower).
CHECKED = [
    LogisticRegression(l2=1e-2, optimizer="newton", gtol=1e-10),
    LinearRegression(l2=1e-2, optimizer="newton", gtol=1e-10),
    PoissonRegressor(l2=1e-2, optimizer="newton", gtol=1e-10),
]
#: Checks that are skipped, with the reason: none (pandas-only checks skip themselves without pandas).
EXPECTED_FAILED_CHECKS = {}
TIGHT = {"optimizer": "newton", "tol": 0.0, "gtol": 1e-12}


@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_exported_from_package():
    assert mrtrain.LogisticRegression is LogisticRegression
    assert mrtrain.LinearRegression is LinearRegression
    assert mrtrain.PoissonRegressor is PoissonRegressor


@pytest.mark.parametrize("name", ["breast_cancer", "iris"])
def test_logistic_parity_with_sklearn(name):
    X, y = reference_data(name)
    l2 = 1e-2
    ours = LogisticRegression(l2=l2, partitions=3, **TIGHT).fit(X, y)
    ref = linear_model.LogisticRegression(
        C=1 / (len(y) * l2), solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    assert_array_equal(ours.classes_, ref.classes_)
    # scikit-learn's shapes, also for two classes: coef_ (1, n_features) and intercept_ (1,).
    assert ours.coef_.shape == ref.coef_.shape and ours.intercept_.shape == ref.intercept_.shape
    assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-5)
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.n_iter_ >= 1 and ours.n_features_in_ == X.shape[1]


def test_linear_parity_with_ridge():
    X, y = reference_data("diabetes")
    l2 = 1e-3
    ours = LinearRegression(l2=l2, partitions=2, **TIGHT).fit(X, y)
    ref = linear_model.Ridge(alpha=len(y) * l2, solver="cholesky").fit(X, y)
    assert_allclose(ours.coef_, ref.coef_, rtol=1e-6, atol=1e-6)
    assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-6)
    assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-6)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), rel=1e-9)


def test_poisson_parity_with_sklearn():
    X, y = poisson_data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    l2 = 1e-2
    ours = PoissonRegressor(l2=l2, **TIGHT).fit(X, y, sample_weight=w)
    ref = linear_model.PoissonRegressor(alpha=l2, solver="newton-cholesky", tol=1e-12,
                                        max_iter=1000).fit(X, y, sample_weight=w)
    assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
    assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-6)


def test_grid_search_over_l2():
    X, y = reference_data("breast_cancer")
    X, y = X[:567], y[:567]
    folds = KFold(3)
    grid = {"l2": [1e-3, 1e-1, 10.0]}
    search = GridSearchCV(LogisticRegression(**TIGHT), grid, cv=folds, scoring="neg_log_loss").fit(X, y)
    # The same search over scikit-learn's model at the matching C of each training fold (378 rows).
    ref = GridSearchCV(
        linear_model.LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000),
        {"C": [1 / (378 * l2) for l2 in grid["l2"]]}, cv=folds, scoring="neg_log_loss",
    ).fit(X, y)
    assert_allclose(search.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"], rtol=1e-6)
    assert search.best_params_["l2"] == grid["l2"][ref.best_index_]
    assert isinstance(search.best_estimator_, LogisticRegression)
    assert search.best_estimator_.coef_.shape == (1, X.shape[1])


def test_cross_val_score_matches_ridge():
    X, y = reference_data("diabetes")
    X, y = X[:150], y[:150]
    folds = KFold(3)
    l2 = 1e-2
    ours = cross_val_score(LinearRegression(l2=l2, **TIGHT), X, y, cv=folds)
    ref = cross_val_score(linear_model.Ridge(alpha=100 * l2, solver="cholesky"), X, y, cv=folds)
    assert_allclose(ours, ref, rtol=1e-6)


def test_pipeline_with_standard_scaler():
    X, y = reference_data("iris")
    l2 = 1e-2
    ours = make_pipeline(StandardScaler(), LogisticRegression(l2=l2, **TIGHT)).fit(X, y)
    ref = make_pipeline(StandardScaler(), linear_model.LogisticRegression(
        C=1 / (len(y) * l2), tol=1e-12, max_iter=10_000)).fit(X, y)
    assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert ours.score(X, y) == ref.score(X, y)


@pytest.mark.parametrize("as_path", [str, Path])
def test_fit_on_dataset_path(tmp_path, as_path):
    X, y = reference_data("iris")
    uri = write(tmp_path / "iris", X, y, partitions=3)
    on_path = LogisticRegression(l2=1e-2, **TIGHT).fit(as_path(uri))
    in_memory = LogisticRegression(l2=1e-2, **TIGHT).fit(X, y)
    assert_array_equal(on_path.classes_, [0.0, 1.0, 2.0])
    assert on_path.n_features_in_ == 4
    assert_allclose(on_path.coef_, in_memory.coef_, atol=1e-9)
    assert_array_equal(on_path.predict(X), in_memory.predict(X).astype(float))


def test_fit_on_dataset_path_refuses_y(tmp_path):
    X, y = poisson_data()
    uri = write(tmp_path / "counts", X, y)
    with pytest.raises(ValueError, match=r"counts: .*expected y=None, found ndarray"):
        PoissonRegressor().fit(uri, y)


def test_sparse_input_matches_dense():
    X, y = reference_data("iris")
    X = np.where(np.abs(X - X.mean(axis=0)) < 0.5, 0.0, X)
    dense = LogisticRegression(l2=1e-2, **TIGHT).fit(X, y)
    sparse = LogisticRegression(l2=1e-2, **TIGHT).fit(sp.csr_matrix(X), y)
    assert_allclose(sparse.coef_, dense.coef_, atol=1e-9)
    assert_allclose(sparse.predict_proba(sp.csc_array(X)), dense.predict_proba(X), atol=1e-9)


def test_string_labels_round_trip():
    X, y = reference_data("breast_cancer")
    labels = np.where(y == 1, "benign", "malignant")
    model = LogisticRegression(l2=1e-2, optimizer="newton").fit(X, labels)
    assert_array_equal(model.classes_, ["benign", "malignant"])
    assert set(model.predict(X)) == {"benign", "malignant"}
    assert model.score(X, labels) > 0.95


@pytest.mark.parametrize("estimator, X, y, sample_weight, match", [
    (LinearRegression(), [[1.0], [np.nan]], [1.0, 2.0], None, "Input X contains NaN"),
    (LinearRegression(), [[1.0], [np.inf]], [1.0, 2.0], None, "Input X contains infinity"),
    (LinearRegression(), [[1.0], [2.0]], [1.0, np.nan], None, "Input y contains NaN"),
    (PoissonRegressor(), [[1.0], [2.0]], [1.0, -2.0], None, r"targets y >= 0. Got y\[1\] = -2.0"),
    (LogisticRegression(), [[1.0], [2.0]], [1, 1], None, "only one class: 1"),
    (LogisticRegression(), [[1.0], [2.0]], [0, 1], [1.0, 0.0], "only one class: 0"),
    (LinearRegression(), [[1.0], [2.0]], [1.0, 2.0], [0.0, 0.0], "at least one non-zero number"),
    (LinearRegression(), [[1.0], [2.0]], [1.0, 2.0], [1.0, -1.0], "Negative values in data"),
    (LinearRegression(partitions=0), [[1.0]], [1.0], None, "'partitions' parameter must be an int >= 1"),
    (LinearRegression(fit_intercept="yes"), [[1.0]], [1.0], None, "'fit_intercept' parameter of Linear"),
    (LinearRegression(l2=-1), [[1.0]], [1.0], None, "'l2' parameter must be a finite float >= 0"),
])
def test_bad_input_is_refused(estimator, X, y, sample_weight, match):
    with pytest.raises(ValueError, match=match):
        estimator.fit(X, y, sample_weight=sample_weight)


def test_predict_checks_feature_count():
    X, y = poisson_data()
    model = PoissonRegressor(optimizer="newton").fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but PoissonRegressor is expecting 4"):
        model.predict(X[:, :3])


def test_partitions_above_rows_and_one_row():
    model = LinearRegression(partitions=8, **TIGHT).fit([[1.0, 2.0]], [3.0])
    assert_allclose(model.predict([[1.0, 2.0]]), [3.0])


def test_temporary_dataset_removed_after_fit_and_on_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    X, y = poisson_data(n=40)
    PoissonRegressor(optimizer="newton").fit(X, y)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="'optimizer' parameter must be one of"):
        PoissonRegressor(optimizer="sgd").fit(X, y)
    assert list(tmp_path.iterdir()) == []


def test_non_convergence_warns():
    X, y = reference_data("breast_cancer")
    with pytest.warns(ConvergenceWarning, match="stopped before converging .* raise max_iter"):
        LogisticRegression(max_iter=2).fit(X, y)


def test_default_runner_is_inline_and_gives_the_local_runners_bits():
    # The estimators default to the inline runner (the CLI to local): arrays in memory fit in one process,
    # and the inline runner's passes skip the local runner's task processes; the model is the same bits.
    X, y = reference_data("breast_cancer")
    assert LogisticRegression().runner == "inline" and mrtrain.MLPClassifier().runner == "inline"
    inline = LogisticRegression(l2=1e-2, optimizer="newton", partitions=2).fit(X, y)
    local = LogisticRegression(l2=1e-2, optimizer="newton", partitions=2, runner="local").fit(X, y)
    assert_array_equal(local.coef_, inline.coef_)
    assert_array_equal(local.intercept_, inline.intercept_)


def test_checkpoint_dir_is_passed_to_trainer(tmp_path):
    X, y = poisson_data(n=60)
    model = PoissonRegressor(optimizer="newton", checkpoint_dir=str(tmp_path / "ckpt")).fit(X, y)
    loaded = mrtrain.FittedModel.load(str(tmp_path / "ckpt"))
    assert_allclose(loaded.coef_, model.coef_)


def test_import_mrtrain_without_sklearn():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import mrtrain; mrtrain.Trainer; mrtrain.ingest\n"
        "try:\n"
        "    mrtrain.LogisticRegression\n"
        "except ImportError as error:\n"
        "    print('ImportError', error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ImportError")


def test_dataframe_sets_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = poisson_data(n=60)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = PoissonRegressor(optimizer="newton").fit(frame, y)
    assert_array_equal(model.feature_names_in_, ["a", "b", "c", "d"])
    assert_allclose(model.predict(frame), model.predict(X))


def test_poisson_score_is_sklearns_d2():
    X, y = poisson_data()
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=len(y))
    ours = PoissonRegressor(l2=1e-2, **TIGHT).fit(X, y)
    ref = linear_model.PoissonRegressor(alpha=1e-2).fit(X, y)
    ref.coef_, ref.intercept_ = ours.coef_, ours.intercept_  # scikit-learn's score of our model
    for weights in (None, w):
        assert ours.score(X, y, sample_weight=weights) == pytest.approx(
            ref.score(X, y, sample_weight=weights), rel=1e-12)
    # D² is not R² on these counts: a score that stayed R² fails the comparison above.
    assert abs(ours.score(X, y) - r2_score(y, ours.predict(X))) > 1e-3


def test_no_mrjob_config_notice_from_python(tmp_path):
    # mrjob warns "No configs specified for inline runner" once per job when no config file applies;
    # mrtrain demotes it to DEBUG, so Python's last-resort handler prints nothing per pass.
    code = (
        "import numpy as np, mrtrain\n"
        "X = np.arange(20.0).reshape(10, 2); y = X @ [1.0, 2.0]\n"
        "mrtrain.LinearRegression(optimizer='newton').fit(X, y)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}  # no ~/.mrjob.conf
    env.pop("MRJOB_CONF", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert "No configs specified" not in result.stderr
    assert result.stderr == ""


def test_mrjob_config_notice_is_debug_and_other_records_pass(caplog):
    import mrtrain.launcher  # noqa: F401  (installs the filter)

    caplog.set_level(logging.DEBUG, logger="mrjob.conf")
    logger = logging.getLogger("mrjob.conf")
    logger.warning("No configs specified for inline runner")
    logger.warning("Unexpected option foo (from conf)")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "No configs specified for inline runner"),
        (logging.WARNING, "Unexpected option foo (from conf)"),
    ]
