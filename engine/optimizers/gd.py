"""Gradient descent with a backtracking line search evaluated in one data pass.

Each pass evaluates the current point's neighbours ``x - α g`` for ``α = t·(2, 1, 1/2, 1/4)``; the
lowest objective among those that satisfy the Armijo condition is taken and ``t`` becomes its step, so the
step grows or shrinks by up to a factor 2 per iteration. When no trial point qualifies, ``x`` stays and
``t`` shrinks eightfold.
"""

from typing import NamedTuple

import numpy as np

from mrtrain.engine.optimizers.base import ARMIJO_C1, Plan, Step

STEP_FACTORS = (2.0, 1.0, 0.5, 0.25)


class GradientDescentState(NamedTuple):
    x: np.ndarray
    value: float
    grad: np.ndarray
    step: float
    evaluated: int


class GradientDescent:
    """Steepest descent with a one-pass backtracking line search.

    Parameters
    ----------
    initial_step : float
        The first ``t``. Default: 1.0.
    """

    name = "gd"
    hessian_points = 0
    handles_l1 = False
    affine_invariant = False
    max_params = None
    offers_single_step = False
    State = GradientDescentState

    def __init__(self, initial_step=1.0):
        self.initial_step = initial_step

    def state_floats(self, n_params):
        """float64 values of the state for ``n_params`` parameters: the point and the gradient."""
        return 2 * n_params

    def pass_floats(self, n_params):
        """float64 values of one pass: its trial points and their gradients."""
        return 2 * len(STEP_FACTORS) * n_params

    def init(self, x0):
        x0 = np.asarray(x0, dtype=np.float64)
        return GradientDescentState(x0, float("nan"), np.zeros_like(x0), self.initial_step, 0)

    def start(self, state, evaluation):
        return state._replace(value=evaluation.value, grad=evaluation.grad, evaluated=1)

    def plan(self, state):
        steps = tuple(state.step * factor for factor in STEP_FACTORS)
        return Plan(np.stack([state.x - alpha * state.grad for alpha in steps]), steps)

    def update(self, state, plan, evaluations):
        steps = plan.steps
        slope = -float(state.grad @ state.grad)
        qualifying = []
        if np.isfinite(slope) and slope < 0:
            qualifying = [
                j
                for j, (alpha, ev) in enumerate(zip(steps, evaluations, strict=True))
                if ev.finite and ev.value <= state.value + ARMIJO_C1 * alpha * slope
            ]
        if not qualifying:
            return state._replace(step=state.step / 8.0), Step(False, 0.0)
        best = min(qualifying, key=lambda j: evaluations[j].value)
        new = state._replace(
            x=state.x - steps[best] * state.grad,
            value=evaluations[best].value,
            grad=evaluations[best].grad,
            step=steps[best],
        )
        return new, Step(True, steps[best])
