"""Optimizers and the driver loop on in-memory data (no MapReduce): convergence, exactness, resume."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.driver import initial_status, optimize
from engine.models import make_model
from engine.objective import Objective
from engine.optimizers import OPTIMIZERS, make_optimizer
from engine.optimizers.base import state_from_record, state_to_record
from engine.optimizers.lbfgs import two_loop_direction


def ridge_problem(seed=0, n=200, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.3 + 0.1 * rng.normal(size=n)
    return X, y


def in_memory_evaluate(model, objective, X, y):
    def evaluate(points, hessian):
        return objective.evaluations(model.partial_sums(X, y, None, points, hessian=hessian), points)

    return evaluate


def ridge_closed_form(X, y, l2):
    n, d = X.shape
    Xa = np.hstack([X, np.ones((n, 1))])
    penalty = n * l2 * np.diag([1.0] * d + [0.0])
    return np.linalg.solve(Xa.T @ Xa + penalty, Xa.T @ y)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_reaches_ridge_closed_form(name):
    X, y = ridge_problem()
    l2 = 0.1
    model = make_model("linear", X.shape[1])
    objective = Objective(model, l2)
    optimizer = make_optimizer(name)
    status, reason, converged = optimize(
        optimizer,
        in_memory_evaluate(model, objective, X, y),
        initial_status(optimizer, np.zeros(model.n_params)),
        max_iter=2000,
        tol=0.0,
        gtol=1e-10,
    )
    assert converged, reason
    assert_allclose(status.state.x, ridge_closed_form(X, y, l2), rtol=1e-8, atol=1e-10)


def test_newton_takes_one_full_step_on_a_quadratic():
    X, y = ridge_problem(seed=1)
    model = make_model("linear", X.shape[1])
    objective = Objective(model, 0.05)
    optimizer = make_optimizer("newton")
    status, _, converged = optimize(
        optimizer,
        in_memory_evaluate(model, objective, X, y),
        initial_status(optimizer, np.zeros(model.n_params)),
        max_iter=5,
        tol=0.0,
        gtol=1e-10,
    )
    assert converged
    assert status.iteration == 1
    assert status.passes == 2


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_interrupted_run_resumes_bitwise(name):
    X, y = ridge_problem(seed=2)
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    labels = (y > np.median(y)).astype(float)
    objective = Objective(model, 0.01)
    evaluate = in_memory_evaluate(model, objective, X, labels)
    optimizer = make_optimizer(name)
    start = initial_status(optimizer, np.zeros(model.n_params))
    full, _, _ = optimize(optimizer, evaluate, start, max_iter=12, tol=0.0, gtol=0.0)
    half, _, _ = optimize(optimizer, evaluate, start, max_iter=5, tol=0.0, gtol=0.0)
    arrays, scalars = state_to_record(half.state)
    restored = half._replace(state=state_from_record(optimizer.State, arrays, scalars))
    resumed, _, _ = optimize(optimizer, evaluate, restored, max_iter=12, tol=0.0, gtol=0.0)
    assert resumed.iteration == full.iteration > 5
    assert resumed.state.x.tobytes() == full.state.x.tobytes()
    assert resumed.history == full.history


def test_two_loop_with_one_pair_matches_bfgs_formula():
    rng = np.random.default_rng(3)
    g, s, y = rng.normal(size=(3, 4))
    y = y + 2 * s  # make s·y > 0
    rho = 1 / (s @ y)
    gamma = (s @ y) / (y @ y)
    identity = np.eye(4)
    H = (identity - rho * np.outer(s, y)) @ (gamma * identity) @ (identity - rho * np.outer(y, s))
    H += rho * np.outer(s, s)
    assert_allclose(two_loop_direction(g, s[None], y[None]), -H @ g, rtol=1e-12)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match=r"'optimizer' parameter must be one of .*Got 'adam'"):
        make_optimizer("adam")
