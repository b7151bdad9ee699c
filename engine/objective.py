"""The training objective: mean weighted loss plus the elastic-net penalty on coefficients.

``f(θ) = (1/Σsᵢ) Σᵢ sᵢ ℓ(yᵢ, xᵢ·w + b) + (l2/2)‖w‖² + l1‖w‖₁`` — intercepts are never penalized
(:meth:`mrtrain.engine.models.Model.penalty_mask`). The data part arrives as summed
:class:`mrtrain.engine.models.PartialSums` from a MapReduce pass; this module divides once by the total
weight and adds the penalty, giving one :class:`mrtrain.engine.optimizers.base.Evaluation` per point.

The l1 term is not differentiable where a coefficient is 0, so an evaluation's ``value`` includes it but its
``grad`` and ``hess`` are those of the smooth part (mean loss + l2 term) only; OWL-QN
(:mod:`mrtrain.engine.optimizers.owlqn`) adds the l1 term's one-sided derivatives itself from
:attr:`Objective.l1_weights`. With ``l1 = 0`` the smooth part is the whole objective.
"""

import numpy as np

from mrtrain.engine.optimizers.base import Evaluation


class Objective:
    """Turns summed partials into objective values, gradients and Hessians.

    Parameters
    ----------
    model : mrtrain.engine.models.Model
    l2 : float
        Strength of the ``(l2/2)‖w‖²`` penalty, >= 0.
    l1 : float
        Strength of the ``l1‖w‖₁`` penalty, >= 0. Default: 0.
    """

    def __init__(self, model, l2, l1=0.0):
        self.model = model
        self.l2 = float(l2)
        self.l1 = float(l1)
        self.mask = model.penalty_mask()

    @property
    def l1_weights(self):
        """Per-parameter l1 strengths, shape (p,): ``l1`` for coefficients, 0 for intercepts."""
        return self.l1 * self.mask

    def penalty(self, theta):
        """``(l2/2)‖w‖² + l1‖w‖₁`` at ``theta`` (shape (p,))."""
        coefficients = theta * self.mask
        value = 0.5 * self.l2 * float(coefficients @ coefficients)
        if self.l1:
            value += self.l1 * float(np.abs(coefficients).sum())
        return value

    def evaluations(self, sums, thetas):
        """One :class:`Evaluation` per row of ``thetas``.

        Parameters
        ----------
        sums : mrtrain.engine.models.PartialSums
            Totals over the whole dataset at the ``m`` points (Hessians at the first ``k``).
        thetas : ndarray, shape (m, p)

        Returns
        -------
        list of Evaluation
            The first ``k`` with a Hessian, the others with ``hess = None``. ``value`` is the full
            objective; ``grad`` and ``hess`` are those of its smooth part (everything but the l1 term).
        """
        if not sums.weight > 0:
            raise ValueError(f"The dataset's total sample weight must be > 0. Got {sums.weight!r}.")
        evaluations = []
        n_hessians = 0 if sums.hess is None else len(sums.hess)
        for j, theta in enumerate(thetas):
            value = float(sums.loss[j]) / sums.weight + self.penalty(theta)
            grad = sums.grad[j] / sums.weight + self.l2 * self.mask * theta
            hess = None
            if j < n_hessians:
                hess = sums.hess[j] / sums.weight + np.diag(self.l2 * self.mask)
            evaluations.append(Evaluation(value, grad, hess))
        return evaluations
