"""L-BFGS with its line search evaluated in the same data pass.

The direction comes from the classic two-loop recursion over the last ``memory`` pairs
``(s, y) = (x_{k+1} - x_k, g_{k+1} - g_k)``, scaled by ``γ = s·y / y·y`` of the newest pair (the first
direction is the normalised negative gradient). Each pass evaluates ``x + α d`` for ``α = scale·(1, 1/2,
1/4, 1/10)`` (with ``single_step``, the quasi-Newton step ``α = 1`` alone while it keeps being accepted)
and takes the first point that satisfies the Armijo condition, so a well-scaled quasi-Newton step costs
exactly one pass. If none qualifies the point stays and ``scale`` shrinks twentyfold; a pair
with too little curvature (``s·y ≤ 1e-10 ‖s‖‖y‖``) is not stored.
"""

from typing import NamedTuple

import numpy as np

from mrtrain.engine.optimizers.base import Plan, Step, first_armijo

STEP_FACTORS = (1.0, 0.5, 0.25, 0.1)


class LBFGSState(NamedTuple):
    x: np.ndarray
    value: float
    grad: np.ndarray
    s: np.ndarray  # (k, p) newest last
    y: np.ndarray  # (k, p)
    scale: float
    evaluated: int


def two_loop_direction(grad, s, y):
    """``-H grad`` for the L-BFGS inverse-Hessian approximation given by the pairs ``(s, y)``.

    Parameters
    ----------
    grad : ndarray, shape (p,)
    s, y : ndarray, shape (k, p), oldest first

    Returns
    -------
    ndarray, shape (p,)
    """
    if len(s) == 0:
        scale = float(np.max(np.abs(grad), initial=0.0))
        if not 0 < scale < np.inf:
            return -grad
        unit = grad / scale  # the norm of a gradient near the float64 limit would overflow
        return -unit / float(np.linalg.norm(unit))
    q = grad.copy()
    rho = 1.0 / np.einsum("ij,ij->i", s, y)
    alphas = np.empty(len(s))
    for i in range(len(s) - 1, -1, -1):
        alphas[i] = rho[i] * (s[i] @ q)
        q -= alphas[i] * y[i]
    q *= (s[-1] @ y[-1]) / (y[-1] @ y[-1])
    for i in range(len(s)):
        beta = rho[i] * (y[i] @ q)
        q += (alphas[i] - beta) * s[i]
    return -q


class LBFGS:
    """Limited-memory BFGS, one data pass per iteration.

    Parameters
    ----------
    memory : int
        Number of ``(s, y)`` pairs kept. Default: 10.
    single_step : bool
        Evaluate the quasi-Newton step (``α = 1``) alone once curvature pairs exist and the last pass
        accepted a point; the four step sizes come back after a rejection and for the first direction. A
        pass then ships and evaluates one point instead of four; a rejection costs one pass. The trainer
        sets it for linear models and grids (:func:`mrtrain.training.optimizer_fit.optimizer_options`).
        Default: False.
    """

    name = "lbfgs"
    hessian_points = 0
    handles_l1 = False
    affine_invariant = False
    max_params = None
    offers_single_step = True
    State = LBFGSState

    def __init__(self, memory=10, single_step=False):
        if memory < 1:
            raise ValueError(f"The 'memory' parameter of LBFGS must be an int >= 1. Got {memory!r} instead.")
        self.memory = memory
        self.single_step = single_step

    def state_floats(self, n_params):
        """float64 values of the state for ``n_params`` parameters: the point, the gradient and ``memory``
        pairs of history vectors."""
        return (2 + 2 * self.memory) * n_params

    def pass_floats(self, n_params):
        """float64 values of one pass: the direction, the trial points and their gradients."""
        return (1 + 2 * len(STEP_FACTORS)) * n_params

    def init(self, x0):
        x0 = np.asarray(x0, dtype=np.float64)
        empty = np.zeros((0, x0.size))
        return LBFGSState(x0, float("nan"), np.zeros_like(x0), empty, empty.copy(), 1.0, 0)

    def start(self, state, evaluation):
        return state._replace(value=evaluation.value, grad=evaluation.grad, evaluated=1)

    def _direction(self, state):
        direction = two_loop_direction(state.grad, state.s, state.y)
        if not direction @ state.grad < 0:
            direction = two_loop_direction(state.grad, state.s[:0], state.y[:0])
        return direction

    def _steps(self, state):
        if self.single_step and len(state.s) and state.scale == 1.0:
            return (1.0,)
        return tuple(state.scale * factor for factor in STEP_FACTORS)

    def plan(self, state):
        direction = self._direction(state)
        steps = self._steps(state)
        return Plan(np.stack([state.x + alpha * direction for alpha in steps]), steps, direction)

    def update(self, state, plan, evaluations):
        direction, steps = plan.direction, plan.steps
        best = first_armijo(state.value, float(state.grad @ direction), steps, evaluations)
        if best is None:
            return state._replace(scale=state.scale / 20.0), Step(False, 0.0)
        x_new = state.x + steps[best] * direction
        s_new = x_new - state.x
        y_new = evaluations[best].grad - state.grad
        s, y = state.s, state.y
        if s_new @ y_new > 1e-10 * np.linalg.norm(s_new) * np.linalg.norm(y_new):
            s = np.vstack([s, s_new])[-self.memory :]
            y = np.vstack([y, y_new])[-self.memory :]
        new = LBFGSState(x_new, evaluations[best].value, evaluations[best].grad, s, y, 1.0, 1)
        return new, Step(True, steps[best] * float(np.linalg.norm(direction)))
