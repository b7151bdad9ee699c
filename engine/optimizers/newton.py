"""Damped Newton (IRLS for the GLM losses), for models with few parameters.

Each pass computes value and gradient at ``x + α d`` for ``α = scale·(1, 1/2, 1/4)`` where ``d = -H⁺ g``
at the current point, with ``H⁺`` the pseudo-inverse from a symmetric eigendecomposition. ``H`` is
singular when a direction leaves the objective unchanged — softmax's unpenalized intercepts can all shift
by one constant — and the pseudo-inverse never steps along such a direction, where a Cholesky solve with a
tiny pivot could step arbitrarily far. The first trial point meeting the Armijo condition is taken, so
near the optimum the full step costs one pass and convergence is quadratic.

A pass computes the Hessian (``p x p`` sums per point, its dominant cost for wide data) only at its first
trial point, ``α = scale`` (``hessian_points = 1``; the first pass evaluates the starting point alone, with
its Hessian), and the state always takes that Hessian. When the first trial point is taken — always, near
the optimum — it is the exact Hessian at the new point. When a shorter step is taken, it is the exact
Hessian at a point further along the same line, ``(scale - α)‖d‖`` beyond the new one: positive
semi-definite, so ``d = -H⁺ g`` at the new point is still a descent direction and the Armijo search still
guards the step; and it is never older than one pass. (Keeping the previous point's Hessian instead would
leave it frozen for as long as full steps keep failing, which from far-off starts cost several times the
passes.)

Newton refuses models of more than :data:`MAX_PARAMS` parameters (:func:`check_model_size`): every
pass sums a dense ``p x p`` Hessian per partition and solves an eigenproblem of that size, which at
``p = 4096`` is already 128 MiB per partition through the shuffle. Spark MLlib's IRLS stops at 4096
features for the same reason. Wide (sparse) models train with ``lbfgs``.
"""

from typing import NamedTuple

import numpy as np

from mrtrain.engine.optimizers.base import Plan, Step, first_armijo

STEP_FACTORS = (1.0, 0.5, 0.25)

#: Most parameters Newton accepts: its Hessian is ``MAX_PARAMS**2 * 8`` bytes = 128 MiB per partition.
MAX_PARAMS = 4096


def check_model_size(n_params):
    """Refuse Newton for a model of more than :data:`MAX_PARAMS` parameters.

    Parameters
    ----------
    n_params : int
        Length ``p`` of the model's parameter vector (intercepts included).

    Raises
    ------
    ValueError
        If ``n_params > MAX_PARAMS``; the message names ``lbfgs``.
    """
    if n_params > MAX_PARAMS:
        raise ValueError(
            f"The 'optimizer' parameter must be 'lbfgs' or 'gd' for a model of more than {MAX_PARAMS} "
            f"parameters (Newton sums a dense p x p Hessian every pass; this model has p = {n_params}). "
            "Got 'newton' instead."
        )


class NewtonState(NamedTuple):
    x: np.ndarray
    value: float
    grad: np.ndarray
    hess: np.ndarray
    scale: float
    evaluated: int


def newton_direction(grad, hess):
    """The minimum-norm solution of ``hess @ d = -grad``.

    Eigenvalues below ``p · eps · max eigenvalue`` count as zero.

    Parameters
    ----------
    grad : ndarray, shape (p,)
    hess : ndarray, shape (p, p), symmetric positive semi-definite

    Returns
    -------
    ndarray, shape (p,)
    """
    eigenvalues, vectors = np.linalg.eigh(hess)
    cutoff = len(grad) * np.finfo(np.float64).eps * max(float(eigenvalues[-1]), 0.0)
    inverse = np.divide(1.0, eigenvalues, out=np.zeros_like(eigenvalues), where=eigenvalues > cutoff)
    return -(vectors @ (inverse * (vectors.T @ grad)))


class Newton:
    """Newton's method with a one-pass backtracking line search."""

    name = "newton"
    hessian_points = 1
    handles_l1 = False
    affine_invariant = True
    max_params = MAX_PARAMS
    offers_single_step = False
    check_size = staticmethod(check_model_size)
    State = NewtonState

    def state_floats(self, n_params):
        """float64 values of the state for ``n_params`` parameters: the point, the gradient, the Hessian."""
        return 2 * n_params + n_params**2

    def pass_floats(self, n_params):
        """float64 values of one pass: the direction, the trial points and their gradients, the new Hessian
        and the eigendecomposition solving for the direction (two more ``p x p``)."""
        return (1 + 2 * len(STEP_FACTORS)) * n_params + 3 * n_params**2

    def init(self, x0):
        x0 = np.asarray(x0, dtype=np.float64)
        check_model_size(x0.size)
        return NewtonState(x0, float("nan"), np.zeros_like(x0), np.zeros((x0.size, x0.size)), 1.0, 0)

    def start(self, state, evaluation):
        return state._replace(value=evaluation.value, grad=evaluation.grad, hess=evaluation.hess, evaluated=1)

    def plan(self, state):
        direction = newton_direction(state.grad, state.hess)
        steps = tuple(state.scale * factor for factor in STEP_FACTORS)
        return Plan(np.stack([state.x + alpha * direction for alpha in steps]), steps, direction)

    def update(self, state, plan, evaluations):
        direction, steps = plan.direction, plan.steps
        best = first_armijo(state.value, float(state.grad @ direction), steps, evaluations)
        if best is None or not evaluations[0].finite:
            # The next direction needs the Hessian computed at the first trial point: it must be finite.
            return state._replace(scale=state.scale / 8.0), Step(False, 0.0)
        chosen = evaluations[best]
        new = NewtonState(
            state.x + steps[best] * direction, chosen.value, chosen.grad, evaluations[0].hess, 1.0, 1
        )
        return new, Step(True, steps[best] * float(np.linalg.norm(direction)))
