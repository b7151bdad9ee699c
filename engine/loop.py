"""The optimizer loop: one data pass per iteration, an optimizer step, a checkpoint, a convergence check.

:func:`optimize` knows nothing of MapReduce or storage: it calls ``evaluate(points, hessian)`` for a data
pass and ``on_iteration(status)`` after each update (the trainer checkpoints there). Everything the loop
decides depends only on the :class:`LoopStatus` it checkpoints, so a run resumed from a checkpoint takes
exactly the same steps as one that was never interrupted. The status also records every pass's objective,
gradient max-norm and seconds (``mrtrain report`` plots them); the loop never reads them back, so the
wall-clock seconds cannot change a step.

A pass is :func:`pass_plan` (the optimizer's trial points; on the first pass the start point alone), the
evaluation, then :func:`finish_pass` (the optimizer's step and the next status). The grid
(:func:`mrtrain.engine.grid.run_grid`) makes every member's passes with the same two functions.
"""

import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from mrtrain.engine.optimizers.base import Evaluation, Plan, Step
from mrtrain.engine.optimizers.protocol import Optimizer, OptimizerState
from mrtrain.engine.overflow import RESCALE_ADVICE, OverflowDataError

log = logging.getLogger(__name__)

#: Consecutive passes in which no trial point decreased the objective before the loop gives up.
MAX_REJECTED_PASSES = 4


class NonFiniteObjectiveError(OverflowDataError):
    """The objective, its gradient or Hessian at the starting point is not finite: float64 overflowed.

    Bad input rather than a bug: features or labels too large (or too many) for float64 sums. The message
    says what overflowed; the trainer adds the partitions whose sums did.
    """


class LoopStatus(NamedTuple):
    """Everything the loop needs to continue: checkpointed after every pass.

    Attributes
    ----------
    state : NamedTuple
        The optimizer's state.
    iteration : int
        Optimizer iterations done (the first pass, which only evaluates the starting point, is 0).
    passes : int
        Data passes (MapReduce jobs) done.
    history : tuple of float
        Objective after each accepted iteration, starting point first.
    rejected : int
        Consecutive passes whose trial points were all rejected.
    pass_objectives : tuple of float
        Objective at the current point after each pass (unchanged by a rejected pass). Like the two
        tuples below it covers the last passes of the run: a checkpoint written before these records
        existed resumes with them empty, and an ``init="online"`` start's pass has none.
    pass_grad_norms : tuple of float
        Gradient max-norm (:func:`grad_norm`) at the current point after each pass.
    pass_seconds : tuple of float
        Wall-clock seconds of each pass: the data pass and the optimizer step, not the checkpoint write.
    """

    state: OptimizerState
    iteration: int
    passes: int
    history: tuple
    rejected: int
    pass_objectives: tuple = ()
    pass_grad_norms: tuple = ()
    pass_seconds: tuple = ()


#: Stop reason when the optimizer's next trial points overflowed.
OVERFLOW_REASON = "numerical overflow: the next trial points are not finite"


class OptimizeResult(NamedTuple):
    """What :func:`optimize` ends with (like scipy's ``OptimizeResult``; unpacks as a 3-tuple).

    Attributes
    ----------
    status : LoopStatus
        Where the loop stopped: the optimizer state (``status.state.x`` is the solution), iterations,
        passes and history.
    reason : str
        Why it stopped (:func:`stop_reason`, or numerical overflow).
    converged : bool
        Whether ``reason`` counts as converged.
    """

    status: "LoopStatus"
    reason: str
    converged: bool


class Progress(NamedTuple):
    """One line of progress, handed to the callback after every pass.

    ``model`` names the model the line is about when a run trains several (a grid's member), else "".
    ``labels`` name what ``objective``, ``grad_norm`` and ``step`` hold for the family that made the line
    (k-means: the inertia and the largest squared centre move, and no step: ``step`` label None).
    """

    iteration: int
    objective: float
    grad_norm: float
    step: float
    seconds: float
    passes: int
    accepted: bool
    model: str = ""
    labels: tuple = ("objective", "|grad|", "step")


def grad_norm(status):
    """Max-norm of the objective's gradient at the current point."""
    return max_norm(status.state.grad)


def max_norm(vector):
    """``max |vector_i|`` as a float (0 for an empty vector)."""
    return float(np.max(np.abs(vector), initial=0.0))


#: The reasons :func:`stop_reason` gives: a loop stopped for one of them is judged again, under the limits of
#: the run that resumes it (a higher ``max_iter`` trains on). "relative objective change <= tol" is the
#: reason checkpoints written before the predicted-decrease condition record.
STOPPING_RULE_REASONS = ("gradient norm <= gtol", "relative objective change and predicted decrease <= tol",
                         "relative objective change <= tol", "line search found no decrease",
                         "max_iter reached")


def predicted_decrease(optimizer, state):
    """``-g·d``: the decrease of the objective that the optimizer's model predicts for its next full step
    ``d`` (twice the estimated gap to the optimum ``-½ g·d`` of a quadratic model), or None for an
    optimizer without a curvature model (gradient descent's plan has no direction).

    For Newton ``g·H⁻¹g`` (the squared Newton decrement), for L-BFGS and OWL-QN the same with their
    inverse-Hessian approximation. A function of the state alone, so a resumed run decides the same.
    """
    with np.errstate(all="ignore"):
        direction = optimizer.plan(state).direction
    if direction is None:
        return None
    return float(-(state.grad @ direction))


def stop_reason(status, *, max_iter, tol, gtol, optimizer=None):
    """Why the loop should stop now, or None to go on.

    Converged: the gradient's max-norm is at most ``gtol``, or the relative objective change of the last
    accepted iteration is at most ``tol`` *and* so is the decrease the optimizer predicts for its next
    step (:func:`predicted_decrease`, relative to ``max(|f|, 1)``; checked when ``optimizer`` is given and
    has a curvature model). A small change alone is no proof: a short step far from the optimum of an
    ill-conditioned objective changes it little too.

    Returns
    -------
    tuple (str, bool) or None
        The reason and whether it counts as converged.
    """
    if not status.state.evaluated:
        return None
    if grad_norm(status) <= gtol:
        return "gradient norm <= gtol", True
    history = status.history
    if status.iteration > 0 and status.rejected == 0 and len(history) >= 2:
        scale = max(abs(history[-2]), abs(history[-1]), 1.0)
        change = abs(history[-2] - history[-1]) / scale
        if change <= tol:
            predicted = None if optimizer is None else predicted_decrease(optimizer, status.state)
            if predicted is None or predicted / scale <= tol:
                return "relative objective change and predicted decrease <= tol", True
    if status.rejected >= MAX_REJECTED_PASSES:
        return "line search found no decrease", False
    if status.iteration >= max_iter:
        return "max_iter reached", False
    return None


def optimize(
    optimizer: Optimizer,
    evaluate: Callable[[np.ndarray, int], Sequence[Evaluation]],
    status: LoopStatus,
    *,
    max_iter: int,
    tol: float,
    gtol: float,
    on_iteration: Callable[[LoopStatus], None] | None = None,
    callback: Callable[[Progress], None] | None = None,
) -> OptimizeResult:
    """Run ``optimizer`` from ``status`` until :func:`stop_reason` says stop.

    Parameters
    ----------
    optimizer : Optimizer
    evaluate : callable ``(points: ndarray (m, p), hessian: int) -> list[Evaluation]``
        One data pass, with Hessians at the first ``hessian`` points.
    status : LoopStatus
        Where to start: :func:`initial_status` or a resumed checkpoint.
    max_iter : int
    tol : float
        Relative objective change that counts as converged.
    gtol : float
        Gradient max-norm that counts as converged.
    on_iteration : callable ``(LoopStatus) -> None``, optional
        Called after every pass (checkpointing).
    callback : callable ``(Progress) -> None``, optional
        Called after every pass (progress display).

    Returns
    -------
    OptimizeResult
        ``(status, reason, converged)``, a named tuple.
    """
    while True:
        verdict = stop_reason(status, max_iter=max_iter, tol=tol, gtol=gtol, optimizer=optimizer)
        if verdict is not None:
            return OptimizeResult(status, *verdict)
        started = time.perf_counter()
        # Overflow is detected explicitly (non-finite points and evaluations), not through numpy warnings.
        with np.errstate(all="ignore"):
            plan = pass_plan(optimizer, status.state)
            if not np.isfinite(plan.points).all():
                return OptimizeResult(status, OVERFLOW_REASON, False)
            evaluations = evaluate(plan.points, optimizer.hessian_points)
            status, step = finish_pass(optimizer, status, plan, evaluations)
        seconds = time.perf_counter() - started
        state = status.state
        norm = max_norm(state.grad)
        status = status._replace(
            pass_objectives=status.pass_objectives + (float(state.value),),
            pass_grad_norms=status.pass_grad_norms + (norm,),
            pass_seconds=status.pass_seconds + (seconds,),
        )
        if on_iteration is not None:
            on_iteration(status)
        progress = Progress(
            status.iteration, state.value, norm, step.size, seconds, status.passes, step.accepted,
        )
        log.info(
            "iteration %d  objective %.12g  |grad| %.3e  step %.3e  %.2fs",
            progress.iteration, progress.objective, progress.grad_norm, progress.step, progress.seconds,
        )
        if callback is not None:
            callback(progress)


def pass_plan(optimizer: Optimizer, state: OptimizerState) -> Plan:
    """The plan of the next pass: on the first pass (nothing evaluated yet) the start point alone."""
    if not state.evaluated:
        return Plan(state.x[None, :], (0.0,))
    return optimizer.plan(state)


def finish_pass(
    optimizer: Optimizer, status: LoopStatus, plan: Plan, evaluations: Sequence[Evaluation]
) -> tuple[LoopStatus, Step]:
    """The status after the pass that evaluated ``plan`` (from :func:`pass_plan`), and the step taken.

    The first pass only evaluates the start point: the optimizer's ``start`` takes it in, it counts as
    an accepted pass but not as an iteration. Its evaluation must be finite. Later passes go to the
    optimizer's ``update``. The pass records (``pass_objectives`` …) are left as they were.

    Raises
    ------
    NonFiniteObjectiveError
        If the start point's objective, gradient or Hessian is not finite.
    """
    first_pass = not status.state.evaluated
    if first_pass:
        (start,) = evaluations
        if not start.finite:
            raise NonFiniteObjectiveError(describe_non_finite(start))
        state, step = optimizer.start(status.state, start), Step(True, 0.0)
    else:
        state, step = optimizer.update(status.state, plan, evaluations)
    status = status._replace(
        state=state,
        iteration=status.iteration + (0 if first_pass else 1),
        passes=status.passes + 1,
        history=status.history + ((state.value,) if step.accepted else ()),
        rejected=0 if step.accepted else status.rejected + 1,
    )
    return status, step


def describe_non_finite(evaluation):
    """One line saying what overflowed in ``evaluation`` at the starting point."""
    parts = [f"objective {evaluation.value!r}"]
    with np.errstate(all="ignore"):
        parts.append(f"gradient max-norm {float(np.max(np.abs(evaluation.grad), initial=0.0))!r}")
        if evaluation.hess is not None:
            parts.append(f"Hessian max-norm {float(np.max(np.abs(evaluation.hess), initial=0.0))!r}")
    return (
        "the objective at the starting point is not finite (" + ", ".join(parts) + "): float64 overflowed "
        f"summing the loss over the data; {RESCALE_ADVICE}"
    )


def initial_status(optimizer: Optimizer, x0: np.ndarray) -> LoopStatus:
    """The loop status before any pass: ``x0`` not yet evaluated."""
    return LoopStatus(optimizer.init(x0), 0, 0, (), 0)
