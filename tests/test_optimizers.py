"""Optimizers and the optimizer loop on in-memory data (no MapReduce): convergence, exactness, resume."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from mrtrain.engine.loop import finish_pass, initial_status, optimize, pass_plan
from mrtrain.engine.objective import Objective
from mrtrain.engine.optimizers import OPTIMIZERS, make_optimizer, newton
from mrtrain.engine.optimizers.base import Evaluation, state_from_record, state_to_record
from mrtrain.engine.optimizers.lbfgs import LBFGS, two_loop_direction
from mrtrain.engine.optimizers.newton import STEP_FACTORS, NewtonState
from mrtrain.engine.optimizers.owlqn import OWLQN
from mrtrain.engine.optimizers.protocol import Optimizer
from mrtrain.engine.registry import make_model
from tests.datasets import poisson_data, reference_data


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
    """The ridge optimum and the objective's Hessian ``Xaᵀ Xa / n + l2·diag(1, …, 1, 0)``."""
    n, d = X.shape
    Xa = np.hstack([X, np.ones((n, 1))])
    hessian = (Xa.T @ Xa) / n + l2 * np.diag([1.0] * d + [0.0])
    return np.linalg.solve(hessian, Xa.T @ y / n), hessian


#: A gradient max-norm every optimizer reaches before the objective stalls in float64 on any CPU: near the
#: optimum a step lowers f by about ‖g‖²/(2 λ_max) ≈ 4e-15 at ‖g‖ = 1e-7, over a hundred times f's rounding
#: (~1e-17 here), so the stop is the gradient rule, whatever kernel BLAS picked.
REACHABLE_GTOL = 1e-7


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_reaches_ridge_closed_form(name):
    """The tolerance follows from the stopping rule and the conditioning, not from one CPU's bits.

    On a quadratic ``x − x* = H⁻¹ g(x)``, so stopping at ``‖g‖∞ <= gtol`` guarantees
    ``‖x − x*‖₂ <= √p · gtol / λ_min(H)``; the closed form's own rounding adds ``κ(H) · ε · ‖x*‖₂``.
    """
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
        gtol=REACHABLE_GTOL,
    )
    assert (reason, converged) == ("gradient norm <= gtol", True)
    optimum, hessian = ridge_closed_form(X, y, l2)
    eigenvalues = np.linalg.eigvalsh(hessian)
    p = model.n_params
    bound = np.sqrt(p) * REACHABLE_GTOL / eigenvalues[0]
    bound += eigenvalues[-1] / eigenvalues[0] * np.finfo(float).eps * np.linalg.norm(optimum)
    assert np.linalg.norm(status.state.x - optimum) <= bound


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


def logistic_evaluate(seed):
    """The model and in-memory evaluate function of a small l2-penalized logistic problem."""
    X, y = ridge_problem(seed=seed)
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    labels = (y > np.median(y)).astype(float)
    return model, in_memory_evaluate(model, Objective(model, 0.01), X, labels)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_implements_the_protocol(name):
    optimizer = make_optimizer(name)
    assert isinstance(optimizer, Optimizer)
    state = optimizer.init(np.zeros(3))
    assert isinstance(state, optimizer.State) and state.evaluated == 0


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_first_pass_evaluates_the_start_point_alone_and_is_no_iteration(name):
    model, evaluate = logistic_evaluate(seed=5)
    optimizer = make_optimizer(name)
    x0 = np.full(model.n_params, 0.1)
    status = initial_status(optimizer, x0)
    plan = pass_plan(optimizer, status.state)
    assert plan.points.tolist() == [x0.tolist()] and plan.steps == (0.0,)
    (evaluation,) = evaluations = evaluate(plan.points, optimizer.hessian_points)
    status, step = finish_pass(optimizer, status, plan, evaluations)
    assert step.accepted and status.state.evaluated == 1
    assert (status.iteration, status.passes, status.rejected) == (0, 1, 0)
    assert status.state.value == evaluation.value and status.history == (evaluation.value,)
    assert status.state.x.tolist() == x0.tolist()


#: Where each optimizer computes its search direction (gradient descent's is ``-grad``: nothing to compute).
DIRECTION_FUNCTIONS = {"lbfgs": (LBFGS, "_direction"), "newton": (newton, "newton_direction"),
                       "owlqn": (OWLQN, "_direction")}


@pytest.mark.parametrize("name", sorted(DIRECTION_FUNCTIONS))
def test_each_pass_computes_the_search_direction_once(monkeypatch, name):
    owner, attribute = DIRECTION_FUNCTIONS[name]
    compute = getattr(owner, attribute)
    calls = []

    def counted(*args):
        calls.append(args)
        return compute(*args)

    monkeypatch.setattr(owner, attribute, counted)
    model, evaluate = logistic_evaluate(seed=6)
    optimizer = make_optimizer(name)
    status, _, _ = optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(model.n_params)),
                            max_iter=6, tol=0.0, gtol=0.0)
    assert status.passes == 7
    assert len(calls) == status.passes - 1  # none on the first pass, which evaluates the start point alone


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


HESSIAN_POINTS = {"gd": 0, "lbfgs": 0, "newton": 1, "owlqn": 0}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_pass_asks_for_hessians_at_the_leading_points_only(name):
    X, y = ridge_problem(seed=4)
    model = make_model("logistic", X.shape[1], classes=[0.0, 1.0])
    labels = (y > np.median(y)).astype(float)
    inner = in_memory_evaluate(model, Objective(model, 0.01), X, labels)
    calls = []

    def evaluate(points, hessian):
        evaluations = inner(points, hessian)
        calls.append((len(points), hessian, [ev.hess is not None for ev in evaluations]))
        return evaluations

    optimizer = make_optimizer(name)
    assert optimizer.hessian_points == HESSIAN_POINTS[name]
    optimize(optimizer, evaluate, initial_status(optimizer, np.zeros(model.n_params)), max_iter=5, tol=0.0,
             gtol=0.0)
    assert len(calls) == 6
    for m, hessian, has_hessian in calls:
        assert hessian == HESSIAN_POINTS[name]
        assert has_hessian == [j < hessian for j in range(m)]


def newton_state(hess):
    return NewtonState(np.zeros(2), 1.0, np.array([1.0, 0.0]), hess, 1.0, 1)


def test_newton_state_takes_the_hessian_of_the_first_trial_point():
    # d = -H⁺ g = (-0.5, 0): slope g·d = -0.5; the Armijo bound at step α is 1 - 0.5e-4 α.
    optimizer = make_optimizer("newton")
    state = newton_state(2.0 * np.eye(2))
    first_hess = np.array([[3.0, 1.0], [1.0, 4.0]])
    plan = optimizer.plan(state)
    np.testing.assert_array_equal(plan.points[:, 0], [-0.5 * f for f in STEP_FACTORS])

    def evaluations(values):
        return [Evaluation(v, np.full(2, j + 1.0), first_hess if j == 0 else None)
                for j, v in enumerate(values)]

    # The full step is taken: its Hessian is exact.
    new, step = optimizer.update(state, plan, evaluations([0.5, 0.4, 0.3]))
    assert step.accepted and new.x.tolist() == [-0.5, 0.0] and new.grad.tolist() == [1.0, 1.0]
    assert new.hess is first_hess
    # A shorter step is taken: the state gets the Hessian further along the same line, not the old one.
    new, step = optimizer.update(state, plan, evaluations([2.0, 0.9, 0.3]))
    assert step.accepted and new.x.tolist() == [-0.25, 0.0] and new.grad.tolist() == [2.0, 2.0]
    assert new.hess is first_hess and new.scale == 1.0
    # Nothing is taken: the state stays, with its own Hessian, and the next steps are shorter.
    new, step = optimizer.update(state, plan, evaluations([2.0, 1.5, 1.0]))
    assert not step.accepted and new.x.tolist() == [0.0, 0.0] and new.scale == 1.0 / 8.0
    assert new.hess is state.hess


def newton_problem(kind):
    """Model, objective, features and labels of a reference problem, and Newton's passes to gtol=1e-10
    from zero when every trial point had a Hessian (before one per pass)."""
    if kind == "logistic":
        X, y = reference_data("breast_cancer")
        model, l2, passes = make_model("logistic", X.shape[1], classes=[0.0, 1.0]), 0.01, 9
    elif kind == "softmax":
        X, y = reference_data("iris")
        model, l2, passes = make_model("softmax", X.shape[1], classes=[0.0, 1.0, 2.0]), 0.01, 9
    else:
        X, y = poisson_data()
        model, l2, passes = make_model("poisson", X.shape[1]), 0.01, 6
    return model, Objective(model, l2), X, model.encode_labels(y), passes


def newton_run(model, objective, X, y, x0):
    """Newton to gtol=1e-10 from x0: the final status and the index of the trial point each step took."""
    optimizer = make_optimizer("newton")
    inner = in_memory_evaluate(model, objective, X, y)
    passes = []

    def evaluate(points, hessian):
        passes.append(points)
        return inner(points, hessian)

    taken = []

    def on_iteration(status):
        if len(passes) > 1:
            match = [j for j, point in enumerate(passes[-1]) if point.tobytes() == status.state.x.tobytes()]
            taken.extend(match)

    status, reason, converged = optimize(optimizer, evaluate, initial_status(optimizer, x0), max_iter=100,
                                         tol=0.0, gtol=1e-10, on_iteration=on_iteration)
    assert converged, reason
    return status, taken


@pytest.mark.parametrize("kind", ["logistic", "softmax", "poisson"])
def test_newton_from_zero_takes_full_steps_in_no_more_passes_than_before(kind):
    model, objective, X, y, passes_before = newton_problem(kind)
    status, taken = newton_run(model, objective, X, y, np.zeros(model.n_params))
    assert set(taken) == {0}
    assert status.passes <= passes_before


def test_newton_converges_when_shorter_steps_are_taken():
    model, objective, X, y, _ = newton_problem("logistic")
    optimum, _ = newton_run(model, objective, X, y, np.zeros(model.n_params))
    far = 10.0 * np.random.default_rng(0).normal(size=model.n_params)
    status, taken = newton_run(model, objective, X, y, far)
    assert any(j > 0 for j in taken)
    assert taken[-1] == 0
    assert_allclose(status.state.x, optimum.state.x, rtol=1e-8, atol=1e-10)
    # With a Hessian at every trial point, this took 16 passes; keeping the last exact Hessian whenever a
    # shorter step is taken, 47.
    assert status.passes <= 16
