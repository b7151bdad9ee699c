"""Where an optimizer starts: zeros, or the weighted average of one online epoch per partition.

``init="zeros"`` (the default) starts at θ = 0. ``init="online"`` first runs one job
(:class:`mrtrain.mr_jobs.online_init.MROnlineInit`, Vowpal Wabbit's recipe, run by
:mod:`mrtrain.initialization`): every map task runs one epoch of mini-batch AdaGrad over its partition
with :data:`LEARNING_RATE` and :data:`BATCH_ROWS`, and :func:`averaged_point` averages the partitions'
models by their sample weight. That job is a data pass and is counted in ``passes``. Its result depends only
on the data, the model and ``l2``, so it is the same bits on every runner; a point that overflowed falls
back to zeros with a warning. A resumed or warm-started run starts from its checkpoint and runs no such pass.
"""

import logging

import numpy as np

log = logging.getLogger(__name__)

INITS = ("zeros", "online")
#: AdaGrad's step size: the first step moves every touched coordinate by this much.
LEARNING_RATE = 0.5
#: Rows per online update.
BATCH_ROWS = 256


def averaged_point(vector):
    """θ₀ from the online job's summed vector ``[Σ W_k, Σ W_k θ_k]`` (``W_k`` partition ``k``'s total
    sample weight): the weighted average of the partitions' points, or zeros if it is not finite.

    Parameters
    ----------
    vector : ndarray, shape (1 + p,)

    Returns
    -------
    ndarray, shape (p,)
    """
    weight, total = float(vector[0]), vector[1:]
    theta = total / weight if weight > 0 else np.zeros(total.size)
    if not np.isfinite(theta).all():
        log.warning("online initialisation overflowed; starting from zeros")
        return np.zeros(total.size)
    log.info("online initialisation: one epoch per partition averaged over total weight %g", weight)
    return theta
