"""--standardize: the statistics pass, the map between standardized and stored-feature parameters, and
training that equals the same fit on pre-standardized data (numpy, scikit-learn), with Spark MLlib's
standard deviation (the default: unbiased, ``W - Σs²/W`` in the denominator) and glmnet's (population), and
the exact relation between the two models. (Spark's own fit is compared by ``python3 -m
benchmarks.spark_standardize``: Spark is too slow to start for the suite.)

Tolerances: parameters are compared in standardized terms, where the objective is ``l2``-strongly convex,
so ``‖θ - θ*‖² <= 2 (f - f*) / l2``. Both fits stop at a relative objective change of 1e-12 on objectives
of order 0.1..1000, i.e. ``f - f* <~ 1e-12·|f*|`` (times a small factor for a linear rate); with the
``l2`` used here that bounds the parameter distance by ~1e-4 relative to the parameters' size, and the
objectives agree to 1e-6 relative with a wide margin. The chain-rule map is checked against finite
differences with a step of 1e-6 (truncation error ~1e-12·curvature, rounding ~1e-10 relative).
"""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_breast_cancer, load_diabetes

from mrtrain.engine.objective import Objective
from mrtrain.engine.registry import make_model
from mrtrain.engine.standardization import Standardization, feature_sums
from mrtrain.fitted import FittedModel
from mrtrain.trainer import SettingsMismatchError, Trainer
from tests.command import run
from tests.datasets import write

TIGHT = {"max_iter": 2000, "tol": 1e-12, "gtol": 1e-10}


def weighted_stats(X, s, convention="glmnet"):
    """Weighted means and standard deviations: glmnet's population ones, or Spark's unbiased ones with
    reliability weights (``Σs(x - μ)² / (W - Σs²/W)``; ``n - 1`` for unit weights)."""
    mean = np.average(X, axis=0, weights=s)
    variance = np.average((X - mean) ** 2, axis=0, weights=s)
    if convention == "spark":
        variance = variance * s.sum() / (s.sum() - (s @ s) / s.sum())
    return mean, np.sqrt(variance)


def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X, y.astype(float)  # raw units: feature scales from ~1e-3 to ~4e3


def objective_value(kind, X, y, s, coef, intercept, l1, l2):
    """Weighted mean loss + (l2/2)‖w‖² + l1‖w‖₁, the same function for every coefficient vector."""
    eta = X @ coef + intercept
    loss = np.logaddexp(0.0, eta) - y * eta if kind == "logistic" else 0.5 * (y - eta) ** 2
    return np.average(loss, weights=s) + 0.5 * l2 * coef @ coef + l1 * np.abs(coef).sum()


def test_feature_sums_dense_and_sparse():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)) * (rng.random((50, 4)) < 0.4)
    s = rng.random(50)
    expected = np.concatenate([[s.sum()], s @ X, s @ X**2, [s @ s]])
    assert_allclose(feature_sums(X, s), expected, rtol=1e-14)
    assert_allclose(feature_sums(sp.csr_matrix(X), s), expected, rtol=1e-14)
    assert_allclose(feature_sums(X.astype(np.float32), None)[0], 50.0)


@pytest.mark.parametrize("convention", ["spark", "glmnet"])
def test_statistics_are_weighted_means_and_deviations_constant_columns_get_scale_one(convention):
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(3.0, 2.0, 80), np.full(80, 7.25), rng.normal(size=80), np.zeros(80)])
    s = rng.random(80) + 0.5
    mean, std = weighted_stats(X, s, convention)
    scaling = Standardization.from_sums(feature_sums(X, s), 1, True, center=True, convention=convention)
    assert_allclose(scaling.shift, mean, rtol=1e-12)
    assert_allclose(scaling.scale[[0, 2]], std[[0, 2]], rtol=1e-10)
    assert_array_equal(scaling.scale[[1, 3]], [1.0, 1.0])  # constant: scale 1, no division by zero
    assert_array_equal(scaling.constant, [False, True, False, True])
    uncentred = Standardization.from_sums(feature_sums(X, s), 1, True, center=False, convention=convention)
    assert_array_equal(uncentred.shift, np.zeros(4))
    assert_allclose(uncentred.scale, scaling.scale)
    assert not uncentred.constant.any()  # uncentred, a constant column is a real feature
    no_intercept = Standardization.from_sums(feature_sums(X, s), 1, False, center=True)
    assert_array_equal(no_intercept.shift, np.zeros(4))


@pytest.mark.parametrize(("kind", "fit_intercept"),
                         [("logistic", True), ("softmax", True), ("linear", False)])
def test_chain_rule_matches_finite_differences(kind, fit_intercept):
    rng = np.random.default_rng(2)
    X = rng.normal(2.0, 3.0, size=(60, 3))
    y = rng.integers(0, 3 if kind == "softmax" else 2, 60).astype(float)
    classes = None if kind == "linear" else sorted(set(y))
    model = make_model(kind, 3, classes=classes, fit_intercept=fit_intercept)
    scaling = Standardization.from_sums(feature_sums(X, None), model.n_outputs, fit_intercept, center=True)
    labels = model.encode_labels(y)
    theta = rng.normal(size=model.n_params) * 0.3
    assert_allclose(scaling.to_standardized(scaling.to_original(theta)), theta, rtol=1e-12, atol=1e-14)

    def standardized_sums(point):
        sums = model.partial_sums(X, labels, None, scaling.to_original(point)[None, :], hessian=1)
        return scaling.sums_to_standardized(sums)

    def central_difference(function):
        step = 1e-6
        return np.array([(function(theta + step * e) - function(theta - step * e)) / (2 * step)
                         for e in np.eye(model.n_params)])

    mapped = standardized_sums(theta)
    numeric = central_difference(lambda point: standardized_sums(point).loss[0])
    assert_allclose(mapped.grad[0], numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())
    numeric_hess = central_difference(lambda point: standardized_sums(point).grad[0])
    assert_allclose(mapped.hess[0], numeric_hess, rtol=1e-5, atol=1e-5 * np.abs(numeric_hess).max())


@pytest.mark.parametrize(("l1", "l2", "standardize"), [(0.0, 0.01, True), (0.005, 0.005, True),
                                                       (0.005, 0.005, "glmnet")])
def test_logistic_equals_the_fit_on_pre_standardized_data(tmp_path, l1, l2, standardize):
    X, y = cancer()
    mean, std = weighted_stats(X, np.ones(len(y)), "glmnet" if standardize == "glmnet" else "spark")
    Z = (X - mean) / std
    fitted = Trainer("logistic", l1=l1, l2=l2, standardize=standardize, **TIGHT).fit(
        write(tmp_path / "raw", X, y))
    reference = Trainer("logistic", l1=l1, l2=l2, **TIGHT).fit(write(tmp_path / "z", Z, y))
    standardized = fitted.standardization.to_standardized(fitted.theta_)
    assert_allclose(standardized, reference.theta_, rtol=0, atol=1e-4 * np.abs(reference.theta_).max())
    # Same objective by one function: the reference's on Z, ours mapped to Z's coefficients.
    ones = np.ones(len(y))
    ours = objective_value("logistic", Z, y, ones, standardized[:-1], standardized[-1], l1, l2)
    theirs = objective_value("logistic", Z, y, ones, reference.coef_, reference.intercept_, l1, l2)
    assert_allclose(ours, theirs, rtol=1e-9)
    assert_allclose(fitted.objective_, ours, rtol=1e-9)  # the training objective is the standardized one
    assert_array_equal(fitted.coef_ == 0, reference.coef_ == 0)
    # Original units: the same predictions as the standardized model on Z.
    assert_allclose(X @ fitted.coef_ + fitted.intercept_, Z @ standardized[:-1] + standardized[-1],
                    rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("convention", ["spark", "glmnet"])
def test_weighted_elastic_net_equals_sklearn_on_pre_standardized_data(tmp_path, convention):
    from sklearn.linear_model import ElasticNet

    X, y = load_diabetes(return_X_y=True)
    X = X * np.array([1.0, 10.0, 100.0, 0.1, 1.0, 1.0, 1000.0, 1.0, 0.01, 1.0]) + 5.0  # unequal scales
    s = np.random.default_rng(3).random(len(y)) + 0.5
    mean, std = weighted_stats(X, s, convention)
    Z = (X - mean) / std
    # sklearn: (1/(2Σs)) Σ s (y - Zw - b)² + a·r‖w‖₁ + (a(1-r)/2)‖w‖²  ->  l1 = a r, l2 = a (1 - r)
    reference = ElasticNet(alpha=2.0, l1_ratio=0.5, tol=1e-14, max_iter=100_000).fit(Z, y, sample_weight=s)
    fitted = Trainer("linear", l1=1.0, l2=1.0, standardize=convention, **TIGHT).fit(
        write(tmp_path / "d", X, y, s))
    w = fitted.standardization.to_standardized(fitted.theta_)
    ours = objective_value("linear", Z, y, s, w[:-1], w[-1], 1.0, 1.0)
    theirs = objective_value("linear", Z, y, s, reference.coef_, reference.intercept_, 1.0, 1.0)
    assert_allclose(ours, theirs, rtol=1e-6)
    assert_array_equal(w[:-1] == 0, reference.coef_ == 0)
    assert_allclose(fitted.coef_, reference.coef_ / std, rtol=1e-4, atol=1e-6 * np.abs(fitted.coef_).max())


def test_sparse_is_centred_through_the_intercept_and_gives_the_dense_model(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.exponential(size=(300, 6)) * (rng.random((300, 6)) < 0.3) * np.array([1, 10, 100, 1, 0.1, 5])
    y = (X @ np.array([0.5, 0.0, 0.01, -1.0, 3.0, 0.0]) + rng.normal(size=300) > 0.3).astype(float)
    dense = Trainer("logistic", l2=0.01, standardize=True, **TIGHT).fit(write(tmp_path / "dense", X, y))
    sparse = Trainer("logistic", l2=0.01, standardize=True, **TIGHT).fit(
        write(tmp_path / "csr", sp.csr_matrix(X), y))
    # The same statistics, summed in another order (CSR blocks): equal up to rounding.
    assert dense.standardization.shift.any()
    assert_allclose(sparse.standardization.shift, dense.standardization.shift, rtol=1e-12)
    assert_allclose(sparse.standardization.scale, dense.standardization.scale, rtol=1e-12)
    # The penalty is on σ·w in both: same model.
    assert_allclose(sparse.coef_ * sparse.standardization.scale, dense.coef_ * dense.standardization.scale,
                    rtol=0, atol=1e-4)
    assert_allclose(sparse.intercept_, dense.intercept_, atol=1e-4)


def test_constant_column_gets_a_zero_coefficient_and_no_nan(tmp_path):
    X, y = cancer()
    X = np.column_stack([X[:, :5], np.full(len(y), 3.5)])
    fitted = Trainer("logistic", l2=0.01, standardize=True, **TIGHT).fit(write(tmp_path / "c", X, y))
    assert fitted.converged_
    assert np.isfinite(fitted.theta_).all()
    assert fitted.coef_[5] == 0.0
    assert fitted.standardization.scale[5] == 1.0


def test_resume_inspect_and_evaluate_of_a_standardized_run(tmp_path, capsys):
    X, y = cancer()
    data = write(tmp_path / "raw", X, y)
    whole = Trainer("logistic", l2=0.01, standardize=True, max_iter=25, tol=0.0, gtol=0.0).fit(data)
    checkpoints = str(tmp_path / "ckpt")
    Trainer("logistic", l2=0.01, standardize=True, max_iter=6, tol=0.0, gtol=0.0,
            checkpoint_dir=checkpoints).fit(data)
    resumed = Trainer("logistic", l2=0.01, standardize=True, max_iter=25, tol=0.0, gtol=0.0,
                      checkpoint_dir=checkpoints).fit(data)
    assert_array_equal(resumed.theta_, whole.theta_)
    loaded = FittedModel.load(checkpoints)
    assert_array_equal(loaded.theta_, whole.theta_)  # stored-feature parameters, not standardized ones
    assert_allclose(loaded.evaluate(data)["objective"], whole.objective_, rtol=1e-12)
    with pytest.raises(SettingsMismatchError,
                       match="standardize: checkpoint has 'spark', this run has False"):
        Trainer("logistic", l2=0.01, checkpoint_dir=checkpoints).fit(data)
    with pytest.raises(SettingsMismatchError, match="standardize: checkpoint has 'spark', this run has "
                                                    "'glmnet'"):
        Trainer("logistic", l2=0.01, standardize="glmnet", checkpoint_dir=checkpoints).fit(data)
    status, out, _ = run(capsys, "inspect", checkpoints)
    assert status == 0
    assert ("optimizer    lbfgs, l2 0.01, l1 0, standardized features (Spark's n - 1 standard deviation)"
            in out.splitlines())


def test_cli_standardize_json(tmp_path, capsys):
    X, y = cancer()
    data = write(tmp_path / "raw", X, y)
    status, out, _ = run(capsys, "train", data, "--model", "logistic", "--l2", "0.01", "--standardize",
                         "--runner", "inline", "--json")
    assert status == 0
    result = json.loads(out)
    assert result["settings"]["standardize"] == "spark"
    fitted = Trainer("logistic", l2=0.01, standardize=True).fit(data)
    assert result["coefficients"] == fitted.coef_.tolist()
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    theta = fitted.standardization.to_standardized(fitted.theta_)
    sums = model.partial_sums(X, y, None, fitted.theta_[None, :])
    assert_allclose(result["metrics"]["objective"],
                    sums.loss[0] / sums.weight + Objective(model, 0.01).penalty(theta), rtol=1e-12)


def test_local_runner_gives_the_inline_model_bitwise(tmp_path):
    X, y = cancer()
    data = write(tmp_path / "raw", X, y, partitions=2)
    inline = Trainer("logistic", l1=0.01, standardize=True, max_iter=3).fit(data)
    local = Trainer("logistic", l1=0.01, standardize=True, max_iter=3, runner="local").fit(data)
    assert_array_equal(local.standardization.scale, inline.standardization.scale)
    assert_array_equal(local.theta_, inline.theta_)


@pytest.mark.parametrize("weighted", [False, True])
def test_spark_model_is_the_glmnet_model_at_rescaled_penalties(tmp_path, weighted):
    # Spark's variance is glmnet's times c = W / (W - Σs²/W) (n / (n - 1) for unit weights), so its
    # penalties l2‖σ_s w‖²/2 + l1‖σ_s w‖₁ are glmnet's at (l2·c, l1·√c): the same model on the stored
    # features, and standardized coefficients √c times glmnet's.
    X, y = cancer()
    X, y = X[:120], y[:120]  # n = 120: c - 1 = 0.8% (unweighted), large enough to tell the conventions apart
    s = np.random.default_rng(4).integers(1, 4, len(y)).astype(float) if weighted else np.ones(len(y))
    c = s.sum() / (s.sum() - (s @ s) / s.sum())
    data = write(tmp_path / "d", X, y, s if weighted else None)
    spark = Trainer("logistic", l1=0.004, l2=0.01, standardize=True, **TIGHT).fit(data)
    glmnet = Trainer("logistic", l1=0.004 * np.sqrt(c), l2=0.01 * c, standardize="glmnet", **TIGHT).fit(data)
    atol = 1e-4 * np.abs(spark.theta_).max()
    assert_allclose(spark.coef_, glmnet.coef_, rtol=1e-4, atol=atol)
    assert_allclose(spark.objective_, glmnet.objective_, rtol=1e-9)
    assert_allclose(spark.standardization.scale, glmnet.standardization.scale * np.sqrt(c), rtol=1e-12)
    assert_allclose(spark.standardization.to_standardized(spark.theta_)[:-1],
                    np.sqrt(c) * glmnet.standardization.to_standardized(glmnet.theta_)[:-1], rtol=1e-4,
                    atol=atol)
    # Both conventions at the same penalties are different models (the bug was to give glmnet's for both).
    same_penalties = Trainer("logistic", l1=0.004, l2=0.01, standardize="glmnet", **TIGHT).fit(data)
    assert np.abs(same_penalties.coef_ - spark.coef_).max() > 10 * atol


def test_cli_standardize_glmnet_and_a_bad_convention(tmp_path, capsys):
    X, y = cancer()
    data = write(tmp_path / "raw", X[:100], y[:100])
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--l2", "0.01", "--standardize",
                           "glmnet", "--runner", "inline", "--json")
    assert status == 0, err
    assert json.loads(out)["settings"]["standardize"] == "glmnet"
    status, out, err = run(capsys, "train", data, "--model", "logistic", "--standardize", "population",
                           "--runner", "inline")
    assert status == 2 and out == ""
    assert len(err) == 1 and ("argument --standardize: invalid choice: 'population' (choose from 'spark', "
                              "'glmnet')") in err[0]
    with pytest.raises(ValueError, match=r"^The 'standardize' parameter must be a bool or one of \['spark', "
                                         r"'glmnet'\]. Got 'n-1' instead.$"):
        Trainer("logistic", standardize="n-1").fit(data)
