"""Where an optimizer starts: zeros, or the weighted average of one online epoch per partition.

``init="zeros"`` (the default) starts at θ = 0. ``init="online"`` first runs one job
(:class:`mrtrain.mr_jobs.online_init.MROnlineInit`, Vowpal Wabbit's recipe): every map task runs one epoch
of mini-batch AdaGrad over its partition and the driver averages the partitions' models by their sample
weight. That job is a data pass and is counted in ``passes``. Its result depends only on the data, the
model and ``l2``, so it is the same bits on every runner; a point that overflowed falls back to zeros with a
warning. A resumed or warm-started run starts from its checkpoint and runs no such pass.
"""

import logging

import numpy as np

from mrtrain.mr_jobs.online_init import MROnlineInit

log = logging.getLogger(__name__)

INITS = ("zeros", "online")
#: AdaGrad's step size: the first step moves every touched coordinate by this much.
LEARNING_RATE = 0.5
#: Rows per online update.
BATCH_ROWS = 256


def online_initial_point(launcher, model, l2):
    """θ₀ from one online epoch per partition, averaged by weight (one job on ``launcher``)."""
    settings = {"l2": float(l2), "learning_rate": LEARNING_RATE, "batch_rows": BATCH_ROWS}
    vector = launcher.sum_vector(MROnlineInit, np.zeros((1, model.n_params)), {"online": settings})
    weight, total = float(vector[0]), vector[1:]
    theta = total / weight if weight > 0 else np.zeros(model.n_params)
    if not np.isfinite(theta).all():
        log.warning("online initialisation overflowed; starting from zeros")
        return np.zeros(model.n_params)
    log.info("online initialisation: one epoch per partition averaged over total weight %g", weight)
    return theta
