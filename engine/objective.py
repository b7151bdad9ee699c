"""The training objective: mean weighted loss plus the l2 penalty on coefficients.

``f(θ) = (1/Σsᵢ) Σᵢ sᵢ ℓ(yᵢ, xᵢ·w + b) + (l2/2)‖w‖²`` — intercepts are never penalized. The data part
arrives as summed :class:`mrtrain.engine.models.PartialSums` from a MapReduce pass; this module divides once
by the
total weight and adds the penalty, giving one :class:`mrtrain.engine.optimizers.base.Evaluation` per point.
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
    """

    def __init__(self, model, l2):
        self.model = model
        self.l2 = float(l2)
        self.mask = model.penalty_mask()

    def penalty(self, theta):
        """``(l2/2)‖w‖²`` at ``theta`` (shape (p,))."""
        coefficients = theta * self.mask
        return 0.5 * self.l2 * float(coefficients @ coefficients)

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
            The first ``k`` with a Hessian, the others with ``hess = None``.
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
