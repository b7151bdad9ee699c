"""Losses and models: derivatives, mergeable partial sums, labels, and a Newton fit vs scikit-learn."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression, PoissonRegressor, Ridge
from sklearn.preprocessing import StandardScaler

from mrtrain.engine.losses import LogisticLoss, MultinomialLoss, PoissonLoss, SquaredLoss
from mrtrain.engine.models import GLM_MODELS, PartialSums
from mrtrain.engine.registry import make_model

CLASSES = {"linear": None, "logistic": [-1.0, 2.0], "softmax": [0.0, 1.5, 3.0], "poisson": None,
           "linear-svc": [-1.0, 2.0]}


def make_block(kind, n, d, seed, fit_intercept=True):
    """Model, features (n, d), encoded labels (n,) and weights (n,) with seeded random values."""
    rng = np.random.default_rng(seed)
    model = make_model(kind, d, classes=CLASSES[kind], fit_intercept=fit_intercept)
    X = rng.normal(size=(n, d))
    if kind == "linear":
        y_raw = X @ rng.normal(size=d) + rng.normal(size=n)
    elif kind == "poisson":
        y_raw = rng.poisson(np.exp(0.3 * X @ rng.normal(size=d))).astype(float)
    else:
        y_raw = rng.choice(CLASSES[kind], size=n)
    w = rng.uniform(0.1, 3.0, size=n)
    return model, X, model.encode_labels(y_raw), w


def random_thetas(model, m, seed):
    return 0.5 * np.random.default_rng(seed).normal(size=(m, model.n_params))


def naive_loss_sum(kind, X, y, w, theta, model):
    """Reference: per-row loop with textbook formulas (moderate margins only)."""
    coef = theta.reshape(model.n_outputs, -1)
    total = 0.0
    for x_i, y_i, s_i in zip(X, y, w, strict=True):
        x_aug = np.append(x_i, 1.0) if model.fit_intercept else x_i
        eta = coef @ x_aug
        if kind == "linear":
            value = 0.5 * (y_i - eta[0]) ** 2
        elif kind == "logistic":
            value = np.log(1 + np.exp(eta[0])) - y_i * eta[0]
        elif kind == "poisson":
            value = np.exp(eta[0]) - y_i * eta[0]
        elif kind == "linear-svc":
            value = max(0.0, 1.0 - y_i * eta[0]) ** 2
        else:
            value = -np.log(np.exp(eta[y_i]) / np.exp(eta).sum())
        total += s_i * value
    return total


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_loss_sum_matches_per_row_formula(kind, fit_intercept):
    model, X, y, w = make_block(kind, 40, 3, seed=1, fit_intercept=fit_intercept)
    thetas = random_thetas(model, 3, seed=2)
    sums = model.partial_sums(X, y, w, thetas)
    expected = [naive_loss_sum(kind, X, y, w, theta, model) for theta in thetas]
    assert_allclose(sums.loss, expected, rtol=1e-12)
    assert sums.weight == pytest.approx(w.sum(), rel=1e-14)
    assert sums.hess is None


def central_difference(func, theta, eps=1e-6):
    """Jacobian of func at theta by central differences, stacked on the first axis: (p, ...)."""
    steps = eps * np.eye(theta.size)
    return np.stack([(func(theta + e) - func(theta - e)) / (2 * eps) for e in steps])


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_gradient_and_hessian_match_finite_differences(kind, fit_intercept):
    model, X, y, w = make_block(kind, 60, 4, seed=3, fit_intercept=fit_intercept)
    thetas = random_thetas(model, 3, seed=4)
    sums = model.partial_sums(X, y, w, thetas, hessian=3)
    assert sums.grad.shape == (3, model.n_params)
    assert sums.hess.shape == (3, model.n_params, model.n_params)

    def at(theta):
        return model.partial_sums(X, y, w, theta[None, :])

    for j, theta in enumerate(thetas):
        numeric_grad = central_difference(lambda t: at(t).loss[0], theta)
        numeric_hess = central_difference(lambda t: at(t).grad[0], theta)
        # Central differences with eps=1e-6 are accurate to ~1e-9 relative to the scale.
        assert_allclose(sums.grad[j], numeric_grad, rtol=1e-6, atol=1e-6 * np.abs(numeric_grad).max())
        assert_allclose(sums.hess[j], numeric_hess, rtol=1e-6, atol=1e-6 * np.abs(numeric_hess).max())


@pytest.mark.parametrize("kind", GLM_MODELS)
def test_hessian_is_symmetric_positive_semidefinite(kind):
    model, X, y, w = make_block(kind, 50, 3, seed=5)
    hess = model.partial_sums(X, y, w, random_thetas(model, 2, seed=6), hessian=2).hess
    assert_allclose(hess, hess.transpose(0, 2, 1), rtol=0, atol=1e-12 * np.abs(hess).max())
    assert np.linalg.eigvalsh(hess).min() > -1e-10 * np.abs(hess).max()


@pytest.mark.parametrize("kind", ["linear", "logistic", "poisson"])
def test_single_output_hessian_is_exactly_symmetric_and_matches_the_textbook_sum(kind):
    """``B.T @ B`` with ``B = diag(sqrt(s h)) Xa`` (BLAS syrk) equals ``Xa.T diag(s h) Xa`` to rounding,
    mirrored bit for bit; zero weights are allowed."""
    model, X, y, w = make_block(kind, 300, 6, seed=7)
    w = w.copy()
    w[::5] = 0.0
    theta = random_thetas(model, 1, seed=8)
    (hess,) = model.partial_sums(X, y, w, theta, hessian=1).hess
    assert_array_equal(hess, hess.T)
    eta = X @ theta[0, :-1] + theta[0, -1]
    _, _, h = model.loss.derivatives(y, eta, hessian=True)
    Xa = np.hstack([X, np.ones((len(X), 1))])
    textbook = Xa.T @ (Xa * (w * h)[:, None])
    assert_allclose(hess, textbook, rtol=1e-13, atol=1e-13 * np.abs(textbook).max())


@pytest.mark.parametrize("kind", GLM_MODELS)
def test_float32_features_are_computed_in_float64(kind):
    model, X, y, w = make_block(kind, 30, 3, seed=7)
    X32 = X.astype(np.float32)
    thetas = random_thetas(model, 2, seed=8)
    got = model.partial_sums(X32, y, w, thetas, hessian=2).to_vector()
    expected = model.partial_sums(X32.astype(np.float64), y, w, thetas, hessian=2).to_vector()
    assert_allclose(got, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("hessian", [0, 1, 4])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_partial_sums_of_two_blocks_add_up_to_the_union(kind, hessian):
    model, X, y, w = make_block(kind, 70, 3, seed=9)
    thetas = random_thetas(model, 4, seed=10)
    first = model.partial_sums(X[:25], y[:25], w[:25], thetas, hessian=hessian).to_vector()
    second = model.partial_sums(X[25:], y[25:], w[25:], thetas, hessian=hessian).to_vector()
    union = model.partial_sums(X, y, w, thetas, hessian=hessian)
    merged = PartialSums.from_vector(first + second, 4, model.n_params, hessian)
    assert_allclose(merged.to_vector(), union.to_vector(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hessian", [0, 1, 3])
def test_partial_sums_vector_round_trip(hessian):
    model, X, y, w = make_block("softmax", 20, 2, seed=11)
    sums = model.partial_sums(X, y, w, random_thetas(model, 3, seed=12), hessian=hessian)
    vector = sums.to_vector()
    assert vector.dtype == np.float64
    assert vector.shape == (1 + 3 + 3 * 9 + hessian * 81,)
    back = PartialSums.from_vector(vector, 3, model.n_params, hessian)
    assert back.weight == sums.weight
    assert_array_equal(back.loss, sums.loss)
    assert_array_equal(back.grad, sums.grad)
    if hessian:
        assert back.hess.shape == (hessian, 9, 9)
        assert_array_equal(back.hess, sums.hess)
    else:
        assert back.hess is None


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_hessian_at_the_first_point_only_changes_no_other_sum(kind, fit_intercept):
    # 3 points, as in a Newton pass.
    model, X, y, w = make_block(kind, 80, 4, seed=21, fit_intercept=fit_intercept)
    thetas = random_thetas(model, 3, seed=22)
    none = model.partial_sums(X, y, w, thetas, hessian=0)
    first = model.partial_sums(X, y, w, thetas, hessian=1)
    every = model.partial_sums(X, y, w, thetas, hessian=3)
    p = model.n_params
    assert first.hess.shape == (1, p, p)
    for sums in (first, every):
        assert sums.weight == none.weight
        assert sums.loss.tobytes() == none.loss.tobytes()
        assert sums.grad.tobytes() == none.grad.tobytes()
    assert first.hess[0].tobytes() == every.hess[0].tobytes()
    # The vector is the Hessian-free one with the first Hessian appended.
    expected = np.concatenate([none.to_vector(), every.hess[0].ravel()])
    assert first.to_vector().tobytes() == expected.tobytes()


@pytest.mark.parametrize("hessian", [True, False, -1, 3, 1.0, None])
def test_hessian_must_be_a_point_count(hessian):
    model, X, y, w = make_block("logistic", 10, 2, seed=23)
    with pytest.raises(ValueError, match=r"'hessian' parameter must be an int in \[0, 2\]"):
        model.partial_sums(X, y, w, random_thetas(model, 2, seed=24), hessian=hessian)
    with pytest.raises(ValueError, match=r"'hessian' parameter must be an int in \[0, 2\]"):
        PartialSums.from_vector(np.zeros(1 + 2 + 2 * 3), 2, 3, hessian)


def test_hessian_count_may_be_a_numpy_int():
    model, X, y, w = make_block("poisson", 10, 2, seed=25)
    thetas = random_thetas(model, 2, seed=26)
    got = model.partial_sums(X, y, w, thetas, hessian=np.int64(1))
    assert got.to_vector().tobytes() == model.partial_sums(X, y, w, thetas, hessian=1).to_vector().tobytes()


@pytest.mark.parametrize("hessian", [0, 1, 2])
@pytest.mark.parametrize("kind", GLM_MODELS)
def test_empty_block_gives_zeros(kind, hessian):
    model = make_model(kind, 3, classes=CLASSES[kind])
    y = model.encode_labels(np.zeros(0))
    sums = model.partial_sums(np.zeros((0, 3)), y, None, np.ones((2, model.n_params)), hessian=hessian)
    expected = PartialSums.zeros(2, model.n_params, hessian).to_vector()
    assert_array_equal(sums.to_vector(), expected)
    assert not expected.any()


def test_from_vector_rejects_wrong_length():
    with pytest.raises(ValueError, match=r"m=2, p=3, hessian=0 must be 1-D of length 9\. Got"):
        PartialSums.from_vector(np.zeros(10), 2, 3, 0)
    # A vector with Hessians at both points is not one with a Hessian at the first only.
    with pytest.raises(ValueError, match=r"m=2, p=3, hessian=1 must be 1-D of length 18\. Got"):
        PartialSums.from_vector(np.zeros(9 + 2 * 9), 2, 3, 1)


@pytest.mark.parametrize(
    ("loss", "y", "eta", "value", "grad", "hess"),
    [
        (LogisticLoss(), 1.0, 1000.0, 0.0, 0.0, 0.0),
        (LogisticLoss(), 0.0, 1000.0, 1000.0, 1.0, 0.0),
        (LogisticLoss(), 1.0, -1000.0, 1000.0, -1.0, 0.0),
        (LogisticLoss(), 0.0, -1000.0, 0.0, 0.0, 0.0),
        (SquaredLoss(), 0.0, 1000.0, 5e5, 1000.0, 1.0),
        (SquaredLoss(), 3.0, -1000.0, 0.5 * 1003.0**2, -1003.0, 1.0),
        (PoissonLoss(), 2.0, -1000.0, 2000.0, -2.0, 0.0),
        (PoissonLoss(), 0.0, -1000.0, 0.0, 0.0, 0.0),
    ],
)
def test_scalar_losses_are_stable_at_large_margins(loss, y, eta, value, grad, hess):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [f(np.array([y]), np.array([eta]))[0] for f in (loss.value, loss.gradient, loss.hessian)]
    assert_allclose(got, [value, grad, hess], rtol=1e-15, atol=0)


def test_logistic_loss_tail_is_accurate():
    eta = np.array([-40.0, -20.0, 20.0, 40.0])
    loss = LogisticLoss()
    # log(1 + e^-t) = e^-t (1 - e^-t/2 + ...) and sigmoid(-t) = e^-t (1 - e^-t + ...): rtol 1e-8.
    assert_allclose(loss.value(np.ones(4), eta)[2:], np.exp(-eta[2:]), rtol=1e-8)
    assert_allclose(loss.value(np.zeros(4), eta)[:2], np.exp(eta[:2]), rtol=1e-8)
    assert_allclose(loss.gradient(np.zeros(4), eta)[:2], np.exp(eta[:2]), rtol=1e-8)
    assert_allclose(loss.gradient(np.ones(4), eta)[2:], -np.exp(-eta[2:]), rtol=1e-8)
    assert_allclose(loss.hessian(np.zeros(4), eta), np.exp(-np.abs(eta)), rtol=1e-8)


def test_poisson_loss_overflows_to_inf_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = PoissonLoss().value(np.array([1.0]), np.array([1000.0]))
    assert value[0] == np.inf


@pytest.mark.parametrize(("label", "value"), [(0, 0.0), (1, 1000.0), (2, 2000.0)])
def test_multinomial_loss_is_stable_at_large_margins(label, value):
    loss = MultinomialLoss(3)
    eta = np.array([[1000.0, 0.0, -1000.0]])
    y = np.array([label])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got_value = loss.value(y, eta)
        got_grad = loss.gradient(y, eta)
        probabilities = loss.hessian(y, eta)
    assert_allclose(got_value, [value], rtol=1e-15, atol=0)
    assert_allclose(probabilities, [[1.0, 0.0, 0.0]], rtol=0, atol=1e-300)
    assert_allclose(got_grad, [[1.0, 0.0, 0.0]] - np.eye(3)[[label]], rtol=0, atol=1e-300)


@pytest.mark.parametrize(
    ("kind", "y_raw", "expected"),
    [
        ("linear", [1.5, -2.0], [1.5, -2.0]),
        ("poisson", [0.0, 3.0], [0.0, 3.0]),
        ("logistic", [2.0, -1.0, 2.0], [1.0, 0.0, 1.0]),
        ("softmax", [3.0, 0.0, 1.5, 3.0], [2, 0, 1, 2]),
    ],
)
def test_encode_labels(kind, y_raw, expected):
    encoded = make_model(kind, 2, classes=CLASSES[kind]).encode_labels(y_raw)
    assert_array_equal(encoded, expected)
    assert encoded.dtype == (np.int64 if kind == "softmax" else np.float64)


def test_classes_are_sorted_and_logistic_positive_is_the_larger():
    model = make_model("logistic", 1, classes=[5, 2])
    assert model.classes == [2.0, 5.0]
    assert model.n_classes == 2
    assert_array_equal(model.encode_labels([5.0, 2.0]), [1.0, 0.0])


@pytest.mark.parametrize(
    ("kind", "y_raw", "match"),
    [
        ("logistic", [2.0, 0.5], r"Label 0\.5 is not valid for model 'logistic': .*\[-1\.0, 2\.0\]"),
        ("softmax", [9.0], r"Label 9\.0 .* 'softmax': .*one of the classes \[0\.0, 1\.5, 3\.0\]"),
        ("softmax", [-4.0], r"Label -4\.0 .* 'softmax'"),
        ("poisson", [1.0, -1.0], r"Label -1\.0 is not valid for model 'poisson': .* >= 0"),
        ("linear", [np.nan], r"Label nan is not valid for model 'linear': labels must be finite"),
        ("linear", [[1.0]], r"Labels must be 1-D of shape \(n,\)\. Got shape \(1, 1\)"),
    ],
)
def test_encode_labels_errors(kind, y_raw, match):
    model = make_model(kind, 2, classes=CLASSES[kind])
    with pytest.raises(ValueError, match=match):
        model.encode_labels(y_raw)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "ridge", "n_features": 2}, r"'kind' parameter must be one of .*Got 'ridge'"),
        ({"kind": "linear", "n_features": 0}, r"'n_features' parameter must be an int >= 1\. Got 0"),
        ({"kind": "linear", "n_features": 2.0}, r"'n_features' .* Got 2\.0"),
        ({"kind": "logistic", "n_features": 2, "classes": [0, 1, 2]},
         r"'logistic' needs exactly 2 classes \(for more classes use model 'softmax'\)\. Got 3 classes: "
         r"\[0, 1, 2\]"),
        ({"kind": "logistic", "n_features": 2},
         r"'logistic' needs exactly 2 classes\. Got 0 classes: None"),
        ({"kind": "softmax", "n_features": 2, "classes": [1]},
         r"'softmax' needs at least 2 classes\. Got 1 classes: \[1\]"),
        ({"kind": "softmax", "n_features": 2, "classes": [1, 1, 2]}, r"distinct and finite"),
        ({"kind": "poisson", "n_features": 2, "classes": [0, 1]}, r"'poisson' takes no classes"),
    ],
)
def test_make_model_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_model(**kwargs)


@pytest.mark.parametrize(
    ("X", "y", "w", "thetas", "match"),
    [
        (np.zeros((3, 4)), np.zeros(3), None, np.zeros((1, 3)), r"X must have shape \(n, 2\)"),
        (np.zeros((3, 2)), np.zeros(4), None, np.zeros((1, 3)), r"Labels must have shape \(3,\)"),
        (np.zeros((3, 2)), np.zeros(3), None, np.zeros(3), r"thetas must have shape \(m, 3\)"),
        (np.zeros((3, 2)), np.zeros(3), -np.ones(3), np.zeros((1, 3)), r"Sample weights .* >= 0"),
        (np.zeros((3, 2)), np.zeros(3), np.ones(2), np.zeros((1, 3)), r"shape \(3,\)\. Got shape"),
    ],
)
def test_partial_sums_input_errors(X, y, w, thetas, match):
    with pytest.raises(ValueError, match=match):
        make_model("linear", 2).partial_sums(X, y, w, thetas)


@pytest.mark.parametrize("kind", GLM_MODELS)
def test_predict(kind):
    model, X, _, _ = make_block(kind, 25, 3, seed=13)
    theta = random_thetas(model, 1, seed=14)[0]
    eta = model.decision_function(X, theta)
    out = model.predict(X, theta)
    if kind == "linear":
        assert_allclose(out["prediction"], X @ theta[:3] + theta[3], rtol=1e-12)
    elif kind == "poisson":
        assert_allclose(out["prediction"], np.exp(X @ theta[:3] + theta[3]), rtol=1e-12)
    elif kind == "logistic":
        assert_allclose(out["probability"], 1 / (1 + np.exp(-eta)), rtol=1e-12)
        assert_array_equal(out["prediction"], np.where(eta > 0, 2.0, -1.0))
    elif kind == "linear-svc":
        assert_allclose(out["margin"], X @ theta[:3] + theta[3], rtol=1e-12)
        assert_array_equal(out["prediction"], np.where(eta > 0, 2.0, -1.0))
    else:
        coef = theta.reshape(3, 4)
        assert_allclose(eta, X @ coef[:, :3].T + coef[:, 3], rtol=1e-12)
        assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-12)
        assert_array_equal(out["prediction"], np.array([0.0, 1.5, 3.0])[eta.argmax(axis=1)])


@pytest.mark.parametrize(
    ("kind", "fit_intercept", "expected"),
    [
        ("linear", True, [1, 1, 0]),
        ("poisson", False, [1, 1]),
        ("logistic", True, [1, 1, 0]),
        ("softmax", True, [1, 1, 0, 1, 1, 0, 1, 1, 0]),
        ("softmax", False, [1, 1, 1, 1, 1, 1]),
    ],
)
def test_penalty_mask(kind, fit_intercept, expected):
    model = make_model(kind, 2, classes=CLASSES[kind], fit_intercept=fit_intercept)
    mask = model.penalty_mask()
    assert mask.dtype == np.float64
    assert_array_equal(mask, expected)
    assert model.n_params == len(expected)


def newton_fit(model, X, y, l2, n_iter=30):
    """Minimise mean loss + l2/2 ||w||^2 with undamped Newton steps (minimum-norm solves)."""
    theta = np.zeros(model.n_params)
    mask = model.penalty_mask()
    for _ in range(n_iter):
        sums = model.partial_sums(X, y, None, theta[None, :], hessian=1)
        grad = sums.grad[0] / sums.weight + l2 * mask * theta
        hess = sums.hess[0] / sums.weight + l2 * np.diag(mask)
        theta = theta - np.linalg.lstsq(hess, grad, rcond=None)[0]
    return theta, np.abs(grad).max()


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y.astype(float)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_newton_reproduces_sklearn_logistic_regression(fit_intercept):
    X, y_raw = breast_cancer()
    n, l2 = X.shape[0], 0.01
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0], fit_intercept=fit_intercept)
    theta, grad_norm = newton_fit(model, X, model.encode_labels(y_raw), l2)
    reference = LogisticRegression(
        C=1 / (n * l2), solver="newton-cholesky", tol=1e-12, max_iter=200,
        fit_intercept=fit_intercept,
    ).fit(X, y_raw)
    expected = np.append(reference.coef_[0], reference.intercept_) if fit_intercept else reference.coef_[0]
    assert grad_norm < 1e-12
    assert_allclose(theta, expected, rtol=1e-6, atol=1e-8)


def test_newton_reproduces_sklearn_multinomial_logistic_regression():
    X, y_raw = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    n, l2 = X.shape[0], 0.02
    model = make_model("softmax", 4, classes=[0.0, 1.0, 2.0])
    theta, grad_norm = newton_fit(model, X, model.encode_labels(y_raw.astype(float)), l2)
    reference = LogisticRegression(C=1 / (n * l2), solver="newton-cholesky", tol=1e-12, max_iter=200)
    reference.fit(X, y_raw)
    coef = theta.reshape(3, 5)
    # Intercepts are unpenalised and the softmax is shift-invariant: compare them centred.
    intercept = coef[:, 4] - coef[:, 4].mean()
    assert grad_norm < 1e-12
    assert_allclose(coef[:, :4], reference.coef_, rtol=1e-6, atol=1e-8)
    assert_allclose(intercept, reference.intercept_ - reference.intercept_.mean(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("kind", "l2"), [("linear", 0.1), ("poisson", 0.05)])
def test_newton_reproduces_sklearn_ridge_and_poisson_regression(kind, l2):
    model, X, y, _ = make_block(kind, 300, 5, seed=15)
    theta, grad_norm = newton_fit(model, X, y, l2)
    n = X.shape[0]
    # Ridge minimises ||y - Xw||^2 + alpha ||w||^2, i.e. 2n times ours with alpha = n * l2.
    # PoissonRegressor minimises mean deviance / 2 + alpha/2 ||w||^2 = ours + const, alpha = l2.
    if kind == "linear":
        reference = Ridge(alpha=n * l2, tol=1e-12, solver="cholesky").fit(X, y)
    else:
        reference = PoissonRegressor(alpha=l2, solver="newton-cholesky", tol=1e-12, max_iter=200)
        reference.fit(X, y)
    assert grad_norm < 1e-12
    assert_allclose(theta, np.append(reference.coef_, reference.intercept_), rtol=1e-6, atol=1e-8)
