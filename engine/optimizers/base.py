"""What every optimizer shares: evaluations, a pass's plan, the one-pass line search, state serialization.

The interface the optimizers implement, and what the optimizer loop does with it, is
:class:`mrtrain.engine.optimizers.protocol.Optimizer`. The state holds only arrays, floats and ints, so it
goes into a checkpoint and comes back bit for bit (:func:`state_to_record`, :func:`state_from_record`).
"""

from typing import NamedTuple

import numpy as np

#: Sufficient-decrease constant of the Armijo condition.
ARMIJO_C1 = 1e-4


class Evaluation(NamedTuple):
    """The full objective (mean loss + penalty) at one point.

    Attributes
    ----------
    value : float
    grad : ndarray, shape (p,)
        Gradient of the smooth part (everything but an l1 term, which only OWL-QN accepts).
    hess : ndarray, shape (p, p), or None when the pass computed no Hessian at this point
    """

    value: float
    grad: np.ndarray
    hess: np.ndarray | None = None

    @property
    def finite(self):
        """True if the value, the gradient and the Hessian (if any) are all finite (nothing overflowed)."""
        return bool(
            np.isfinite(self.value) and np.isfinite(self.grad).all()
            and (self.hess is None or np.isfinite(self.hess).all())
        )


class Plan(NamedTuple):
    """One pass's search, made from the state alone: the trial points and what reading them needs.

    The optimizer's ``plan`` computes it (the search direction once) and its ``update`` reads it back
    with the evaluations; it is never checkpointed: a resumed state gives the same plan bit for bit.

    Attributes
    ----------
    points : ndarray, shape (m, p)
        The trial points of the pass, in the order the evaluations come back.
    steps : tuple of float, length m
        The step size of each trial point along ``direction``.
    direction : ndarray, shape (p,), or None
        The search direction ``d`` (None for gradient descent: ``-grad``).
    orthant : ndarray, shape (p,), or None
        OWL-QN's orthant of the trial points (NaN where not penalized); None for the others.
    """

    points: np.ndarray
    steps: tuple
    direction: np.ndarray | None = None
    orthant: np.ndarray | None = None


class Step(NamedTuple):
    """What one update did: ``accepted`` is False when no trial point decreased the objective enough."""

    accepted: bool
    size: float


def first_armijo(f0, slope, steps, evaluations):
    """Index of the first trial point that satisfies the Armijo condition, or None.

    Only finite evaluations qualify, and only along a direction of finite, negative slope: a direction
    that overflowed or does not descend moves nowhere, so it is never an accepted step.

    Parameters
    ----------
    f0 : float
        Objective at the current point.
    slope : float
        Directional derivative ``g·d`` at the current point (negative for a descent direction).
    steps : sequence of float, length m
        Step sizes of the trial points ``x + steps[j] * d``.
    evaluations : sequence of Evaluation, length m
    """
    if not (np.isfinite(slope) and slope < 0):
        return None
    for j, (alpha, evaluation) in enumerate(zip(steps, evaluations, strict=True)):
        if evaluation.finite and evaluation.value <= f0 + ARMIJO_C1 * alpha * slope:
            return j
    return None


def state_to_record(state):
    """Split a state into checkpoint arrays (floats and arrays, exact) and JSON scalars (ints).

    Returns
    -------
    arrays : dict[str, ndarray]
    scalars : dict[str, int]
    """
    arrays, scalars = {}, {}
    for name, value in state._asdict().items():
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            scalars[name] = int(value)
        else:
            arrays[name] = np.asarray(value, dtype=np.float64)
    return arrays, scalars


def state_from_record(state_class, arrays, scalars):
    """Inverse of :func:`state_to_record`: 0-d arrays come back as Python floats."""
    fields = {}
    for name in state_class._fields:
        if name in scalars:
            fields[name] = int(scalars[name])
        elif name in arrays:
            value = np.asarray(arrays[name], dtype=np.float64)
            fields[name] = float(value) if value.ndim == 0 else value
        else:
            raise ValueError(f"The checkpoint's optimizer state has no field {name!r}.")
    return state_class(**fields)
