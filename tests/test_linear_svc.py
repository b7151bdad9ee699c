"""linear-svc: the squared hinge linear SVM against scikit-learn's LinearSVC, runners, resume, CLI, errors.

scikit-learn minimises ``(1/2)‖w‖² + C Σᵢ sᵢ max(0, 1 - yᵢ xᵢ·w)²``; mrtrain minimises
``(1/Σsᵢ) Σᵢ sᵢ max(0, 1 - yᵢ η)² + (l2/2)‖w‖²``, which is the former divided by ``C Σsᵢ`` when
``l2 = 1/(C Σsᵢ)`` (``1/(C n)`` for unit weights). liblinear penalizes the intercept, so the parity tests
fit none. Objectives are compared by one function evaluated at both coefficient vectors.
"""

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, confusion_matrix, hinge_loss
from sklearn.svm import LinearSVC

from mrtrain import FittedModel, Trainer
from mrtrain.engine.losses import SquaredHingeLoss
from tests.command import evaluate_json, predict_tables, run
from tests.datasets import reference_data, write


def svm_data(seed=0, n=300, d=6):
    """Two overlapping classes labelled 3 and 7 (any two labels work), seeded."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.where(X @ np.array([2.0, -1.0, 0.0, 0.0, 0.5, 0.0])[:d] + 0.3 + 0.8 * rng.normal(size=n) > 0, 7.0,
                 3.0)
    return X, y


def sklearn_objective(X, y, w, coef, C, penalty="l2"):
    """liblinear's primal: ``penalty(coef) + C Σ sᵢ max(0, 1 - yᵢ xᵢ·coef)²``, labels mapped to -1/+1."""
    signs = np.where(y == y.max(), 1.0, -1.0)
    slack = np.maximum(1.0 - signs * (X @ coef), 0.0)
    regularizer = np.abs(coef).sum() if penalty == "l1" else 0.5 * coef @ coef
    return regularizer + C * (w @ slack**2)


def test_squared_hinge_derivatives_match_finite_differences():
    loss = SquaredHingeLoss()
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    eta = np.array([-0.7, 0.3, 0.4, -2.5, 3.0])  # margins y*eta: -0.7, -0.3, 0.4, 2.5, 3.0
    value, grad, hess = loss.derivatives(y, eta, hessian=True)
    assert_allclose(value, np.maximum(1 - y * eta, 0) ** 2, rtol=1e-15)
    eps = 1e-6
    assert_allclose(grad, (loss.value(y, eta + eps) - loss.value(y, eta - eps)) / (2 * eps), rtol=1e-8)
    # The generalized Hessian: 2 where the margin is below 1, else 0 (away from the kink, exact).
    assert_array_equal(hess, [2.0, 2.0, 2.0, 0.0, 0.0])
    assert_array_equal(loss.hessian(y, eta), hess)


@pytest.mark.parametrize("weighted", [False, True])
def test_objective_matches_sklearn_linear_svc(tmp_path, weighted):
    X, y = reference_data("breast_cancer")
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y)) if weighted else np.ones(len(y))
    C = 0.5
    data = write(tmp_path / "data", X, y, w if weighted else None)
    fitted = Trainer("linear-svc", optimizer="newton", l2=1.0 / (C * w.sum()), fit_intercept=False,
                     tol=0.0, gtol=1e-10).fit(data)
    assert fitted.converged_
    reference = LinearSVC(loss="squared_hinge", penalty="l2", dual=False, C=C, fit_intercept=False,
                          tol=1e-12, max_iter=10000).fit(X, y, sample_weight=w)
    ours = sklearn_objective(X, y, w, fitted.coef_, C)
    theirs = sklearn_objective(X, y, w, reference.coef_[0], C)
    # Both solvers stop with gradients near 1e-10 of a strongly convex objective, so both values are
    # within ~1e-15 relative of the minimum; 1e-6 leaves room for liblinear's looser own stopping rule.
    assert ours == pytest.approx(theirs, rel=1e-6)
    # Our objective is that objective divided by C Σs.
    assert fitted.objective_ == pytest.approx(ours / (C * w.sum()), rel=1e-12)
    assert_array_equal(fitted.predict(X), reference.predict(X))


def test_l1_by_owlqn_is_optimal_and_no_worse_than_liblinear(tmp_path):
    X, y = svm_data()
    n, C = len(y), 0.05
    l1 = 1.0 / (C * n)
    fitted = Trainer("linear-svc", l1=l1, fit_intercept=False, max_iter=300, tol=0.0, gtol=1e-10).fit(
        write(tmp_path / "data", X, y)
    )
    assert fitted.settings["optimizer"] == "owlqn" and fitted.converged_
    coef = fitted.coef_
    assert (coef == 0).sum() >= 2  # the l1 penalty zeroes the irrelevant features 2 and 5
    # Optimality of l1‖w‖₁ + mean loss: the smooth gradient is -l1·sign(w) on the support and within
    # [-l1, l1] off it; gtol 1e-10 on the pseudo-gradient bounds the violation.
    signs = np.where(y == 7.0, 1.0, -1.0)
    grad = X.T @ (-2.0 * signs * np.maximum(1 - signs * (X @ coef), 0)) / n
    support = coef != 0
    assert_allclose(grad[support], -l1 * np.sign(coef[support]), atol=1e-9)
    assert np.all(np.abs(grad[~support]) <= l1 + 1e-9)
    # liblinear's l1 solver may stop short of that optimum (a ConvergenceWarning); ours is no worse.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = LinearSVC(loss="squared_hinge", penalty="l1", dual=False, C=C, fit_intercept=False,
                              tol=1e-12, max_iter=100000, random_state=0).fit(X, y)
    ones = np.ones(n)
    ours = sklearn_objective(X, y, ones, coef, C, "l1")
    assert ours <= sklearn_objective(X, y, ones, reference.coef_[0], C, "l1") * (1 + 1e-12)


def test_lbfgs_and_newton_reach_the_same_model_with_an_intercept(tmp_path):
    X, y = svm_data(seed=2)
    data = write(tmp_path / "data", X, y)
    settings = {"l2": 1e-2, "tol": 0.0, "gtol": 1e-10, "max_iter": 300}
    newton = Trainer("linear-svc", optimizer="newton", **settings).fit(data)
    lbfgs = Trainer("linear-svc", optimizer="lbfgs", **settings).fit(data)
    assert newton.converged_ and lbfgs.converged_
    # Strong convexity l2 = 1e-2 turns a gradient of 1e-10 into a parameter error below 1e-8.
    assert_allclose(lbfgs.theta_, newton.theta_, atol=1e-7)
    assert newton.n_iter_ < 15  # the piecewise quadratic is solved in a few generalized Newton steps
    assert newton.classes_ == [3.0, 7.0]


def test_local_runner_and_resume_give_bitwise_the_same_model(tmp_path):
    X, y = svm_data(seed=3, n=200)
    data = write(tmp_path / "data", X, y, partitions=3)
    settings = {"optimizer": "newton", "l2": 1e-2, "tol": 0.0, "gtol": 1e-12}
    inline = Trainer("linear-svc", max_iter=50, **settings).fit(data)
    checkpoints = str(tmp_path / "ckpt")
    local = {"runner": "local", "checkpoint_dir": checkpoints, **settings}
    stopped = Trainer("linear-svc", max_iter=2, **local).fit(data)
    assert stopped.n_iter_ == 2 and not stopped.converged_
    resumed = Trainer("linear-svc", max_iter=50, **local).fit(data)
    assert resumed.theta_.tobytes() == inline.theta_.tobytes()
    assert resumed.history_ == inline.history_
    assert FittedModel.load(checkpoints).theta_.tobytes() == inline.theta_.tobytes()


def test_sparse_dataset_gives_the_dense_model(tmp_path):
    X, y = svm_data(seed=4)
    X[np.abs(X) < 0.7] = 0.0  # about half the entries
    settings = {"optimizer": "newton", "l2": 1e-2, "tol": 0.0, "gtol": 1e-12}
    dense = Trainer("linear-svc", **settings).fit(write(tmp_path / "dense", X, y))
    sparse = Trainer("linear-svc", **settings).fit(write(tmp_path / "sparse", sp.csr_array(X), y))
    # Same optimum; sparse products add in another order, so the last bits may differ.
    assert_allclose(sparse.theta_, dense.theta_, rtol=1e-9, atol=1e-12)
    assert_array_equal(sparse.predict(sp.csr_array(X)), dense.predict(X))


def test_cli_train_evaluate_predict_inspect(tmp_path, capsys):
    X, y = svm_data(seed=5, n=240)
    w = np.random.default_rng(6).uniform(0.5, 2.0, size=len(y))
    data = write(tmp_path / "data", X, y, w)
    model_dir = str(tmp_path / "model")
    status, out, err = run(capsys, "train", data, "--model", "linear-svc", "--optimizer", "newton", "--l2",
                           "0.01", "--checkpoint-dir", model_dir, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["model"] == "linear-svc" and result["classes"] == [3.0, 7.0]
    fitted = FittedModel.load(model_dir)
    assert_allclose(result["coefficients"], fitted.coef_, rtol=0)
    margin = fitted.decision_function(X)
    assert_allclose(margin, X @ fitted.coef_ + fitted.intercept_, rtol=1e-12)
    predicted = np.where(margin > 0, 7.0, 3.0)
    assert_array_equal(fitted.predict(X), predicted)
    metrics = result["metrics"]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, predicted, sample_weight=w), rel=1e-12)
    assert metrics["hinge_loss"] == pytest.approx(hinge_loss(y, margin, sample_weight=w), rel=1e-12)
    assert_allclose(metrics["confusion_matrix"], confusion_matrix(y, predicted, sample_weight=w), rtol=1e-12)
    squared_hinge = np.maximum(1 - np.where(y == 7, 1, -1) * margin, 0) ** 2
    assert metrics["loss"] == pytest.approx(np.average(squared_hinge, weights=w), rel=1e-12)
    assert "log_loss" not in metrics and "roc_auc" not in metrics

    assert evaluate_json(capsys, data, model_dir) == metrics

    table = predict_tables(capsys, data, model_dir, tmp_path / "predictions")[0]
    assert table.column_names == ["row", "label", "prediction", "margin"]
    rows = table.num_rows
    assert_array_equal(table.column("prediction").to_numpy(), predicted[:rows])
    assert_allclose(table.column("margin").to_numpy(), margin[:rows], rtol=1e-12)

    status, out, err = run(capsys, "inspect", model_dir, "--json")
    assert status == 0, err
    assert json.loads(out)["model"] == "linear-svc"
    with pytest.raises(ValueError, match=r"'linear-svc' gives no probabilities .* use decision_function"):
        fitted.predict_proba(X)


def test_more_than_two_classes_are_refused_naming_softmax(tmp_path, capsys):
    X, y = svm_data(seed=7, n=60)
    y[:10] = 5.0
    data = write(tmp_path / "data", X, y)
    model_dir = tmp_path / "model"
    status, out, err = run(capsys, "train", data, "--model", "linear-svc", "--checkpoint-dir", str(model_dir))
    assert status == 2 and out == ""
    assert err == ["mrtrain: error: Model 'linear-svc' needs exactly 2 classes (for more classes use model "
                   "'softmax'). Got 3 classes: [3.0, 5.0, 7.0]."]
    assert not model_dir.exists()


def test_unknown_model_is_refused_in_one_line(tmp_path, capsys):
    X, y = svm_data(seed=8, n=20)
    status, _, err = run(capsys, "train", write(tmp_path / "data", X, y), "--model", "svm")
    assert status == 2 and len(err) == 1
    assert err[0].startswith("mrtrain: error: argument --model: invalid choice: 'svm' (choose from ")
    assert "'linear-svc'" in err[0] and "'gaussian-nb'" in err[0]
