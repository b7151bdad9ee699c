"""The interface every optimizer implements: an immutable state and four pure functions of it.

The optax shape (``init`` / ``update`` over a state), with the line search made explicit because every
data pass is a MapReduce job:

1. ``state = opt.init(x0)`` — the start point, nothing evaluated yet (``state.evaluated == 0``);
2. ``state = opt.start(state, evaluation)`` — after the first pass, which evaluates ``x0`` alone (with its
   Hessian when ``hessian_points`` is 1); ``state.evaluated`` becomes 1;
3. ``plan = opt.plan(state)`` — the :class:`~mrtrain.engine.optimizers.base.Plan` of the next pass: its
   trial points, shape (m, p), all evaluated in the same pass (along one search direction, computed here
   once per pass), and the step sizes and direction the update reads back;
4. ``state, step = opt.update(state, plan, evaluations)`` — one
   :class:`~mrtrain.engine.optimizers.base.Evaluation` per trial point, in ``plan.points``' order.

The driver (:func:`mrtrain.engine.loop.pass_plan` and :func:`mrtrain.engine.loop.finish_pass`, used
by the single-model loop and by the grid) decides between the first pass (2) and the others (3, 4), so
no optimizer repeats that branch.

``opt.hessian_points`` (an int) says how many leading trial points the pass computes a Hessian at: 0 for
the first-order optimizers, 1 for Newton (a Hessian costs ``p x p`` sums per point). Every plan has at
least that many points; the other evaluations have ``hess = None``.

A plan is a function of the state and the optimizer's settings alone and is never stored: the checkpoint
holds the state (:func:`~mrtrain.engine.optimizers.base.state_to_record`), and a resumed run makes the same
plans, so it takes exactly the steps of an uninterrupted one.
"""

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from mrtrain.engine.optimizers.base import Evaluation, Plan, Step


class OptimizerState(Protocol):
    """What the driver reads of every optimizer's state (a ``NamedTuple`` of arrays, floats and ints)."""

    @property
    def x(self) -> np.ndarray:
        """The current point, shape (p,)."""

    @property
    def value(self) -> float:
        """The objective at ``x`` (NaN before the first pass)."""

    @property
    def grad(self) -> np.ndarray:
        """The gradient at ``x`` whose max-norm the ``gtol`` test reads (OWL-QN: the pseudo-gradient)."""

    @property
    def evaluated(self) -> int:
        """1 once the first pass has evaluated ``x``, else 0."""

    def _asdict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=OptimizerState)


@runtime_checkable
class Optimizer(Protocol[S]):
    """An optimizer taking one step per data pass (see the module docstring for the call sequence).

    Attributes
    ----------
    name : str
        Its name in :data:`mrtrain.engine.optimizers.OPTIMIZERS`.
    hessian_points : int
        How many leading trial points of a pass need a Hessian (0 or 1).
    handles_l1 : bool
        Whether it minimizes an objective with an l1 term (it is built with the per-parameter strengths,
        ``l1=``); the others need the objective differentiable everywhere.
    affine_invariant : bool
        Whether its steps are the same in any affine coordinates (Newton's), so that running it in
        standardized coordinates (the preconditioner) gains nothing.
    max_params : int or None
        The largest parameter count it takes (Newton's ``p x p`` Hessian), or None.
    offers_single_step : bool
        Whether it takes ``single_step=True`` (L-BFGS: the quasi-Newton step alone after an accepted pass).
    State : type
        The ``NamedTuple`` class of its state (checkpoints are read back into it).
    """

    name: str
    hessian_points: int
    handles_l1: bool
    affine_invariant: bool
    max_params: int | None
    offers_single_step: bool
    State: type[S]

    def state_floats(self, n_params: int) -> int:
        """How many float64 values its state holds for ``n_params`` parameters (for
        :mod:`mrtrain.engine.memory`, before any is allocated)."""

    def pass_floats(self, n_params: int) -> int:
        """How many float64 values one pass's plan and evaluations hold besides the state."""

    def init(self, x0: np.ndarray) -> S:
        """The state at ``x0`` before any pass."""

    def start(self, state: S, evaluation: Evaluation) -> S:
        """The state once the first pass has evaluated ``state.x`` alone."""

    def plan(self, state: S) -> Plan:
        """The trial points of the next pass (an evaluated state) and what :meth:`update` reads back."""

    def update(self, state: S, plan: Plan, evaluations: Sequence[Evaluation]) -> tuple[S, Step]:
        """The state after the pass that evaluated ``plan.points``, and what the step did."""
