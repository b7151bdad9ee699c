"""OWL-QN (Andrew & Gao 2007): L-BFGS for objectives with an l1 term, one data pass per iteration.

The objective is ``F(x) = f(x) + Σᵢ λᵢ|xᵢ|`` with ``f`` smooth (the mean loss and the l2 term, what a data
pass computes) and ``λ`` the per-parameter l1 strengths (0 for intercepts). Spark MLlib uses the same
method through Breeze's ``OWLQN``. Each iteration:

1. The *pseudo-gradient* ``v`` of ``F`` at ``x`` (:func:`pseudo_gradient`): ``∇f + λ·sign(x)`` where
   ``xᵢ ≠ 0``; where ``xᵢ = 0`` the one-sided derivative that descends (``∂f/∂xᵢ ± λᵢ``), or 0 when neither
   does. ``-v`` is the steepest-descent direction of ``F`` and ``v`` its minimum-norm subgradient, so
   ``max|vᵢ|`` is the stationarity measure the driver's ``gtol`` test reads (the state's ``grad`` field is
   ``v``): it is 0 exactly at the minimum of a convex ``F``, where ``∇f`` itself is not.
2. The direction ``d`` is the L-BFGS two-loop recursion applied to ``v`` (pairs ``s = x_{k+1} - x_k``,
   ``y = ∇f(x_{k+1}) - ∇f(x_k)``: curvature of the smooth part only), with every component at ``xᵢ = 0``
   whose sign disagrees with ``-v`` set to 0 (projection would undo it anyway); if ``v·d`` is then not
   negative, ``d`` is the normalised ``-v``. Two departures from the paper, both measured to save passes
   on correlated features and neither needed for exactness:

   - the paper (and Breeze) also zero the components of coordinates ``xᵢ ≠ 0`` that disagree with
     ``-v``; but ``F`` is smooth around such a coordinate, a quasi-Newton step rightly moves some of them
     against their own gradient, and cutting those components out makes the rest of the step overshoot.
     They are kept, as L-BFGS keeps them; ``v·d < 0`` still makes every short enough step a descent;
   - the pairs enter the recursion restricted to the free coordinates (``xᵢ ≠ 0``, ``vᵢ ≠ 0`` or
     ``λᵢ = 0``; pairs left with too little curvature are skipped): a coordinate held at 0 does not move,
     and its share of ``y`` would only shrink the ``s·y / y·y`` scaling, so that the full step would fall
     short.
3. The orthant ``ξ = sign(x)``, or ``sign(-v)`` where ``xᵢ = 0``. Trial points ``π(x + α d)`` for
   ``α = scale·(4, 2, 1, 1/2, 1/4, 1/10)`` (:data:`STEP_FACTORS`), all evaluated in the same pass, where
   the projection ``π`` sets every coordinate that left its orthant to exactly 0.0: this is how
   coefficients become exact zeros and stay there while the l1 term outweighs their gradient.
   Coordinates with ``λᵢ = 0`` (intercepts) are smooth everywhere: neither the sign rule nor the
   projection applies to them.
4. Of the trial points ``z`` with ``F(z) <= F(x) + c₁ v·(z - x)`` (Armijo along the projected path) the
   one with the lowest ``F`` is taken (the longer step on a tie). Where none does because ``F``'s
   differences are down to rounding, Hager & Zhang's approximate Wolfe conditions, read from the
   gradients, stand in (:func:`line_search_point`). If no point qualifies the point stays and ``scale``
   shrinks twentyfold, as in :mod:`mrtrain.engine.optimizers.lbfgs`. The steps longer than the
   quasi-Newton one and the choice of the lowest point rather than the first acceptable one are where
   this line search departs from L-BFGS's: with an l1 term the quasi-Newton model, built from the
   curvature of ``f`` alone over a changing set of free coordinates, often falls short where the l1
   slope pulls coefficients towards 0. A pass then sums the loss and gradient at six points instead
   of four, over rows it reads once either way (``python3 -m benchmarks.l1_passes`` measures the passes
   saved).

With ``λ = 0`` the directions are L-BFGS's (:class:`mrtrain.engine.optimizers.lbfgs.LBFGS`), and the line
search is the one above. The state holds the point, ``F``, ``v``, ``∇f`` and the pairs, so a resumed run
continues bit for bit.
"""

from typing import NamedTuple

import numpy as np

from mrtrain.engine.optimizers.base import ARMIJO_C1, Plan, Step
from mrtrain.engine.optimizers.lbfgs import two_loop_direction

#: Trial step sizes of a pass, in units of ``scale`` (1 is the quasi-Newton step), longest first.
STEP_FACTORS = (4.0, 2.0, 1.0, 0.5, 0.25, 0.1)
#: Relative rise of ``F`` within its rounding error: a sum of ``n`` float64 terms can be off by ``n·2⁻⁵³``
#: relative, 1e-10 for a million rows.
ROUNDING_RTOL = 1e-10
#: Curvature constant of the approximate Wolfe conditions (Hager & Zhang's σ).
CURVATURE_SIGMA = 0.9


class OWLQNState(NamedTuple):
    x: np.ndarray
    value: float  # F(x), l1 term included
    grad: np.ndarray  # pseudo-gradient of F at x
    smooth_grad: np.ndarray  # ∇f(x)
    s: np.ndarray  # (k, p) newest last
    y: np.ndarray  # (k, p)
    scale: float
    evaluated: int


def pseudo_gradient(x, smooth_grad, l1):
    """The minimum-norm subgradient of ``f(x) + Σ l1ᵢ|xᵢ|``.

    Parameters
    ----------
    x : ndarray, shape (p,)
    smooth_grad : ndarray, shape (p,)
        ``∇f(x)``.
    l1 : ndarray, shape (p,) or float
        l1 strengths, >= 0.

    Returns
    -------
    ndarray, shape (p,)
    """
    right = smooth_grad + l1  # derivative of F moving xᵢ up from 0
    left = smooth_grad - l1  # derivative of F moving xᵢ down from 0
    at_zero = np.where(right < 0, right, np.where(left > 0, left, 0.0))
    return np.where(x > 0, right, np.where(x < 0, left, at_zero))


def project(points, orthant):
    """``points`` (shape (m, p) or (p,)) with every coordinate whose sign is not ``orthant``'s set to 0.0.

    A coordinate whose orthant is NaN (not penalized) is left as it is.
    """
    return np.where((np.sign(points) == orthant) | np.isnan(orthant), points, 0.0)


def line_search_point(value, pseudo_grad, l1_slope, x, points, evaluations):
    """Index of the trial point a pass moves to, or None.

    The point with the lowest objective among those that satisfy the Armijo condition along the projected
    path, ``F(z) <= F(x) + c₁ v·(z - x)``, the longer step on a tie. Only finite evaluations whose
    slope ``φ'(0) = v·(z - x)`` at ``x`` towards ``z`` is finite and negative qualify.

    Where no point does, because the differences of ``F`` are down to its rounding error (near the
    optimum, ``F`` cannot tell apart the points of a step that still reduces the gradient), the
    approximate Wolfe conditions of Hager & Zhang (2005) stand in for Armijo's: ``F(z) <= F(x) + ε|F(x)|``
    with ``ε =`` :data:`ROUNDING_RTOL`, and ``σ φ'(0) <= φ'(1) <= (2 c₁ - 1) φ'(0)`` for the slope
    ``φ'(1) = (∇f(z) + l1_slope)·(z - x)`` at ``z`` (σ = :data:`CURVATURE_SIGMA`). On a quadratic the
    upper bound is exactly Armijo's condition, read from the gradients, which keep their precision where
    ``F``'s differences do not; the lower bound makes the new pair's curvature ``s·y`` positive. The
    lowest such point is taken.

    Parameters
    ----------
    value : float
        ``F(x)``.
    pseudo_grad : ndarray, shape (p,)
        ``v``, the pseudo-gradient at ``x``.
    l1_slope : ndarray, shape (p,)
        Gradient of the l1 term inside the trial points' orthant: ``λᵢ ξᵢ`` (0 where ``λᵢ = 0``).
    x : ndarray, shape (p,)
    points : ndarray, shape (m, p)
    evaluations : sequence of Evaluation, length m
        ``grad`` is ``∇f``, the smooth part's gradient.

    Returns
    -------
    int or None
        None when no point qualifies.
    """
    armijo, wolfe = None, None
    for j, (point, evaluation) in enumerate(zip(points, evaluations, strict=True)):
        step = point - x
        slope = float(pseudo_grad @ step)
        if not (evaluation.finite and np.isfinite(slope) and slope < 0):
            continue
        if evaluation.value <= value + ARMIJO_C1 * slope:
            if armijo is None or evaluation.value < evaluations[armijo].value:
                armijo = j
        elif evaluation.value <= value + ROUNDING_RTOL * abs(value):
            end_slope = float((evaluation.grad + l1_slope) @ step)
            if (CURVATURE_SIGMA * slope <= end_slope <= (2 * ARMIJO_C1 - 1) * slope
                    and (wolfe is None or evaluation.value < evaluations[wolfe].value)):
                wolfe = j
    return armijo if armijo is not None else wolfe


class OWLQN:
    """Orthant-wise limited-memory quasi-Newton, one data pass per iteration.

    Parameters
    ----------
    l1 : float or ndarray of shape (p,)
        l1 strength of every parameter (0 for intercepts: see
        :attr:`mrtrain.engine.objective.Objective.l1_weights`). Default: 0, which makes it L-BFGS.
    memory : int
        Number of ``(s, y)`` pairs kept. Default: 10.
    """

    name = "owlqn"
    hessian_points = 0
    handles_l1 = True
    affine_invariant = False
    max_params = None
    offers_single_step = False
    State = OWLQNState

    def __init__(self, l1=0.0, memory=10):
        if memory < 1:
            raise ValueError(f"The 'memory' parameter of OWLQN must be an int >= 1. Got {memory!r} instead.")
        l1 = np.asarray(l1, dtype=np.float64)
        if not (np.isfinite(l1).all() and (l1 >= 0).all()):
            raise ValueError(f"The 'l1' parameter of OWLQN must be finite floats >= 0. Got {l1!r} instead.")
        self.l1 = l1
        self.memory = memory

    def state_floats(self, n_params):
        """float64 values of the state for ``n_params`` parameters: the point, the pseudo- and smooth
        gradients, ``memory`` pairs of history vectors, and the l1 strengths."""
        return (4 + 2 * self.memory) * n_params

    def pass_floats(self, n_params):
        """float64 values of one pass: the direction, the orthant, the trial points and their gradients."""
        return (2 + 2 * len(STEP_FACTORS)) * n_params

    def init(self, x0):
        x0 = np.asarray(x0, dtype=np.float64)
        empty = np.zeros((0, x0.size))
        zeros = np.zeros_like(x0)
        return OWLQNState(x0, float("nan"), zeros, zeros.copy(), empty, empty.copy(), 1.0, 0)

    def start(self, state, evaluation):
        return self._evaluated(state, state.x, evaluation)._replace(evaluated=1)

    def _direction(self, state):
        """The search direction and the orthant of the trial points."""
        v = state.grad
        penalized = self.l1 > 0
        free = (state.x != 0) | (v != 0) | ~penalized
        s, y = state.s * free, state.y * free
        curved = np.einsum("ij,ij->i", s, y) > 1e-10 * np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1)
        direction = two_loop_direction(v, s[curved], y[curved])
        direction = np.where(~penalized | (state.x != 0) | (direction * v < 0), direction, 0.0)
        if not direction @ v < 0:
            direction = two_loop_direction(v, state.s[:0], state.y[:0])
        orthant = np.where(state.x != 0, np.sign(state.x), np.sign(-v))
        return direction, np.where(penalized, orthant, np.nan)

    def plan(self, state):
        """The trial points (projected onto their orthant), their steps, the direction and the orthant."""
        direction, orthant = self._direction(state)
        steps = tuple(state.scale * factor for factor in STEP_FACTORS)
        points = np.stack([state.x + alpha * direction for alpha in steps])
        return Plan(project(points, orthant), steps, direction, orthant)

    def _evaluated(self, state, x, evaluation):
        v = pseudo_gradient(x, evaluation.grad, self.l1)
        return state._replace(x=x, value=evaluation.value, grad=v, smooth_grad=evaluation.grad)

    def update(self, state, plan, evaluations):
        points, orthant = plan.points, plan.orthant
        l1_slope = np.where(np.isnan(orthant), 0.0, self.l1 * orthant)
        best = line_search_point(state.value, state.grad, l1_slope, state.x, points, evaluations)
        if best is None:
            return state._replace(scale=state.scale / 20.0), Step(False, 0.0)
        x_new = points[best]
        s_new = x_new - state.x
        y_new = evaluations[best].grad - state.smooth_grad
        s, y = state.s, state.y
        if s_new @ y_new > 1e-10 * np.linalg.norm(s_new) * np.linalg.norm(y_new):
            s = np.vstack([s, s_new])[-self.memory :]
            y = np.vstack([y, y_new])[-self.memory :]
        new = self._evaluated(state._replace(s=s, y=y, scale=1.0), x_new, evaluations[best])
        return new, Step(True, float(np.linalg.norm(s_new)))
