"""Mergeable metrics against scikit-learn, merging, empty input and errors."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_poisson_deviance,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

from mrtrain.engine.metrics import AUC_BINS, finalize_metrics, metric_partials, metric_vector_length
from mrtrain.engine.models import GLM_MODELS
from mrtrain.engine.registry import make_model

CLASSES = {"linear": None, "logistic": [-1.0, 2.0], "softmax": [0.0, 1.5, 3.0], "poisson": None,
           "linear-svc": [-1.0, 2.0]}


def make_block(kind, n, seed, d=3):
    """Model, features (n, d), raw labels (n,), weights (n,) and parameters (p,), seeded."""
    rng = np.random.default_rng(seed)
    model = make_model(kind, d, classes=CLASSES[kind])
    X = rng.normal(size=(n, d))
    theta = rng.normal(size=model.n_params)
    eta = model.decision_function(X, theta)
    if kind == "linear":
        y_raw = eta + rng.normal(size=n)
    elif kind == "poisson":
        y_raw = rng.poisson(np.exp(eta)).astype(float)
    elif kind == "logistic":
        y_raw = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-eta)), 2.0, -1.0)
    else:
        y_raw = rng.choice(CLASSES[kind], size=n)
    return model, X, y_raw, rng.uniform(0.1, 3.0, size=n), theta


def metrics_of(model, X, y_raw, w, theta):
    return finalize_metrics(model, metric_partials(model, X, model.encode_labels(y_raw), w, theta))


@pytest.mark.parametrize("seed", [0, 1])
def test_logistic_metrics_match_sklearn(seed):
    model, X, y_raw, w, theta = make_block("logistic", 400, seed)
    got = metrics_of(model, X, y_raw, w, theta)
    out = model.predict(X, theta)
    assert got["n"] == pytest.approx(w.sum(), rel=1e-14)
    expected_accuracy = accuracy_score(y_raw, out["prediction"], sample_weight=w)
    assert got["accuracy"] == pytest.approx(expected_accuracy, rel=1e-12)
    expected_log_loss = log_loss(y_raw, out["probability"], sample_weight=w)
    assert got["log_loss"] == pytest.approx(expected_log_loss, rel=1e-10)
    assert got["loss"] == got["log_loss"]
    expected_confusion = confusion_matrix(y_raw, out["prediction"], sample_weight=w)
    assert_allclose(got["confusion_matrix"], expected_confusion, rtol=1e-12)
    exact_auc = roc_auc_score(y_raw, out["probability"], sample_weight=w)
    # Binning error is at most half the weighted share of positive-negative pairs in one bin,
    # of order 1 / AUC_BINS = 6e-5 here (measured 1e-5 and 5e-5 for these seeds).
    assert got["roc_auc"] == pytest.approx(exact_auc, abs=2e-4)


def test_binned_auc_equals_exact_auc_when_scores_sit_on_bin_centres():
    rng = np.random.default_rng(2)
    model = make_model("logistic", 1, classes=[0.0, 1.0], fit_intercept=False)
    # Scores on 40 distinct bin centres, with repeats: ties within a bin are real ties, which
    # roc_auc_score also counts as one half, so the binned AUC is exact.
    probability = (rng.choice(AUC_BINS, size=40, replace=False)[rng.integers(0, 40, size=300)] + 0.5)
    probability /= AUC_BINS
    X = np.log(probability / (1 - probability))[:, None]
    y = (rng.uniform(size=300) < probability).astype(float)
    w = rng.uniform(0.5, 2.0, size=300)
    got = metrics_of(model, X, y, w, np.array([1.0]))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, probability, sample_weight=w), abs=1e-12)


def test_softmax_metrics_match_sklearn():
    model, X, y_raw, w, theta = make_block("softmax", 300, 3)
    got = metrics_of(model, X, y_raw, w, theta)
    out = model.predict(X, theta)
    # scikit-learn reads the class 1.5 as a continuous target: compare on class indices.
    true = model.encode_labels(y_raw)
    predicted = model.encode_labels(out["prediction"])
    expected_accuracy = accuracy_score(true, predicted, sample_weight=w)
    assert got["accuracy"] == pytest.approx(expected_accuracy, rel=1e-12)
    expected_log_loss = log_loss(true, out["probabilities"], sample_weight=w, labels=[0, 1, 2])
    assert got["log_loss"] == pytest.approx(expected_log_loss, rel=1e-10)
    expected_confusion = confusion_matrix(true, predicted, sample_weight=w, labels=[0, 1, 2])
    assert_allclose(got["confusion_matrix"], expected_confusion, rtol=1e-12)
    assert "roc_auc" not in got


def test_linear_metrics_match_sklearn():
    model, X, y, w, theta = make_block("linear", 300, 4)
    got = metrics_of(model, X, y, w, theta)
    prediction = model.predict(X, theta)["prediction"]
    expected_rmse = np.sqrt(mean_squared_error(y, prediction, sample_weight=w))
    assert got["rmse"] == pytest.approx(expected_rmse, rel=1e-12)
    assert got["mae"] == pytest.approx(mean_absolute_error(y, prediction, sample_weight=w), rel=1e-12)
    assert got["r2"] == pytest.approx(r2_score(y, prediction, sample_weight=w), rel=1e-10)
    assert got["loss"] == pytest.approx(got["rmse"] ** 2 / 2, rel=1e-12)


def test_poisson_metrics_match_sklearn():
    model, X, y, w, theta = make_block("poisson", 300, 5)
    got = metrics_of(model, X, y, w, theta)
    mean = model.predict(X, theta)["prediction"]
    assert (y == 0).any()
    assert got["mean_deviance"] == pytest.approx(mean_poisson_deviance(y, mean, sample_weight=w), rel=1e-10)
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, mean, sample_weight=w)), rel=1e-12)


@pytest.mark.parametrize("kind", GLM_MODELS)
def test_metrics_of_merged_blocks_equal_metrics_of_union(kind):
    model, X, y_raw, w, theta = make_block(kind, 200, 6)
    y = model.encode_labels(y_raw)
    first = metric_partials(model, X[:70], y[:70], w[:70], theta)
    second = metric_partials(model, X[70:], y[70:], w[70:], theta)
    union = metric_partials(model, X, y, w, theta)
    assert first.shape == union.shape == (metric_vector_length(model),)
    assert first.dtype == np.float64
    assert_allclose(first + second, union, rtol=1e-12, atol=1e-12)
    merged = finalize_metrics(model, first + second)
    whole = finalize_metrics(model, union)
    assert merged.keys() == whole.keys()
    for key, value in whole.items():
        assert_allclose(merged[key], value, rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("zero_weights", [True, False])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_empty_input_gives_none_for_undefined_metrics(kind, zero_weights):
    model, X, y_raw, w, theta = make_block(kind, 5 if zero_weights else 0, 7)
    got = metrics_of(model, X, y_raw, np.zeros_like(w), theta)
    assert got["n"] == 0.0
    defined = {"n", "confusion_matrix"}
    assert all(value is None for key, value in got.items() if key not in defined)
    assert len(got) > 2
    if "confusion_matrix" in got:
        assert not np.any(got["confusion_matrix"])


def test_r2_is_none_for_constant_labels():
    model = make_model("linear", 1)
    got = metrics_of(model, np.arange(4.0)[:, None], np.full(4, 2.0), None, np.array([1.0, 0.0]))
    assert got["r2"] is None
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((np.arange(4.0) - 2) ** 2)), rel=1e-12)


def test_roc_auc_is_none_with_one_class():
    model = make_model("logistic", 1, classes=[0.0, 1.0])
    got = metrics_of(model, np.arange(4.0)[:, None], np.ones(4), None, np.array([1.0, 0.0]))
    assert got["roc_auc"] is None
    assert got["accuracy"] == pytest.approx(0.75, rel=1e-15)


def test_finalize_rejects_wrong_length():
    model = make_model("linear", 2)
    with pytest.raises(ValueError, match=r"Metric vector for Model\(kind='linear'.* must have shape \(6,\)"):
        finalize_metrics(model, np.zeros(5))


def test_metric_partials_rejects_mismatched_labels():
    model = make_model("linear", 2)
    with pytest.raises(ValueError, match=r"Labels must have shape \(3,\) to match X\. Got \(2,\)"):
        metric_partials(model, np.zeros((3, 2)), np.zeros(2), None, np.zeros(3))
