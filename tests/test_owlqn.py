"""l1 and elastic-net penalties trained by OWL-QN: the pseudo-gradient, closed forms, parity with
scikit-learn's Lasso, ElasticNet and saga LogisticRegression, Spark's --reg/--elastic-net spelling, exact
resume, and the refusals.

Parity tolerance: both sides minimize the same strictly convex objective (n > d, full-rank standardized
features; the l2 part or the data term makes it strictly convex), so both land on the unique minimizer.
mrtrain stops at a relative objective change of 1e-12 or a pseudo-gradient max-norm of 1e-10 and
scikit-learn at tol 1e-12..1e-14, each a few orders below 1e-6; so the objective, computed by one function
on both coefficient vectors, must agree to 1e-6 relative, and the zero pattern must be the same because
every zero coefficient of the reference sits at least ~0.04 (in units of the l1 strength, see
``zero_margin``) inside its optimality interval ``|∂f/∂w_j| <= l1``, far beyond what either solver's
remaining error can cross.
"""

import json
import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from mrtrain.engine.loop import initial_status, optimize
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import make_optimizer
from mrtrain.engine.optimizers.base import Evaluation
from mrtrain.engine.optimizers.lbfgs import LBFGS
from mrtrain.engine.optimizers.owlqn import OWLQN, STEP_FACTORS, line_search_point, pseudo_gradient
from mrtrain.engine.registry import make_model
from mrtrain.estimators import LinearRegression
from mrtrain.trainer import SettingsMismatchError, Trainer
from tests.command import run, tree
from tests.datasets import reference_data, standardized, write

TIGHT = {"max_iter": 2000, "tol": 1e-12, "gtol": 1e-10}


def objective_value(kind, X, y, coef, intercept, l1, l2):
    """The objective both sides are scored with: mean loss + (l2/2)‖w‖² + l1‖w‖₁."""
    eta = X @ coef + intercept
    if kind == "logistic":
        loss = np.mean(np.logaddexp(0.0, eta) - y * eta)
    else:
        loss = 0.5 * np.mean((y - eta) ** 2)
    return loss + 0.5 * l2 * coef @ coef + l1 * np.abs(coef).sum()


def zero_margin(kind, X, y, coef, intercept, l1, l2):
    """``min (l1 - |∂f/∂w_j|) / l1`` over the zero coefficients: how far inside their interval they sit."""
    eta = X @ coef + intercept
    residual = (1.0 / (1.0 + np.exp(-eta)) - y) if kind == "logistic" else eta - y
    grad = X.T @ residual / len(y) + l2 * coef
    zeros = coef == 0
    return float(np.min((l1 - np.abs(grad[zeros])) / l1))


def diabetes(tmp_path):
    X, y = reference_data("diabetes")
    X = standardized(X)
    return X, y, write(tmp_path / "diabetes", X, y, partitions=3)


def test_pseudo_gradient_is_the_minimum_norm_subgradient():
    x = np.array([1.0, -2.0, 0.0, 0.0, 0.0, 0.0])
    grad = np.array([0.5, 0.5, 0.3, -0.3, 2.0, -2.0])
    l1 = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    # Off zero: ∇f ± l1. At zero: 0 while |g| <= l1, else the descending one-sided derivative; l1 = 0: g.
    assert_array_equal(pseudo_gradient(x, grad, l1), [1.5, -0.5, 0.0, 0.0, 1.0, -2.0])


def separable_evaluate(a):
    """Evaluations of ``½‖x - a‖²`` (smooth part only; the caller's Objective-free l1 is OWL-QN's)."""

    def evaluate(points, hessian):
        return [Evaluation(0.5 * float((p - a) @ (p - a)), p - a) for p in points]

    return evaluate


def test_owlqn_reaches_soft_thresholding_with_exact_zeros():
    a = np.array([3.0, -0.5, 0.2, -4.0, 1.0, 0.0])
    lam = 0.75
    optimizer = OWLQN(l1=np.full(a.size, lam))
    inner = separable_evaluate(a)

    def evaluate(points, hessian):  # the l1 term's value is added as the Objective adds it
        return [ev._replace(value=ev.value + lam * float(np.abs(p).sum()))
                for p, ev in zip(points, inner(points, hessian), strict=True)]

    status, reason, converged = optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(a.size)),
                                         max_iter=100, tol=0.0, gtol=1e-12)
    expected = np.sign(a) * np.maximum(np.abs(a) - lam, 0.0)
    assert converged, reason
    assert_allclose(status.state.x, expected, rtol=0, atol=1e-12)
    assert_array_equal(status.state.x == 0, expected == 0)  # exact zeros, not tiny values


@pytest.mark.parametrize(("alpha", "l1_ratio"), [(1.0, 1.0), (5.0, 1.0), (2.0, 0.5)])
def test_linear_matches_sklearn_lasso_and_elastic_net(tmp_path, alpha, l1_ratio):
    # scikit-learn: (1/(2n))‖y - Xw - b‖² + alpha·r‖w‖₁ + (alpha(1-r)/2)‖w‖²; mrtrain's linear loss is
    # ½(y - η)² averaged, so l1 = alpha·r and l2 = alpha·(1 - r) give the same objective (Lasso: r = 1).
    from sklearn.linear_model import ElasticNet, Lasso

    X, y, data = diabetes(tmp_path)
    l1, l2 = alpha * l1_ratio, alpha * (1 - l1_ratio)
    reference = (Lasso(alpha=alpha, tol=1e-14, max_iter=100_000) if l1_ratio == 1
                 else ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=100_000)).fit(X, y)
    fitted = Trainer("linear", l1=l1, l2=l2, **TIGHT).fit(data)
    assert fitted.settings["optimizer"] == "owlqn"
    ours = objective_value("linear", X, y, fitted.coef_, fitted.intercept_, l1, l2)
    theirs = objective_value("linear", X, y, reference.coef_, reference.intercept_, l1, l2)
    assert_allclose(ours, theirs, rtol=1e-6)
    assert_allclose(fitted.objective_, ours, rtol=1e-12)  # the trainer's objective is this one
    assert zero_margin("linear", X, y, reference.coef_, reference.intercept_, l1, l2) > 0.01
    assert (reference.coef_ == 0).any()
    assert_array_equal(fitted.coef_ == 0, reference.coef_ == 0)


@pytest.mark.parametrize(("C", "l1_ratio"), [(0.5, 1.0), (0.1, 0.5)])
def test_logistic_matches_sklearn_saga_elastic_net(tmp_path, C, l1_ratio):
    # scikit-learn: C·Σ logloss + ((1-r)/2)‖w‖² + r‖w‖₁; divided by C·n: l1 = r/(C n), l2 = (1-r)/(C n).
    from sklearn.linear_model import LogisticRegression

    X, y = reference_data("breast_cancer")
    data = write(tmp_path / "bc", X, y, partitions=2)
    n = len(y)
    l1, l2 = l1_ratio / (C * n), (1 - l1_ratio) / (C * n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-12,
                                       max_iter=100_000).fit(X, y)
    fitted = Trainer("logistic", l1=l1, l2=l2, **TIGHT).fit(data)
    coef, intercept = reference.coef_[0], reference.intercept_[0]
    ours = objective_value("logistic", X, y, fitted.coef_, fitted.intercept_, l1, l2)
    theirs = objective_value("logistic", X, y, coef, intercept, l1, l2)
    assert_allclose(ours, theirs, rtol=1e-6)
    assert zero_margin("logistic", X, y, coef, intercept, l1, l2) > 0.01
    assert (coef == 0).sum() >= 5
    assert_array_equal(fitted.coef_ == 0, coef == 0)


def test_owlqn_without_l1_takes_lbfgs_directions_to_the_ridge_optimum(tmp_path):
    # Same state, no l1: the same direction as L-BFGS, so the trial points are L-BFGS's line scaled by
    # OWL-QN's own step factors.
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    y += 3.0 * s  # positive curvature s·y > 0
    x, grad = rng.normal(size=4), rng.normal(size=4)
    lbfgs = LBFGS().init(x)._replace(grad=grad, s=s, y=y, value=1.0, evaluated=1)
    owlqn = OWLQN().init(x)._replace(grad=grad, smooth_grad=grad, s=s, y=y, value=1.0, evaluated=1)
    direction = LBFGS().plan(lbfgs).direction
    assert_array_equal(OWLQN().plan(owlqn).points, [x + a * direction for a in STEP_FACTORS])
    # Ridge's closed form. The run stops when F (about 1518) no longer changes in float64: Armijo cannot
    # tell points apart whose F differ by less than ε·F = 3.4e-13, and F - F* >= (μ/2)‖θ - θ*‖² with μ >=
    # min(l2, 1) = 0.1 (standardized features), so θ is within sqrt(2·3.4e-13 / 0.1) = 2.6e-6 of θ*.
    X, y, data = diabetes(tmp_path)
    Xa = np.hstack([X, np.ones((len(y), 1))])
    hessian = Xa.T @ Xa / len(y) + 0.1 * np.diag([1.0] * X.shape[1] + [0.0])
    optimum = np.linalg.solve(hessian, Xa.T @ y / len(y))
    fitted = Trainer("linear", l2=0.1, optimizer="owlqn", max_iter=200, tol=0.0, gtol=1e-10).fit(data)
    assert fitted.converged_
    assert_allclose(fitted.theta_, optimum, rtol=0, atol=1e-5)


def test_line_search_takes_the_lowest_point_that_satisfies_armijo():
    # v = (1, 0), x = 0, F(x) = 1: the slope towards a point z is v·z = z₀, the Armijo bound 1 + 1e-4 z₀.
    x, v, no_l1 = np.zeros(2), np.array([1.0, 0.0]), np.zeros(2)
    points = np.array([[-4.0, 0.0], [-2.0, 0.0], [-1.0, 0.0], [-0.5, 0.0]])

    def evaluations(*values):
        return [Evaluation(value, np.zeros(2)) for value in values]

    def chosen(values, trial=points):
        return line_search_point(1.0, v, no_l1, x, trial, evaluations(*values))

    # The lowest qualifying value wins, not the first qualifying point.
    assert chosen((0.9, 0.5, 0.7, 0.99)) == 1
    # 0.99965 is the lowest value but misses the bound 1 - 4e-4 of the longest step; 0.99995 misses 1 - 1e-4.
    assert chosen((0.99965, 0.99975, 0.99995, 1.0)) == 1
    # A tie goes to the longer step; a non-finite value never qualifies.
    assert chosen((np.nan, 0.5, 0.5, 0.6)) == 1
    # A point that does not decrease v·(z - x) never qualifies, however low its value.
    assert chosen((0.1, 0.1, 0.1, 0.1), -points) is None
    # No point satisfies Armijo; the gradients (all 0) give the slope φ'(1) = 0 at every point, within
    # [σ φ'(0), (2c₁ - 1) φ'(0)]: the approximate Wolfe conditions hold where F rose by no more than its
    # rounding (1e-10 relative) and the lowest such point is taken; a rise of 1e-9 is a rise.
    assert chosen((1.0 + 1e-12, 1.0, 1.0 + 1e-12, 1.0)) == 1
    assert chosen((1.0 + 1e-9,) * 4) is None


def test_line_search_falls_back_on_approximate_wolfe_where_f_is_flat_to_rounding():
    # F = 1 + ½‖x - a‖² with a = 1e-9·(1, 1), seen from x = 0: the quadratic part (1e-18) is below the
    # rounding of F, which reads 1 at x and one unit (2⁻⁵²) higher at every trial point, so Armijo holds
    # nowhere. The gradients x - a keep their precision. Along z = c·a the slopes are φ'(0) = -c‖a‖² and
    # φ'(1) = (c - 1)·c‖a‖², so φ'(1)/|φ'(0)| = c - 1, which must lie within [-σ, 1 - 2c₁] = [-0.9, 0.9998]:
    # c = 1.5 (0.5) and c = 1 (0) qualify, c = 4 (3) and c = 0.05 (-0.95) do not.
    a = np.full(2, 1e-9)
    x, v, no_l1 = np.zeros(2), -a, np.zeros(2)
    points = np.stack([4.0 * a, 1.5 * a, a, 0.05 * a])
    above = 1.0 + 2.0**-52
    evaluations = [Evaluation(above, point - a) for point in points]
    assert line_search_point(1.0, v, no_l1, x, points, evaluations) == 1  # a tie: the longer step
    evaluations[1] = Evaluation(above + 2.0**-52, evaluations[1].grad)
    assert line_search_point(1.0, v, no_l1, x, points, evaluations) == 2  # now the lowest
    # Inside an orthant the l1 term adds λξ·(z - x) to φ'(1): with λξ = 4e-9 every end slope is positive
    # and at least 3|φ'(0)|, beyond the bound.
    assert line_search_point(1.0, v, np.full(2, 4e-9), x, points, evaluations) is None


def test_pure_l1_on_correlated_features_reaches_the_optimum_in_fewer_passes():
    # breast_cancer, standardized, l1 = 0.001, no l2 (benchmarks.l1_passes' slowest problem). Taking the
    # first Armijo point of α = (1, 1/2, 1/4, 1/10), as L-BFGS does, needs 103 passes to come within 1e-6
    # relative of the optimum; the lowest Armijo point of (4, 2, 1, 1/2, 1/4, 1/10) needs 80. The bound 90
    # fails the former and leaves ten passes for rounding differences between CPUs and BLAS builds,
    # which change the last bits of every pass's sums and so, over 80 ill-conditioned iterations, the path.
    X, y = reference_data("breast_cancer")
    X = standardized(X)
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    objective = Objective(model, 0.0, 0.001)
    labels = model.encode_labels(y)

    def evaluate(points, hessian):
        return objective.evaluations(model.partial_sums(X, labels, None, points), points)

    optimizer = OWLQN(l1=objective.l1_weights)
    passes = []
    status, _, converged = optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(model.n_params)),
                                    max_iter=400, tol=0.0, gtol=1e-9,
                                    callback=lambda progress: passes.append((progress.passes,
                                                                             progress.objective)))
    assert converged
    minimum = status.state.value
    reached = next(n for n, value in passes if value <= minimum + 1e-6 * minimum)
    assert reached <= 90


def test_softmax_l1_zeroes_whole_coefficients_and_never_intercepts(tmp_path):
    X, y = reference_data("iris")
    data = write(tmp_path / "iris", standardized(X), y, partitions=2)
    fitted = Trainer("softmax", l1=0.05, **TIGHT).fit(data)
    assert fitted.converged_
    assert (fitted.coef_ == 0).any()
    assert (fitted.intercept_ != 0).all()
    # Optimality: zero coefficients' smooth gradients lie within [-l1, l1]; nonzero ones balance it.
    model = fitted.model
    objective = Objective(model, 0.0, 0.05)
    sums = model.partial_sums(standardized(X), model.encode_labels(y), np.ones(len(y)),
                              fitted.theta_[None, :])
    grad = objective.evaluations(sums, fitted.theta_[None, :])[0].grad
    assert np.max(np.abs(pseudo_gradient(fitted.theta_, grad, objective.l1_weights))) < 1e-6


def test_interrupted_l1_run_resumes_bitwise(tmp_path):
    _, _, data = diabetes(tmp_path)
    whole = Trainer("linear", l1=1.0, l2=0.5, max_iter=40, tol=0.0, gtol=0.0).fit(data)
    checkpoints = str(tmp_path / "ckpt")
    Trainer("linear", l1=1.0, l2=0.5, max_iter=7, tol=0.0, gtol=0.0, checkpoint_dir=checkpoints).fit(data)
    resumed = Trainer("linear", l1=1.0, l2=0.5, max_iter=40, tol=0.0, gtol=0.0,
                      checkpoint_dir=checkpoints).fit(data)
    assert_array_equal(resumed.theta_, whole.theta_)
    assert resumed.history_ == whole.history_
    with pytest.raises(SettingsMismatchError, match="l1: checkpoint has 1.0, this run has 2.0"):
        Trainer("linear", l1=2.0, l2=0.5, checkpoint_dir=checkpoints).fit(data)


def test_cli_reg_and_elastic_net_is_l1_and_l2(tmp_path, capsys):
    _, _, data = diabetes(tmp_path)
    common = ("train", data, "--model", "linear", "--runner", "inline", "--no-metrics", "--json")
    status, out, _ = run(capsys, *common, "--reg", "4", "--elastic-net", "0.25")
    assert status == 0
    spark = json.loads(out)
    status, out, _ = run(capsys, *common, "--l1", "1", "--l2", "3")
    direct = json.loads(out)
    assert spark["settings"]["optimizer"] == "owlqn"
    assert (spark["settings"]["l1"], spark["settings"]["l2"]) == (1.0, 3.0)
    assert spark["coefficients"] == direct["coefficients"]
    status, out, _ = run(capsys, *common, "--reg", "4")  # alpha defaults to 0: pure l2, L-BFGS
    ridge = json.loads(out)
    assert (ridge["settings"]["l1"], ridge["settings"]["l2"], ridge["settings"]["optimizer"]) == (
        0.0, 4.0, "lbfgs")


def test_inspect_shows_l1(tmp_path, capsys):
    _, _, data = diabetes(tmp_path)
    checkpoints = str(tmp_path / "ckpt")
    assert run(capsys, "train", data, "--model", "linear", "--runner", "inline", "--l1", "2",
               "--no-metrics", "--checkpoint-dir", checkpoints)[0] == 0
    status, out, _ = run(capsys, "inspect", checkpoints)
    assert status == 0
    assert "optimizer    owlqn, l2 0, l1 2, preconditioned" in out.splitlines()


@pytest.mark.parametrize(("argv", "message"), [
    (("--l1", "-0.5"), r"^mrtrain: error: The 'l1' parameter must be a finite float >= 0\. Got -0\.5"),
    (("--reg", "1", "--elastic-net", "1.5"),
     r"^mrtrain: error: The 'elastic_net' parameter must be a finite float in \[0, 1\]\. Got 1\.5"),
    (("--reg", "1", "--elastic-net", "-0.1"), r"The 'elastic_net' parameter must be .* Got -0\.1"),
    (("--elastic-net", "0.5"), r"The 'elastic_net' parameter needs 'reg'.* Got elastic_net=0\.5 without"),
    (("--reg", "1", "--l1", "0.1"),
     r"The 'reg' parameter .* without --l1 and --l2\. Got reg=1\.0 with l1=0\.1 instead\.$"),
    (("--reg", "1", "--l2", "0.1"), r"The 'reg' parameter .* Got reg=1\.0 with l2=0\.1 instead\.$"),
    (("--l1", "0.1", "--optimizer", "newton"),
     r"The 'optimizer' parameter must be 'owlqn' when l1 > 0 .* Got 'newton' instead\.$"),
    (("--l1", "0.1", "--optimizer", "lbfgs"), r"must be 'owlqn' when l1 > 0 .* Got 'lbfgs' instead\.$"),
    (("--reg", "1", "--elastic-net", "0.5", "--optimizer", "gd"), r"must be 'owlqn' .* Got 'gd' instead\.$"),
])
def test_bad_penalties_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, argv, message):
    _, _, data = diabetes(tmp_path)
    before = tree(tmp_path)
    status, out, err = run(capsys, "train", data, "--model", "linear", "--runner", "inline",
                           "--checkpoint-dir", str(tmp_path / "ckpt"), *argv)
    assert (status, out, len(err)) == (2, "", 1), err
    assert err[0].startswith("mrtrain: error: ")
    assert re.search(message, err[0]), err[0]
    assert tree(tmp_path) == before


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs", "newton"])
def test_trainer_refuses_smooth_optimizers_with_l1(optimizer):
    with pytest.raises(ValueError, match=f"must be 'owlqn' when l1 > 0 .* Got '{optimizer}' instead"):
        Trainer("linear", l1=0.1, optimizer=optimizer).fit("unused")
    with pytest.raises(ValueError, match=r"The 'l1' parameter must be a finite float >= 0\. Got -1"):
        Trainer("linear", l1=-1).fit("unused")


def test_make_optimizer_passes_l1_weights():
    optimizer = make_optimizer("owlqn", l1=np.array([0.5, 0.0]))
    assert_array_equal(optimizer.l1, [0.5, 0.0])
    with pytest.raises(ValueError, match=r"The 'l1' parameter of OWLQN must be finite floats >= 0"):
        OWLQN(l1=np.array([0.5, -1.0]))


def test_estimator_l1_matches_lasso(tmp_path):
    from sklearn.linear_model import Lasso

    X, y, _ = diabetes(tmp_path)
    ours = LinearRegression(l1=5.0, tol=1e-12, gtol=1e-10, max_iter=2000).fit(X, y)
    reference = Lasso(alpha=5.0, tol=1e-14, max_iter=100_000).fit(X, y)
    assert_allclose(objective_value("linear", X, y, ours.coef_, ours.intercept_, 5.0, 0.0),
                    objective_value("linear", X, y, reference.coef_, reference.intercept_, 5.0, 0.0),
                    rtol=1e-6)
    assert_array_equal(ours.coef_ == 0, reference.coef_ == 0)
    assert ours.get_params()["l1"] == 5.0


def test_l1_beyond_the_largest_gradient_gives_the_null_model(tmp_path):
    # Closed form: with every coefficient at 0 the intercept's optimum is the weighted mean of y, and 0 is
    # optimal for all coefficients iff l1 >= max_j |∂f/∂w_j| there = max_j |Σ s (ȳ - y) x_j| / Σ s.
    X, y, _ = diabetes(tmp_path)
    s = np.random.default_rng(5).random(len(y)) + 0.5
    data = write(tmp_path / "weighted", X, y, s)
    mean = np.average(y, weights=s)
    gradient = X.T @ (s * (mean - y)) / s.sum()
    l1_max = np.max(np.abs(gradient))
    null = Trainer("linear", l1=l1_max * 1.001, **TIGHT).fit(data)
    assert_array_equal(null.coef_, np.zeros(X.shape[1]))
    # F = ½·mean(y - b)² + const is about 2960 and has curvature 1 in b: float64 cannot tell apart the
    # values of F within |b - ȳ| <= sqrt(2·ε·F) = 1.1e-6 of the optimum, where the run stops (rtol 1e-8
    # of ȳ = 152 is 1.5e-6).
    assert_allclose(null.intercept_, mean, rtol=1e-8)
    below = Trainer("linear", l1=l1_max * 0.99, **TIGHT).fit(data)
    # Just below, exactly the feature with the largest gradient enters.
    assert np.flatnonzero(below.coef_).tolist() == [int(np.argmax(np.abs(gradient)))]
